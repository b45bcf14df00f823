"""Benchmark: the default closed-form model on every dataset here, beside popularity and the
previous spectral defaults, all in one run.

Models, each fitted the way ``shopgraph train`` fits it:

* ``default``: ``spectral`` at its defaults: rank and ``item_scale`` chosen on a validation
  split (:meth:`SpectralFilter.fit` with ``valid``), then refitted on all the training data at
  those settings (:func:`shopgraph.gnn.train.refit`); both fits are timed. The validation split
  is the dataset's own where it has one (Gowalla: ``train_split.txt`` / ``valid.txt``;
  Amazon-Sports and LastFM: ``train.txt`` / ``valid.txt``), else (simulated shops) the last 10 %
  of each user's events by time, as ``shopgraph train`` holds out.
* ``default_own_split`` (public datasets): the same, validated on a random 10 % of
  ``train.txt``, exactly what ``shopgraph train`` does with files that carry no timestamps.
* ``previous``: the spectral defaults before issue 13 (``k`` 512, ``item_scale`` 0.3, no
  tuning), fitted once on all the training data.
* ``popularity``.

Public datasets are scored on ``test.txt`` (full ranking, training items left out); simulated
shops (views, carts and purchases) on their held-out last 10 % and by the overlap of the top-20
with the true top-20 by purchase propensity (training items left out). One JSON line per
dataset.

    python bench/closed_form.py [--datasets gowalla,amazon-sports,lastfm,shop20k,shop200k]
                                [--threads 1] [--data ../shared/data] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = ("gowalla", "amazon-sports", "lastfm")
SHOPS = {"shop20k": (20_000, 5_000, 500_000), "shop200k": (200_000, 20_000, 5_000_000)}
PREVIOUS = {"k": 512, "item_scale": 0.3, "tune": False}


def _rss_mb() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _shop(name: str, work: Path) -> tuple[Any, Any, dict[str, Any], tuple[Any, Any]]:
    """Simulate (or reuse) a shop; its interactions split by time like ``shopgraph train``:
    ``(train, held_out, truth, (tune_train, tune_valid))``."""
    import numpy as np
    import pandas as pd

    from shopgraph.gnn.split import holdout_split
    from shopgraph.simulator import load_truth, simulate

    users, items, interactions = SHOPS[name]
    folder = work / name
    if not (folder / "truth.npz").is_file():
        simulate(folder, users=users, items=items, interactions=interactions, seed=0)
    frames = [pd.read_parquet(folder / f"{f}.parquet", columns=["user_id", "item_id", "ts"])
              for f in ("views", "carts", "purchases")]
    events = pd.concat(frames, ignore_index=True)
    user_ids, u = np.unique(events["user_id"].to_numpy(str), return_inverse=True)
    item_ids, i = np.unique(events["item_id"].to_numpy(str), return_inverse=True)
    ts = events["ts"].to_numpy()
    train, held = holdout_split(u, i, len(user_ids), len(item_ids), ts=ts, fraction=0.1, seed=0,
                                user_ids=user_ids, item_ids=item_ids)
    # The tuning split: the last 10 % by time of what is left for training.
    kept = np.asarray(held.matrix.tocsr()[u, i]).ravel() == 0
    inner = holdout_split(u[kept], i[kept], len(user_ids), len(item_ids), ts=ts[kept],
                          fraction=0.1, seed=0, user_ids=user_ids, item_ids=item_ids)
    return train, held, load_truth(folder), inner


def _public(name: str, folder: Path) -> tuple[Any, Any, tuple[Any, Any]]:
    """``(train, test, (tune_train, valid))`` on one shape; Gowalla tunes on its sub-split."""
    from shopgraph.gnn.data import InteractionMatrix, read_lightgcn_pairs, read_rating_pairs

    read = read_rating_pairs if name == "amazon-sports" else read_lightgcn_pairs
    files = {"train": "train.txt", "test": "test.txt", "valid": "valid.txt",
             "tune": "train_split.txt" if name == "gowalla" else "train.txt"}
    pairs = {k: read(folder / f) for k, f in files.items()}
    n_users = max(int(u.max()) for u, _ in pairs.values()) + 1
    n_items = max(int(i.max()) for _, i in pairs.values()) + 1
    m = {k: InteractionMatrix.from_pairs(u, i, n_users, n_items) for k, (u, i) in pairs.items()}
    return m["train"], m["test"], (m["tune"], m["valid"])


def _truth_overlap(score: Any, train: Any, truth: dict[str, Any], n: int = 5000) -> float:
    """Mean overlap of the top-20 (training items left out) with the true purchase top-20."""
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    from shopgraph.gnn.metrics import top_k
    from shopgraph.simulator import true_top_k

    t_users = pd.Index(truth["user_ids"].astype(str))
    t_items = pd.Index(truth["item_ids"].astype(str))
    x = train.matrix.tocsr()
    rows = np.flatnonzero(np.diff(x.indptr) > 0)
    rows = np.sort(np.random.default_rng(0).choice(rows, min(n, len(rows)), replace=False))
    found = top_k(score, rows, 20, exclude=x)
    item_map = t_items.get_indexer(train.item_ids)
    seen = x[rows].tocoo()
    exclude = sp.csr_matrix((np.ones(seen.nnz), (seen.row, item_map[seen.col])),
                            shape=(len(rows), len(t_items)))
    best = true_top_k(truth, 20, t_users.get_indexer(train.user_ids[rows]), kind="purchase",
                      exclude=exclude)
    mapped = item_map[np.asarray(found)]
    return float(np.mean([len(np.intersect1d(f, t)) / len(t) for f, t in zip(mapped, best)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=",".join((*PUBLIC, *SHOPS)))
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--work", type=Path, default=None,
                    help="folder for the simulated shops (default: a temporary one); reused")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args()

    import torch

    from shopgraph.gnn.metrics import evaluate, popularity_scores
    from shopgraph.gnn.spectral import SpectralFilter
    from shopgraph.gnn.split import holdout_split
    from shopgraph.gnn.train import refit

    torch.set_num_threads(args.threads)
    work = args.work or Path(tempfile.mkdtemp(prefix="closed_form_"))
    for name in args.datasets.split(","):
        truth, tuning = None, None
        if name in SHOPS:
            train, test, truth, tuning = _shop(name, work)
        else:
            train, test, tuning = _public(name, args.data / name)
        row: dict[str, Any] = {"bench": "closed_form", "dataset": name, "users": train.n_users,
                               "items": train.n_items, "train": train.nnz, "test": test.nnz}
        models: dict[str, Any] = {"popularity": (popularity_scores(train.matrix), 0.0, {})}
        started = time.perf_counter()
        old = SpectralFilter(**PREVIOUS)
        old.fit(train)
        models["previous"] = (old.score, time.perf_counter() - started, {})
        own = None if truth is not None else holdout_split(
            *train.matrix.nonzero(), train.n_users, train.n_items, fraction=0.1, seed=0)
        splits = {"default": tuning or own,
                  **({"default_own_split": own} if truth is None else {})}
        for label, (part, held) in splits.items():
            started = time.perf_counter()
            model = SpectralFilter()
            report = model.fit(part, held)
            served, _ = refit(model, train, report)
            chosen = {k: round(report.history[0][k], 4)
                      for k in ("tuned_k", "tuned_item_scale", "svd_s", "tune_s", "tune_recall")}
            models[label] = (served.score, time.perf_counter() - started, chosen)
        for label, (score, seconds, extra) in models.items():
            m = evaluate(score, train.matrix, test.matrix, ks=(20,))
            out = {"recall@20": round(m["recall@20"], 4), "ndcg@20": round(m["ndcg@20"], 4),
                   "fit_s": round(seconds, 1), **extra}
            if truth is not None:
                out["truth_overlap@20"] = round(_truth_overlap(score, train, truth), 4)
            row[label] = out
        row["peak_rss_mb"] = _rss_mb()
        row["threads"] = args.threads
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
