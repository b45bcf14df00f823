"""Benchmark: the served model fitted on the split ("before") vs refitted on all data ("after").

"before" is what ``shopgraph train --no-refit`` serves: the model fitted on ``train.txt`` minus a
held-out 10 % per user (:func:`~shopgraph.gnn.split.holdout_split`, random: these files have no
timestamps). "after" is what ``shopgraph train`` serves: the same model refitted on all of
``train.txt`` by :func:`shopgraph.gnn.train.refit`. Both are scored on ``test.txt`` (full ranking,
every ``train.txt`` item masked, as recommendations leave out seen items). The held-out figure
``train`` records is given too. ``fit_s`` is the model's own fit time (``FitReport.seconds``);
``wall_s`` adds what ``fit`` does around it (the spectral fit scores the held-out part, as in
``train``). Spectral model at its defaults unless ``--model`` / ``--set``.

One JSON line per dataset; each dataset runs in a process of its own, so its peak RSS is its own
(``peak_rss_mb`` of a phase is the process's peak so far: "after" includes "before").

    python bench/refit.py [--dataset gowalla|amazon-sports|all] [--model spectral]
                          [--set KEY=VALUE ...] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FORMATS = {"gowalla": "lightgcn", "amazon-sports": "ratings"}  # `user item rating` per line


def _pairs(path: Path, fmt: str) -> tuple[np.ndarray, np.ndarray]:
    from shopgraph.gnn.data import read_lightgcn_pairs, read_rating_pairs

    return read_lightgcn_pairs(path) if fmt == "lightgcn" else read_rating_pairs(path)


def _rss_mb() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def run_one(folder: Path, name: str, model: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Fit on the split, refit on everything, score both on the test file."""
    from shopgraph.gnn.data import InteractionMatrix
    from shopgraph.gnn.metrics import evaluate
    from shopgraph.gnn.registry import model_class
    from shopgraph.gnn.split import holdout_split
    from shopgraph.gnn.train import refit

    (tu, ti), (su, si) = (_pairs(folder / f, FORMATS[name]) for f in ("train.txt", "test.txt"))
    n_users, n_items = int(max(tu.max(), su.max())) + 1, int(max(ti.max(), si.max())) + 1
    full = InteractionMatrix.from_pairs(tu, ti, n_users, n_items)
    test = full.like(su, si)
    train, held = holdout_split(tu, ti, n_users, n_items, fraction=0.1, seed=0)

    def score(fitted: Any) -> dict[str, float]:
        t0 = time.perf_counter()
        m = evaluate(fitted.score, full.matrix, test.matrix, ks=(20,))
        return {"recall@20": round(m["recall@20"], 4), "ndcg@20": round(m["ndcg@20"], 4),
                "eval_s": round(time.perf_counter() - t0, 1)}

    instance = model_class(model)(**settings)
    started = time.perf_counter()
    report = instance.fit(train, held, progress=False)
    before = {"interactions": train.nnz, "fit_s": round(report.seconds, 1),
              "wall_s": round(time.perf_counter() - started, 1),
              "held_out_recall@20": round(report.best_metric, 4), **score(instance),
              "peak_rss_mb": _rss_mb()}
    started = time.perf_counter()
    served, again = refit(instance, full, report, progress=False)
    after = {"interactions": full.nnz, "fit_s": round(again.seconds, 1),
             "wall_s": round(time.perf_counter() - started, 1), **score(served),
             "peak_rss_mb": _rss_mb()}
    return {"bench": "refit", "dataset": name, "model": model, "settings": served.config,
            "held_out": held.nnz, "test_interactions": test.nnz, "before": before,
            "after": after, "recall@20_gain": round(after["recall@20"] / before["recall@20"] - 1,
                                                    4),
            "machine": platform.machine(), "python": platform.python_version()}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--dataset", default="all", help="gowalla, amazon-sports or all")
    ap.add_argument("--model", default="spectral", help="lightgcn, graphsage or spectral")
    ap.add_argument("--set", dest="sets", action="append", default=[],
                    help="model setting KEY=VALUE (repeatable)")
    args = ap.parse_args()
    if args.dataset == "all":  # one process per dataset: peak RSS per dataset
        for name in FORMATS:
            cmd = [sys.executable, __file__, "--dataset", name, "--data", str(args.data),
                   "--model", args.model, *(x for s in args.sets for x in ("--set", s))]
            subprocess.run(cmd, check=True)
        return
    from shopgraph.config import parse_settings

    row = run_one(args.data / args.dataset, args.dataset, args.model, parse_settings(args.sets))
    print(json.dumps(row, default=str), flush=True)


if __name__ == "__main__":
    main()
