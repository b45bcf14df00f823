"""Benchmark: daily incremental updates (``shopgraph update``) against a full retrain + reindex.

On the default simulated shop (``simulate(users=20000, seed=0)``: 20,000 users, 5,000 items,
about 500,000 interactions) the observed year is ingested into a fresh embedded graph server
and the spectral model trained and indexed (the first full retrain + reindex, timed). Then the
90 days after the observed period (``holdout.parquet``) are replayed one day at a time through
the real ingest path (each day's views, carts and purchases written as the shop's Parquet
tables with a ``mapping.toml``, ``ingest(load("tabular", ...))`` with the workspace's ingest
journal, so that an update reads only the users it lists; ``--no-journal``: without it, every
user's edges are counted) and ``Workspace.update`` (fold in, or retrain past the drift
thresholds; index swapped with it).

Measured, in one JSON line:

* ``update_s``: seconds per daily update (mean, median, max; retrains included), and its share
  of a full retrain + reindex measured in the same run (``train`` + ``index build`` from the
  same graph into a separate folder; target ≤ 5 %);
* ``compare``: after ``n`` daily updates (``--compare-at``, default 30): Recall@20 on the
  following 7 days (pairs a user had not interacted with yet; every current pair masked) of the
  updated model beside the full retrain on the same data (target: within 1 % relative), beside
  a refit of the updated model's own settings on the same data (the fold's drift without the
  retrain's re-tuning), with the drift since the last full fit;
* ``new_users``: users whose first event falls in the replay, scored after the update of
  their first day on their next 7 days, beside popularity (target ≥ 2x).

``--model lightgcn`` (or ``graphsage``) replays the same days through the BPR models' warm
start; ``--warm-epochs 0,1,2,3,5`` replays each number of warm epochs side by side, each in its
own copy of the workspace made after the first training (the same graph and ingest journal), so
every chain sees the same days and is compared with the same full retrain. ``--set KEY=VALUE``
gives the model's settings to that training and to the full retrains (the updates keep the
checkpoint's), ``--threads`` torch's thread count.

Two offline experiments choose the rest (one JSON line each, no graph server):
``--new-items 0.01,0.05,...`` folds a share of the catalogue back in as new items against a fit
on everything (the item threshold; the simulator adds no items during the replay), and
``--index-experiment K`` brings HNSW and IVF indexes of a rank-``K`` model through one daily
update in place and by a rebuild.

    python bench/stream.py [--days 90] [--compare-at 30] [--max-new-share 0.04]
                           [--work DIR] [--users 20000]
    python bench/stream.py --model lightgcn --days 7 --compare-at 7 --warm-epochs 0,1,2,3,5 \
                           --set batch_size=16384 --set lr=0.02 --set epochs=20 --threads 1
    python bench/stream.py --new-items 0.005,0.01,0.02,0.05,0.1,0.2 [--set k=16 ...]
    python bench/stream.py --index-experiment 128
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import resource
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

DAY = 86_400
WEEK = 7
FILES = {"VIEWED": "views.parquet", "CARTED": "carts.parquet", "PURCHASED": "purchases.parquet"}


def write_day(holdout: pd.DataFrame, start: int, day: int, folder: Path) -> Path:
    """Day ``day`` of the replay as the shop's tables and a mapping; returns the mapping."""
    from shopgraph.simulator import files

    rows = holdout[(holdout.ts >= start + day * DAY) & (holdout.ts < start + (day + 1) * DAY)]
    folder.mkdir(parents=True, exist_ok=True)
    present = []
    for rel, file in FILES.items():
        part = rows[rows.rel == rel]
        frame = part[["event_id", "user_id", "item_id", "ts"]].reset_index(drop=True)
        if rel == "PURCHASED":
            frame["value"] = part["value"].to_numpy()
            frame["quantity"] = part["quantity"].to_numpy().astype(np.int64)
        if len(frame):
            files.write_table(folder / file, frame)
            present.append(file)
    (folder / files.MAPPING).write_text(files.mapping_text(f"replay-day{day:02d}", present),
                                        encoding="utf-8")
    return folder / files.MAPPING


def pairs(frame: pd.DataFrame, user_ids: np.ndarray, item_ids: np.ndarray) -> Any:
    """The (user, item) pairs of ``frame`` as a binary matrix on the given id maps."""
    from shopgraph.gnn.data import InteractionMatrix

    u = pd.Index(user_ids).get_indexer(frame.user_id)
    i = pd.Index(item_ids).get_indexer(frame.item_id)
    ok = (u >= 0) & (i >= 0)
    return InteractionMatrix.from_pairs(u[ok], i[ok], len(user_ids), len(item_ids)).matrix


def scorer(ckpt: Any, user_ids: np.ndarray, item_ids: np.ndarray) -> Any:
    """Scores of a checkpoint's embeddings, rows and columns in the given id maps' order."""
    import torch

    u = pd.Index(ckpt.user_ids).get_indexer(user_ids)
    i = pd.Index(ckpt.item_ids).get_indexer(item_ids)
    assert (u >= 0).all() and (i >= 0).all()
    users, items = torch.from_numpy(ckpt.user_emb[u]), torch.from_numpy(ckpt.item_emb[i])

    def score(rows: np.ndarray) -> Any:
        return users[torch.as_tensor(rows)] @ items.T

    return score


def next_week(holdout: pd.DataFrame, start: int, day: int, graph: Any, user_ids: np.ndarray,
              item_ids: np.ndarray) -> Any:
    """Pairs of days ``day .. day + 6`` that the graph does not hold yet."""
    week = holdout[(holdout.ts >= start + day * DAY) & (holdout.ts < start + (day + WEEK) * DAY)]
    truth = pairs(week, user_ids, item_ids)
    return (truth - truth.multiply(graph)).tocsr()


def refit_same(ckpt: Any, matrix: Any, user_ids: np.ndarray, item_ids: np.ndarray) -> Any:
    """The checkpoint's model fitted again on ``matrix`` with its own settings (what a refit
    past the drift threshold gives), to tell the fold's drift from the retrain's re-tuning."""
    from shopgraph.gnn.data import InteractionMatrix
    from shopgraph.gnn.registry import model_class

    model = model_class(ckpt.model)(**ckpt.config)
    data = InteractionMatrix(matrix, user_ids, item_ids)
    if ckpt.model == "spectral":
        model.fit(data)
    else:
        model.fit(data, None, progress=False)
    return model


def full_retrain(store: Any, folder: Path, model: str,
                 settings: dict[str, Any] | None = None) -> tuple[float, Any]:
    """``train`` + ``index build`` from the graph into ``folder``, with the model's
    ``settings``: (seconds, checkpoint)."""
    from shopgraph.config import IndexConfig, TrainConfig
    from shopgraph.gnn.checkpoint import load_checkpoint
    from shopgraph.jobs.index import build_index
    from shopgraph.jobs.train import train_model
    from shopgraph.layout import WorkspaceLayout

    layout = WorkspaceLayout.at(folder)
    t0 = time.perf_counter()
    train_model(store, layout, model, TrainConfig(settings=settings or {}), progress=False)
    build_index(store, layout, model, IndexConfig())
    return time.perf_counter() - t0, load_checkpoint(layout.checkpoint(model), weights=False)


@dataclass
class Chain:
    """One sequence of daily updates: its workspace layout, warm epochs and what it measured."""

    layout: Any
    warm_epochs: int
    days: list[dict[str, Any]] = field(default_factory=list)
    compare: list[dict[str, Any]] = field(default_factory=list)
    new_hits: list[tuple[int, float, float]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Seconds per update, retrains, the comparisons and the new users' recall."""
        secs = [d["update_s"] for d in self.days]
        n_new = sum(n for n, _, _ in self.new_hits)
        ours = sum(n * r for n, r, _ in self.new_hits) / max(n_new, 1)
        pop = sum(n * p for n, _, p in self.new_hits) / max(n_new, 1)
        return {
            "warm_epochs": self.warm_epochs,
            "update_s": {"mean": round(statistics.mean(secs), 3),
                         "median": round(statistics.median(secs), 3),
                         "max": round(max(secs), 3)},
            "modes": {m: sum(d["mode"] == m for d in self.days)
                      for m in sorted({d["mode"] for d in self.days})},
            "compare": self.compare,
            "new_users": {"users": n_new, "recall20": round(ours, 5),
                          "recall20_popularity": round(pop, 5),
                          "ratio": round(ours / pop, 2) if pop else None}}


def copy_workspace(src: Any, dest: Path, model: str) -> Any:
    """A workspace at ``dest`` holding copies of ``src``'s checkpoint, index and export of
    ``model`` and sharing its ingest journal (a link), on the same graph."""
    from shopgraph.layout import WorkspaceLayout

    layout = WorkspaceLayout.at(dest)
    for path in (src.checkpoint(model), src.index(model), src.interactions):
        target = layout.root / path.relative_to(src.root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)  # keeps the export's time, which the journal is read from
    if src.changes.is_dir():
        layout.changes.symlink_to(src.changes, target_is_directory=True)
    return layout


def new_items_experiment(shop: Path, shares: list[float], settings: dict[str, Any]
                         ) -> dict[str, Any]:
    """How far folding in new items falls behind a full fit, by their share of the catalogue.

    The shop's simulator adds no items during the replay (3 items of 5,000 get their first
    interactions there), so the item threshold is measured offline: a random ``share`` of the
    items with interactions is taken out of the observed year, the spectral model fitted on the
    rest, and those items (with every user whose row they were in) folded back in with
    :meth:`SpectralFilter.updated`; beside the model fitted on everything, both are scored on
    the first 7 days of the holdout (Recall@20, every observed pair masked).
    """
    from shopgraph.gnn.data import InteractionMatrix
    from shopgraph.gnn.metrics import evaluate
    from shopgraph.gnn.spectral import SpectralFilter

    frames = [pd.read_parquet(shop / f, columns=["user_id", "item_id"]) for f in FILES.values()]
    events = pd.concat(frames, ignore_index=True)
    user_ids, u = np.unique(events.user_id.to_numpy(str), return_inverse=True)
    item_ids, i = np.unique(events.item_id.to_numpy(str), return_inverse=True)
    train = InteractionMatrix.from_pairs(u, i, len(user_ids), len(item_ids), user_ids, item_ids)
    holdout = pd.read_parquet(shop / "holdout.parquet")
    start = int(holdout.ts.min()) // DAY * DAY
    test = next_week(holdout, start, 0, train.matrix, user_ids, item_ids)
    full = SpectralFilter(**settings)
    full.fit(train)
    base = evaluate(full.score, train.matrix, test)["recall@20"]
    rows = []
    rng = np.random.default_rng(0)
    for share in shares:
        new = np.sort(rng.choice(train.n_items, int(round(share * train.n_items)),
                                 replace=False))
        old = np.setdiff1d(np.arange(train.n_items), new)
        order = np.concatenate([old, new])
        m = train.matrix[:, order].tocsr()
        part = InteractionMatrix(m[:, :len(old)].tocsr(), user_ids, item_ids[old])
        model = SpectralFilter(**settings)
        t0 = time.perf_counter()
        model.fit(part)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        touched = np.unique(m[:, len(old):].nonzero()[0])
        grown = model.updated(m, touched)
        fold_s = time.perf_counter() - t0
        user, item = grown.embeddings()
        back = np.empty_like(item)
        back[order] = item

        def score(rows_: np.ndarray, user: np.ndarray = user, back: np.ndarray = back) -> Any:
            import torch

            return torch.from_numpy(user[rows_] @ back.T)

        recall = evaluate(score, train.matrix, test)["recall@20"]
        rows.append({"new_item_share": share, "new_items": len(new),
                     "users_refolded": len(touched), "recall20_folded": round(recall, 5),
                     "relative_gap": round((base - recall) / base, 4),
                     "fit_s": round(fit_s, 2), "fold_s": round(fold_s, 3)})
    return {"bench": "stream-new-items", "date": dt.date.today().isoformat(),
            "settings": settings, "recall20_full": round(base, 5), "rows": rows}


def index_experiment(shop: Path, k: int, kinds: list[str]) -> dict[str, Any]:
    """FAISS index after one daily update: in place (:meth:`EmbeddingIndex.updated`) or rebuilt.

    A spectral model of rank ``k`` (no tuning) is fitted on the observed year and the first
    replay day folded in (:meth:`SpectralFilter.updated`: changed and new users move, items do
    not). For each approximate ``kind`` and each table, an index of the old vectors is built,
    then brought to the new ones both ways; seconds, and recall@20 against exact search on
    1,000 queries of the other table (as recommendations and audiences query them).
    """
    from shopgraph.config import IndexConfig
    from shopgraph.gnn.data import InteractionMatrix
    from shopgraph.gnn.spectral import SpectralFilter
    from shopgraph.retrieval.exact import exact_search, recall_at_k
    from shopgraph.retrieval.index import EmbeddingIndex

    frames = [pd.read_parquet(shop / f, columns=["user_id", "item_id"]) for f in FILES.values()]
    events = pd.concat(frames, ignore_index=True)
    holdout = pd.read_parquet(shop / "holdout.parquet")
    start = int(holdout.ts.min()) // DAY * DAY
    day = holdout[holdout.ts < start + DAY]
    user_ids = np.unique(events.user_id.to_numpy(str))
    item_ids = np.unique(events.item_id.to_numpy(str))
    new_users = np.setdiff1d(day.user_id.to_numpy(str), user_ids)
    new_items = np.setdiff1d(day.item_id.to_numpy(str), item_ids)
    all_users, all_items = np.concatenate([user_ids, new_users]), np.concatenate([item_ids,
                                                                                  new_items])
    before = pairs(events, user_ids, item_ids)
    after = pairs(pd.concat([events, day[["user_id", "item_id"]]]), all_users, all_items)
    model = SpectralFilter(k=k, tune=False)
    model.fit(InteractionMatrix(before, user_ids, item_ids))
    changed = np.unique((after[:len(user_ids), :len(item_ids)] != before).nonzero()[0])
    grown = model.updated(after, changed)
    old_tables = dict(zip(("user", "item"), model.embeddings()))
    new_tables = dict(zip(("user", "item"), grown.embeddings()))
    rows = []
    for kind in kinds:
        cfg = IndexConfig(kind=kind)
        for table, other in (("user", "item"), ("item", "user")):
            old, new = old_tables[table], new_tables[table]
            queries = new_tables[other]
            index = EmbeddingIndex.build(old, kind=kind, tune_queries=old_tables[other])
            moved = np.flatnonzero((new[:len(old)] != old).any(axis=1))
            t0 = time.perf_counter()
            rebuilt = EmbeddingIndex.build(new, kind=kind, tune_queries=queries)
            rebuild_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            updated = index.updated(new, moved, queries, kind=cfg.kind, factory=cfg.factory,
                                    target_recall=cfg.target_recall, seed=cfg.seed)
            in_place_s = time.perf_counter() - t0
            sample = queries[np.random.default_rng(1).choice(len(queries), 1000, replace=False)]
            truth = exact_search(sample, new, 20).ids

            def recall(ix: EmbeddingIndex | None, sample: np.ndarray = sample,
                       truth: np.ndarray = truth) -> float | None:
                return None if ix is None else round(recall_at_k(ix.search(sample, 20).ids,
                                                                 truth), 4)

            rows.append({"kind": kind, "table": table, "n": len(new), "changed": len(moved),
                         "added": len(new) - len(old), "factory": rebuilt.factory,
                         "rebuild_s": round(rebuild_s, 3), "rebuild_recall20": recall(rebuilt),
                         "in_place_s": round(in_place_s, 3) if updated is not None else None,
                         "in_place_recall20": recall(updated),
                         "in_place": "yes" if updated is not None else "no: rebuild"})
    return {"bench": "stream-index", "date": dt.date.today().isoformat(), "k": k, "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=90, help="days of the holdout to replay")
    ap.add_argument("--compare-at", default="30",
                    help="after how many daily updates to compare with a full retrain "
                         "(comma-separated)")
    ap.add_argument("--max-new-share", type=float, default=None,
                    help="UpdateConfig.max_new_share (default: its default); 0.99 never refits")
    ap.add_argument("--model", default="spectral", help="spectral, lightgcn or graphsage")
    ap.add_argument("--warm-epochs", default=None,
                    help="BPR models: UpdateConfig.warm_epochs of the daily updates; several "
                         "(comma-separated) replay side by side in copies of the workspace "
                         "(default: its default)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads (default: torch's choice)")
    ap.add_argument("--no-journal", action="store_true",
                    help="ingest without the journal (updates count every user's edges)")
    ap.add_argument("--users", type=int, default=20_000, help="simulated users (smoke tests)")
    ap.add_argument("--items", type=int, default=5_000, help="simulated items")
    ap.add_argument("--interactions", type=int, default=500_000, help="simulated interactions")
    ap.add_argument("--work", type=Path, default=None,
                    help="folder for the shop and workspaces (default: a temporary one); the "
                         "simulated shop is reused, the workspace made afresh")
    ap.add_argument("--new-items", default=None,
                    help="run only the offline new-item experiment at these shares of the "
                         "catalogue (comma-separated, e.g. 0.005,0.01,0.02,0.05)")
    ap.add_argument("--set", action="append", default=[],
                    help="model setting, KEY=VALUE: of `train` and the full retrains, or of "
                         "--new-items' spectral model (default there: what `train` tuned on "
                         "the shop: k=16, item_scale=0.45, tune=false)")
    ap.add_argument("--index-experiment", type=int, default=None, metavar="K",
                    help="run only the in-place vs rebuild index experiment, on a spectral "
                         "model of rank K")
    args = ap.parse_args()

    import shopgraph
    from shopgraph.config import UpdateConfig, parse_settings
    from shopgraph.gnn.checkpoint import load_checkpoint
    from shopgraph.gnn.metrics import evaluate, popularity_scores
    from shopgraph.graphdb.export import Interactions
    from shopgraph.graphdb.formats import load
    from shopgraph.graphdb.ingest import ingest
    from shopgraph.simulator import simulate

    work = args.work or Path(tempfile.mkdtemp(prefix="stream-"))
    shop = work / "shop"
    if not (shop / "holdout.parquet").is_file():
        simulate(shop, users=args.users, items=args.items,
                 interactions=args.interactions, seed=0)
    folder = work / f"ws-{int(time.time())}"
    compare_at = sorted(int(x) for x in args.compare_at.split(",") if x)
    max_share = (UpdateConfig().max_new_share if args.max_new_share is None
                 else args.max_new_share)
    if args.index_experiment:
        print(json.dumps(index_experiment(shop, args.index_experiment, ["hnsw", "ivf"])))
        return
    if args.new_items:
        settings = {"k": 16, "item_scale": 0.45, "tune": False, **parse_settings(args.set)}
        shares = [float(x) for x in args.new_items.split(",")]
        print(json.dumps(new_items_experiment(shop, shares, settings)))
        return
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from shopgraph.jobs.update import update_model

    settings = parse_settings(args.set)
    holdout = pd.read_parquet(shop / "holdout.parquet")
    start = int(holdout.ts.min()) // DAY * DAY
    observed = pd.concat([pd.read_parquet(shop / f, columns=["user_id"]) for f in FILES.values()])
    first = holdout[~holdout.user_id.isin(set(observed.user_id))].groupby("user_id").ts.min()
    first_day = ((first - start) // DAY).astype(int)
    epochs = ([int(x) for x in args.warm_epochs.split(",") if x] if args.warm_epochs
              else [UpdateConfig().warm_epochs])

    ws = shopgraph.open(folder)
    journal = None if args.no_journal else ws.layout.changes
    try:
        t0 = time.perf_counter()
        ingest(ws.store(), load("tabular", shop / "mapping.toml"), journal=journal)
        ingest_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ws.train(args.model, progress=False, **settings)
        ws.build_index(args.model)
        initial_s = time.perf_counter() - t0
        chains = [Chain(ws.layout if n == 0 else copy_workspace(
            ws.layout, folder.with_name(f"{folder.name}-warm{e}"), args.model), e)
            for n, e in enumerate(epochs)]
        for day in range(args.days):
            t0 = time.perf_counter()
            ingest(ws.store(), load("tabular", write_day(holdout, start, day,
                                                         work / "days" / str(day))),
                   journal=journal)
            ingested = time.perf_counter() - t0
            full: Any = None
            refit: Any = None
            for chain in chains:
                cfg = UpdateConfig(max_new_share=max_share, warm_epochs=chain.warm_epochs)
                result = update_model(ws.store(), chain.layout, args.model, cfg, progress=False)
                days = chain.days
                days.append({"day": day, "ingest_s": round(ingested, 3),
                             "update_s": result.seconds, "mode": result.mode,
                             "changed_users": result.changed_users,
                             "new_share": result.drift["new_share"], "steps": result.steps})
                graph = Interactions.load(chain.layout.interactions)
                uids, iids = graph.user_ids, graph.item_ids
                matrix = pairs(pd.DataFrame({"user_id": uids[graph.users],
                                             "item_id": iids[graph.items]}), uids, iids)
                ckpt = load_checkpoint(chain.layout.checkpoint(args.model), weights=False)
                days[-1]["changes_from"] = (ckpt.meta.get("update") or {}).get("changes_from")
                fresh = first_day[first_day == day].index
                if len(fresh) and day + 1 < args.days:
                    week = next_week(holdout, start, day + 1, matrix, uids, iids)
                    rows = pd.Index(uids).get_indexer(fresh)
                    rows = rows[np.diff(week.indptr)[rows] > 0]
                    if len(rows):
                        mine = evaluate(scorer(ckpt, uids, iids), matrix, week, users=rows)
                        base = evaluate(popularity_scores(matrix), matrix, week, users=rows)
                        chain.new_hits.append((len(rows), mine["recall@20"], base["recall@20"]))
                if day + 1 not in compare_at:
                    continue
                if full is None:  # once per comparison, shared by the chains
                    full_s, full = full_retrain(ws.store(), work / f"full-{folder.name}-{day + 1}",
                                                args.model, settings)
                    # the fold's drift alone (a BPR retrain's refit already is this)
                    refit = (refit_same(ckpt, matrix, uids, iids) if args.model == "spectral"
                             else None)
                truth = next_week(holdout, start, day + 1, matrix, uids, iids)
                ours = evaluate(scorer(ckpt, uids, iids), matrix, truth)["recall@20"]
                theirs = evaluate(scorer(full, uids, iids), matrix, truth)["recall@20"]
                pop = evaluate(popularity_scores(matrix), matrix, truth)["recall@20"]
                recent = [d["update_s"] for d in days]
                row = {
                    "updates": day + 1, "new_share": result.drift["new_share"],
                    "full_retrain_reindex_s": round(full_s, 2),
                    "update_s_mean": round(statistics.mean(recent), 3),
                    "update_share_of_full": round(statistics.mean(recent) / full_s, 4),
                    "recall20_updated": round(ours, 5), "recall20_full": round(theirs, 5),
                    "recall20_popularity": round(pop, 5),
                    "relative_gap": round((theirs - ours) / theirs, 4),
                    "k_updated": int(ckpt.user_emb.shape[1]),
                    "k_full": int(full.user_emb.shape[1]),
                    "refits_so_far": sum(d["mode"] == "refitted" for d in days),
                    "retrains_so_far": sum(d["mode"] == "retrained" for d in days)}
                if refit is not None:
                    same = evaluate(refit.score, matrix, truth)["recall@20"]
                    row.update({"recall20_refit_same_settings": round(same, 5),
                                "relative_gap_to_refit": round((same - ours) / same, 4)})
                chain.compare.append(row)
        main_chain = chains[0]
        days = main_chain.days
        folds = [d["update_s"] for d in days if d["mode"] in ("folded", "warm-started")]
        line = {
            "bench": "stream", "date": dt.date.today().isoformat(), "host": platform.node(),
            "model": args.model, "settings": settings, "days": args.days,
            "max_new_share": max_share, "ingest_observed_s": round(ingest_s, 1),
            "initial_train_reindex_s": round(initial_s, 2),
            "update_s": main_chain.summary()["update_s"],
            "ingest_day_s_mean": round(statistics.mean(d["ingest_s"] for d in days), 3),
            "refits": [d["day"] for d in days if d["mode"] == "refitted"],
            "changes_from": {str(k): sum(d.get("changes_from") == k for d in days)
                             for k in {d.get("changes_from") for d in days}},
            "retrains": [d["day"] for d in days if d["mode"] == "retrained"],
            "fold_s": {"mean": round(statistics.mean(folds), 3),
                       "median": round(statistics.median(folds), 3)} if folds else None,
            "compare": main_chain.compare,
            "new_users": main_chain.summary()["new_users"],
            "steps_mean_s": {k: round(statistics.mean(d["steps"].get(k, 0.0) for d in days), 3)
                             for k in sorted({k for d in days for k in d["steps"]})},
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
        if args.model != "spectral":
            line["warm"] = [chain.summary() for chain in chains]
        print(json.dumps(line))
        (work / f"days-{folder.name}.json").write_text(
            json.dumps({c.warm_epochs: c.days for c in chains}))
    finally:
        ws.close()
        ws.server().stop()


if __name__ == "__main__":
    main()
