"""Refresh a trained model after new events were ingested, without a full retrain
(``shopgraph update``); see ``docs/update.md``.

* ``spectral``: users whose interactions changed since the checkpoint, and new users, are folded
  in from their rows with the current item basis; new items (and items that had no interactions)
  are embedded from their columns (:meth:`SpectralFilter.updated`). Users and items that did
  not change keep their embeddings bit for bit. No new SVD.
* Past :class:`~shopgraph.config.UpdateConfig`'s drift thresholds (the pairs added, or the items
  first seen, since the last full fit), or when ids disappeared from the graph, the spectral
  model is refitted on every interaction with the checkpoint's settings (one SVD, no split and
  no tuning, as ``train``'s refit for serving).
* It is retrained from scratch (the ``train`` path: split, tuning, refit) when asked (``full``),
  and always for the BPR models (LightGCN, GraphSAGE), which have no warm start yet.

What changed is found by comparing the graph's interactions with the export the checkpoint was
fitted on (``layout.interactions``, written by ``train`` and by every update, recognised by the
checkpoint's data fingerprint): :func:`read_changes` counts every user's edges in the graph and
reads again only the edges of users whose counts moved. If that export is missing or belongs to
other data, everything is exported and every user with interactions is folded in again (the
same embeddings up to rounding).

Atomicity: the new checkpoint, its index (updated in place or rebuilt, with the settings it was
built with, see :func:`index_in_place`) and the
export are written into a staging folder inside the workspace, then renamed over the old files
(checkpoint, index, export), so a failure before the renames leaves every old file in place and
a query loads the old pair or the new one; a retriever that loads between the two renames gets
:class:`~shopgraph.errors.IndexMismatchError` (fingerprints differ), never a mix.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from shopgraph.artifacts import read_header
from shopgraph.config import IndexConfig, TrainConfig, UpdateConfig
from shopgraph.gnn.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from shopgraph.gnn.data import InteractionMatrix
from shopgraph.graphdb.export import Interactions, export_interactions
from shopgraph.jobs.results import UpdateResult
from shopgraph.jobs.train import train_model
from shopgraph.layout import WorkspaceLayout
from shopgraph.retrieval.index import EmbeddingIndex

if TYPE_CHECKING:
    from shopgraph.graphdb.store import GraphStore

FOLDABLE = ("spectral",)
"""Models updated by folding in; every other model is retrained."""
TUNED = ("k", "item_scale")
"""Spectral settings chosen by tuning: a retrain tunes them again from the defaults."""

SPLIT_PART = ("split",)
"""The ``rel_types`` of a base that is the training part of a split (pairs, no edges)."""

Step = Callable[[str], None]


@dataclass
class _Fold:
    """An incremental update: the new model on the grown matrix, and what changed."""

    model: Any
    matrix: InteractionMatrix
    new_users: int
    new_items: int
    changed_users: int
    new_interactions: int
    refolded_all: bool


def update_model(store: GraphStore, layout: WorkspaceLayout, model: str,
                 config: UpdateConfig | None = None, *, progress: bool = True,
                 on_step: Step | None = None) -> UpdateResult:
    """Bring ``model``'s checkpoint (and index) up to date with the graph; see the module
    docstring. ``on_step`` is called with the name of each step as it starts.

    Raises:
        FileNotFoundError: the model has no checkpoint (train it first).
    """
    config = config or UpdateConfig()
    started = time.perf_counter()
    steps: dict[str, float] = {}
    say = on_step or (lambda _: None)

    @contextmanager
    def step(name: str) -> Iterator[None]:
        say(name)
        t0 = time.perf_counter()
        yield
        steps[name] = round(steps.get(name, 0.0) + time.perf_counter() - t0, 3)

    ckpt = load_checkpoint(layout.checkpoint(model))
    with step("read"):
        base = _base(layout, ckpt)
        whole = base is not None and base.rel_types != SPLIT_PART
        arrays = read_changes(store, base) if whole and base is not None else None
        if arrays is None:  # no whole export to start from, or ids vanished: read everything
            arrays = export_interactions(store, list(base.rel_types) if whole and base
                                         else ckpt.meta.get("split", {}).get("rel_types"))
        current = InteractionMatrix.from_interactions(arrays)
    since = _since_full_fit(ckpt, base, current)
    drift = {**since, "max_new_share": config.max_new_share,
             "max_new_item_share": config.max_new_item_share}
    index_cfg = _index_config(layout, model)
    if not config.full and current.fingerprint() == ckpt.data_fingerprint:  # nothing new
        if not whole:  # the export was missing or stale (an earlier run cut short): heal it
            arrays.save(layout.interactions)
        index = None
        if index_cfg is not None and _index_fingerprint(layout, model) != ckpt.fingerprint:
            with _staging(layout) as stage, step("index"):  # an earlier swap was cut short
                shutil.copy2(layout.checkpoint(model), stage.checkpoint(model))
                index = _build_index(store, stage, model, index_cfg, arrays)
                _replace(stage.index(model), layout.index(model))
                index["path"] = str(layout.index(model))
        return _result(model, layout, "unchanged", "", ckpt, current, 0, 0, 0, 0, drift,
                       started, steps, index)
    action, reason = _decide(model, config, since)
    fold = None
    if action == "fold":
        with step("fold"):
            fold = _fold_spectral(ckpt, base, arrays)
        if fold is None:
            action, reason = "refit", "users or items were deleted from the graph"
    with _staging(layout) as stage:
        trained = None
        if action == "retrain":
            with step("train"):
                trained = train_model(store, stage, model, _train_config(ckpt),
                                      progress=progress)
            counts = _counts(ckpt, load_checkpoint(stage.checkpoint(model), weights=False))
        else:
            with step("refit" if fold is None else "save"):
                if fold is None:
                    _save_refit(stage.checkpoint(model), ckpt, current, since)
                    counts = _counts(ckpt, load_checkpoint(stage.checkpoint(model),
                                                           weights=False))
                else:
                    _save_folded(stage.checkpoint(model), ckpt, fold, current, since,
                                 time.perf_counter() - started)
                    counts = (fold.new_users, fold.new_items, fold.changed_users,
                              fold.new_interactions)
                arrays.save(stage.interactions)
        new = load_checkpoint(stage.checkpoint(model), weights=False)
        index = None
        if index_cfg is not None:
            with step("index"):  # in place where it can when the rows only grew (a fold)
                index = _build_index(store, stage, model, index_cfg, arrays,
                                     (ckpt, layout.index(model)) if fold is not None else None)
        with step("swap"):  # index last: a retriever between the renames refuses the pair
            _replace(stage.checkpoint(model), layout.checkpoint(model))
            if index is not None:
                _replace(stage.index(model), layout.index(model))
                index["path"] = str(layout.index(model))
            _replace(stage.interactions, layout.interactions)
            for name in ("metrics_log", "train_state"):  # a BPR retrain's log and state
                src = getattr(stage, name)(model)
                if src.is_file():
                    _replace(src, getattr(layout, name)(model))
    if fold is not None and fold.refolded_all:
        reason = ("no export matching the checkpoint's training data, so every user was "
                  "folded in again")
    mode = {"fold": "folded", "refit": "refitted", "retrain": "retrained"}[action]
    result = _result(model, layout, mode, reason, new, current, *counts, drift, started, steps,
                     index)
    return replace(result, train=trained.to_dict() if trained is not None else None)


def _result(model: str, layout: WorkspaceLayout, mode: str, reason: str, ckpt: Checkpoint,
            current: InteractionMatrix, new_users: int, new_items: int, changed: int,
            added: int, drift: dict[str, float], started: float, steps: dict[str, float],
            index: dict[str, Any] | None) -> UpdateResult:
    return UpdateResult(
        model=model, checkpoint=layout.checkpoint(model), mode=mode, reason=reason,
        users=len(ckpt.user_ids), items=len(ckpt.item_ids), interactions=current.nnz,
        new_users=new_users, new_items=new_items, changed_users=changed,
        new_interactions=added, drift=drift, seconds=round(time.perf_counter() - started, 3),
        steps=steps, fingerprint=ckpt.fingerprint, index=index)


# -- what changed ----------------------------------------------------------------------------

def _base(layout: WorkspaceLayout, ckpt: Checkpoint) -> Interactions | None:
    """The saved export the checkpoint was fitted on (all of it, or the training part of its
    split for a checkpoint that was not refitted: pairs only, its types :data:`SPLIT_PART`), or
    ``None`` when there is none."""
    if not layout.interactions.is_file():
        return None
    arrays = Interactions.load(layout.interactions)
    full = InteractionMatrix.from_interactions(arrays)
    if full.fingerprint() == ckpt.data_fingerprint:
        return arrays
    split = ckpt.meta.get("split")
    if ckpt.refit is None and split and split.get("fingerprint") == ckpt.data_fingerprint:
        from shopgraph.gnn.split import holdout_split
        from shopgraph.graphdb.export import MISSING_TS

        ts = arrays.ts if split.get("temporal") and (arrays.ts != MISSING_TS).all() else None
        train, _ = holdout_split(arrays.users, arrays.items, len(arrays.user_ids),
                                 len(arrays.item_ids), ts=ts, fraction=split["fraction"],
                                 seed=split["seed"], user_ids=arrays.user_ids,
                                 item_ids=arrays.item_ids)
        if train.fingerprint() == ckpt.data_fingerprint:
            coo = train.matrix.tocoo()
            n = coo.nnz
            return Interactions(arrays.user_ids, arrays.item_ids, coo.row.astype(np.int64),
                                coo.col.astype(np.int64), np.zeros(n, np.int64),
                                np.zeros(n), np.zeros(n, np.int8), SPLIT_PART)
    return None


USER_EDGE_COUNTS = "MATCH (s:User) RETURN s.id AS s{counts}"
"""Every user with its number of edges of each type (``COUNT {}`` walks each user's edge
list: on the 20k-user shop 7x cheaper than streaming the edges)."""
EDGES_OF_USERS = (
    "UNWIND $ids AS id MATCH (s:User {{id: id}})-[r:{rel}]->(d:Item) "
    "RETURN s.id AS s, collect(d.id) AS d, collect(coalesce(r.ts, $no_ts)) AS ts, "
    "collect(coalesce(r.value, $no_value)) AS v")
"""The edges of one type of the users in ``$ids``, grouped by user (as ``export`` reads them)."""
FETCH_USERS = 2000


def read_changes(store: GraphStore, base: Interactions) -> Interactions | None:
    """The graph's interactions of ``base``'s types now, read without streaming every edge:
    a user's edges of a type are read again where their count differs from ``base``'s, the
    others are ``base``'s. ``None`` when a user or item of ``base`` is no longer in the graph.

    Equal to :func:`~shopgraph.graphdb.export.export_interactions` (same id maps, same pairs,
    another edge order) as long as edges are only added, which is all ingest does; a user who
    lost as many edges as they gained would be missed.
    """
    from shopgraph.graphdb import schema
    from shopgraph.graphdb.export import MISSING_TS, node_ids, stable_ids

    rels = list(base.rel_types)
    counts_q = USER_EDGE_COUNTS.format(counts="".join(
        f", COUNT {{ (s)-[:{schema.rel(t)}]->() }} AS n{k}" for k, t in enumerate(rels)))
    records = [(r["s"], *(r[f"n{k}"] for k in range(len(rels)))) for r in
               store.stream(counts_q)]
    user_ids = stable_ids(r[0] for r in records)
    item_ids = node_ids(store, "Item")
    upos, ipos = pd.Index(user_ids), pd.Index(item_ids)
    old_u, old_i = upos.get_indexer(base.user_ids), ipos.get_indexer(base.item_ids)
    if (old_u < 0).any() or (old_i < 0).any():
        return None
    n_rels = len(rels)
    now = np.zeros((len(user_ids), n_rels), dtype=np.int64)
    if records:
        now[upos.get_indexer([r[0] for r in records])] = np.array([r[1:] for r in records])
    base_users = old_u[base.users]
    before = np.bincount(base_users * n_rels + base.rel.astype(np.int64),
                         minlength=now.size).reshape(now.shape)
    moved = now != before  # (user, type) pairs whose edges are read again
    keep = ~moved[base_users, base.rel.astype(np.int64)]
    parts = [(base_users[keep], old_i[base.items][keep], base.ts[keep], base.value[keep],
              base.rel[keep])]
    for code, rel in enumerate(rels):
        ids = user_ids[np.flatnonzero(moved[:, code])].tolist()
        query = EDGES_OF_USERS.format(rel=schema.rel(rel))
        for start in range(0, len(ids), FETCH_USERS):
            src: list[str] = []
            dst: list[str] = []
            ts: list[int] = []
            val: list[float] = []
            for r in store.stream(query, ids=ids[start:start + FETCH_USERS],
                                  no_ts=int(MISSING_TS), no_value=float("nan")):
                src += [r["s"]] * len(r["d"])
                dst += r["d"]
                ts += r["ts"]
                val += r["v"]
            u, i = upos.get_indexer(src), ipos.get_indexer(dst)
            if (u < 0).any() or (i < 0).any():
                return None  # a node added while reading: read everything instead
            parts.append((u.astype(np.int64), i.astype(np.int64), np.asarray(ts, np.int64),
                          np.asarray(val, np.float64), np.full(len(u), code, np.int8)))
    users, items, ts_all, value, rel_codes = (np.concatenate(c) for c in zip(*parts))
    return Interactions(user_ids, item_ids, users.astype(np.int64), items.astype(np.int64),
                        ts_all.astype(np.int64), value.astype(np.float64),
                        rel_codes.astype(np.int8), tuple(rels))


def _since_full_fit(ckpt: Checkpoint, base: Interactions | None,
                    current: InteractionMatrix) -> dict[str, float]:
    """Drift since the last full fit: the share of today's pairs added since, and the share of
    today's items with interactions that had none then."""
    full = ckpt.meta.get("full_fit") or {}
    if "interactions" not in full:  # a checkpoint straight from `train`
        refit = ckpt.refit or {}
        full = {"interactions": refit.get("interactions",
                                          ckpt.meta.get("split", {}).get("interactions", 0)),
                "items": _items_with_interactions(ckpt, base)}
    pairs = max(current.nnz, 1)
    items = max(int((np.diff(current.matrix.tocsc().indptr) > 0).sum()), 1)
    return {"new_share": round(max(current.nnz - int(full["interactions"]), 0) / pairs, 6),
            "new_item_share": round(max(items - int(full["items"]), 0) / items, 6),
            "full_fit_interactions": int(full["interactions"]),
            "full_fit_items": int(full["items"])}


def _items_with_interactions(ckpt: Checkpoint, base: Interactions | None) -> int:
    if base is not None:
        return len(np.unique(base.items))
    degree = ckpt.weights.get("item_degree")
    if degree is not None:
        return int((np.asarray(degree) > 0).sum())
    return int((np.abs(ckpt.item_emb).sum(axis=1) > 0).sum())


def _decide(model: str, config: UpdateConfig, since: dict[str, float]) -> tuple[str, str]:
    """``(action, reason)``: ``fold``, ``refit`` (past a drift threshold) or ``retrain``."""
    if config.full:
        return "retrain", "a full retrain was asked for"
    if model not in FOLDABLE:
        return "retrain", (f"{model} has no incremental update yet (only "
                           f"{', '.join(FOLDABLE)} is folded in)")
    if since["new_share"] > config.max_new_share:
        return "refit", (f"{since['new_share']:.1%} of the interactions are new since the last "
                         f"full fit (threshold {config.max_new_share:.1%})")
    if since["new_item_share"] > config.max_new_item_share:
        return "refit", (f"{since['new_item_share']:.1%} of the items are new since the last "
                         f"full fit (threshold {config.max_new_item_share:.1%})")
    return "fold", ""


def _ordered(old: np.ndarray, now: np.ndarray) -> np.ndarray | None:
    """``old`` ids first, then the ids of ``now`` it lacks (in ``now``'s stable order);
    ``None`` when an id of ``old`` is no longer in ``now``."""
    old = np.asarray(old, dtype=str)
    known = pd.Index(now).get_indexer(old)
    if (known < 0).any():
        return None
    fresh = np.ones(len(now), dtype=bool)
    fresh[known] = False
    return np.concatenate([old, np.asarray(now, dtype=str)[fresh]])


def _matrix(arrays: Interactions, users: np.ndarray, items: np.ndarray) -> sp.csr_matrix:
    """``arrays`` as a binary matrix on the id maps ``users`` x ``items``."""
    u = pd.Index(users).get_indexer(arrays.user_ids)[arrays.users]
    i = pd.Index(items).get_indexer(arrays.item_ids)[arrays.items]
    return InteractionMatrix.from_pairs(u, i, len(users), len(items)).matrix


def _fold_spectral(ckpt: Checkpoint, base: Interactions | None,
                   arrays: Interactions) -> _Fold | None:
    """Fold the grown interactions into ``ckpt``'s spectral model (``None``: ids vanished)."""
    from shopgraph.gnn.spectral import SpectralFilter

    users = _ordered(ckpt.user_ids, arrays.user_ids)
    items = _ordered(ckpt.item_ids, arrays.item_ids)
    if users is None or items is None:
        return None
    n_users = len(ckpt.user_ids)
    now = _matrix(arrays, users, items)
    if base is not None:
        before = _matrix(base, users, items)
        changed = np.unique((now[:n_users] != before[:n_users]).nonzero()[0])
        added = int((now - now.multiply(before)).nnz)
    else:  # no record of the training rows: fold in everyone who has interactions
        changed = np.flatnonzero(np.diff(now.indptr)[:n_users] > 0)
        added = max(now.nnz - int((ckpt.refit or {}).get("interactions", 0)), 0)
    w = ckpt.weights
    # Items the model knows are those with a training degree; the others (no interactions at
    # the fit, or new ids) go last, where SpectralFilter.updated embeds them from their columns.
    known = np.flatnonzero(np.asarray(w["item_degree"]) > 0)
    order = np.concatenate([known, np.setdiff1d(np.arange(len(items)), known)])
    fitted = SpectralFilter(**ckpt.config)
    fitted.load_state({"user_emb": w["user_emb"], "item_emb": w["item_emb"][known],
                       "item_degree": w["item_degree"][known], "sigma": w["sigma"]},
                      n_users, len(known))
    grown = fitted.updated(now[:, order], changed)
    state = grown.state()
    item_emb = np.empty_like(state["item_emb"])
    item_emb[order] = state["item_emb"]
    degree = np.empty_like(state["item_degree"])
    degree[order] = state["item_degree"]
    out = SpectralFilter(**ckpt.config)
    out.load_state({"user_emb": state["user_emb"], "item_emb": item_emb, "item_degree": degree,
                    "sigma": state["sigma"]}, len(users), len(items))
    cold = np.flatnonzero(np.diff(now.tocsc().indptr) > 0)
    new_items = int(len(np.setdiff1d(cold, known)))
    return _Fold(out, InteractionMatrix(now, users, items), len(users) - n_users, new_items,
                 len(changed), added, base is None)


# -- writing -------------------------------------------------------------------------------

def _save_folded(path: Path, ckpt: Checkpoint, fold: _Fold,
                 current: InteractionMatrix, since: dict[str, float], seconds: float) -> None:
    """The folded model's checkpoint: the previous meta (split, metrics, refit) carried over,
    the update recorded, and the data fingerprint of all current interactions (stable order,
    as ``train`` and ``evaluate`` compute it)."""
    keep = {k: v for k, v in ckpt.meta.items()
            if k not in ("format", "created", "embeddings_sha256", "update")}
    keep["full_fit"] = {"interactions": since["full_fit_interactions"],
                        "items": since["full_fit_items"]}
    keep["update"] = {
        "base_fingerprint": ckpt.fingerprint, "base_data_fingerprint": ckpt.data_fingerprint,
        "new_users": fold.new_users, "new_items": fold.new_items,
        "changed_users": fold.changed_users, "new_interactions": fold.new_interactions,
        "refolded_all": fold.refolded_all, "seconds": round(seconds, 3), "at": time.time(),
        "count": int((ckpt.meta.get("update") or {}).get("count", 0)) + 1}
    # save_checkpoint records the fingerprint of the matrix it is given (ids in the
    # checkpoint's order: old first); ``data_fingerprint`` overrides it with the stable one.
    save_checkpoint(path, fold.model, fold.matrix, data_fingerprint=current.fingerprint(),
                    **keep)


def _save_refit(path: Path, ckpt: Checkpoint, current: InteractionMatrix,
                since: dict[str, float]) -> None:
    """The model fitted again on every current interaction with the checkpoint's settings (its
    tuned rank and item scaling; no split, no tuning), as ``train``'s refit for serving does;
    the previous meta (split, metrics) carried over, the refit and the new full fit recorded."""
    from shopgraph.gnn.registry import model_class

    fresh = model_class(ckpt.model)(**ckpt.config)
    started = time.perf_counter()
    report = fresh.fit(current)
    seconds = round(time.perf_counter() - started, 2)
    keep = {k: v for k, v in ckpt.meta.items()
            if k not in ("format", "created", "embeddings_sha256", "update", "full_fit")}
    keep["refit"] = {"interactions": current.nnz, "fit_seconds": seconds, "epochs": None,
                     "history": report.history}
    keep["update"] = {"base_fingerprint": ckpt.fingerprint,
                      "base_data_fingerprint": ckpt.data_fingerprint, "refit": True,
                      "seconds": seconds, "at": time.time(),
                      "drift": {k: since[k] for k in ("new_share", "new_item_share")}}
    save_checkpoint(path, fresh, current, **keep)


def _train_config(ckpt: Checkpoint) -> TrainConfig:
    """The settings of a retrain: the checkpoint's split and model settings, tuned ones
    dropped so that tuning starts again from the defaults."""
    split = ckpt.meta.get("split") or {}
    settings = {k: v for k, v in ckpt.config.items() if k != "seed"}
    if ckpt.model == "spectral" and settings.get("tune"):
        settings = {k: v for k, v in settings.items() if k not in TUNED}
    rel_types = split.get("rel_types")
    return TrainConfig(valid_fraction=float(split.get("fraction", 0.1)),
                       seed=int(split.get("seed", ckpt.config.get("seed", 0))),
                       rel_types=tuple(rel_types) if rel_types else None,
                       refit=ckpt.refit is not None or not split, settings=settings)


def _counts(old: Checkpoint, new: Checkpoint) -> tuple[int, int, int, int]:
    """New users and items of a retrain (ids the old checkpoint lacked); the changed users and
    pairs are not tracked through a retrain."""
    return (len(np.setdiff1d(new.user_ids, old.user_ids)),
            len(np.setdiff1d(new.item_ids, old.item_ids)), 0, 0)


def _index_config(layout: WorkspaceLayout, model: str) -> IndexConfig | None:
    """The settings ``model``'s index was built with (``None``: it has no index)."""
    from shopgraph.retrieval.persist import INDEX_FORMAT

    path = layout.index(model)
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        header = read_header(z, path, INDEX_FORMAT, "shopgraph index build")
    meta = header.get("meta", {})
    return IndexConfig(kind=meta.get("kind", "auto"), factory=meta.get("factory"),
                       target_recall=meta.get("target_recall", 0.98),
                       seen_rel_types=tuple(header.get("seen_rel_types") or ()) or None,
                       seed=meta.get("seed", 0), ef_construction=meta.get("ef_construction"))


def _index_fingerprint(layout: WorkspaceLayout, model: str) -> str | None:
    with np.load(layout.index(model), allow_pickle=False) as z:
        from shopgraph.retrieval.persist import INDEX_FORMAT

        fp: str | None = read_header(z, layout.index(model), INDEX_FORMAT,
                                     "shopgraph index build").get("checkpoint_fingerprint")
    return fp


def _build_index(store: GraphStore, stage: WorkspaceLayout, model: str, cfg: IndexConfig,
                 arrays: Interactions, previous: tuple[Checkpoint, Path] | None = None
                 ) -> dict[str, Any]:
    """Build the staged checkpoint's index as :func:`shopgraph.jobs.index.build_index` does,
    taking the seen pairs from ``arrays`` (the interactions just read) when they hold the seen
    types instead of reading them again. With ``previous`` (the old checkpoint, whose rows the
    new one extends, and its index file), each FAISS index is updated in place where
    :func:`index_in_place` can, and rebuilt otherwise."""
    from shopgraph.jobs.index import catalogue_from_graph, index_result, seen_from_graph
    from shopgraph.retrieval.build import build_bundle
    from shopgraph.retrieval.persist import TABLES, IndexBundle, save_bundle

    ckpt = load_checkpoint(stage.checkpoint(model), weights=False)
    wanted = cfg.seen_rel_types
    if wanted is not None and set(wanted) <= set(arrays.rel_types):
        rows = np.isin(arrays.rel, [arrays.rel_types.index(t) for t in wanted])
        u = pd.Index(ckpt.user_ids).get_indexer(arrays.user_ids)[arrays.users[rows]]
        i = pd.Index(ckpt.item_ids).get_indexer(arrays.item_ids)[arrays.items[rows]]
        seen = InteractionMatrix.from_pairs(u, i, len(ckpt.user_ids), len(ckpt.item_ids)).matrix
        rels: tuple[str, ...] = tuple(wanted)
    else:
        seen, rels = seen_from_graph(store, ckpt, wanted)
    catalogue = catalogue_from_graph(store, ckpt)
    settings: dict[str, Any] = {"kind": cfg.kind, "factory": cfg.factory,
                                "target_recall": cfg.target_recall, "seed": cfg.seed,
                                "ef_construction": cfg.ef_construction}
    old = _previous_bundle(*previous) if previous is not None else None
    if previous is None or old is None:
        bundle = build_bundle(ckpt, seen=seen, seen_rel_types=rels, catalogue=catalogue,
                              **settings)
    else:
        started = time.perf_counter()
        tables = {"item": ckpt.item_emb, "user": ckpt.user_emb}
        before = {"item": previous[0].item_emb, "user": previous[0].user_emb}
        tune_with = {"items": ckpt.user_emb, "users": ckpt.item_emb,
                     "items_cosine": ckpt.item_emb, "users_cosine": ckpt.user_emb}
        indexes = {}
        for name, (table, metric) in TABLES.items():
            n_old = len(before[table])
            changed = np.flatnonzero((tables[table][:n_old] != before[table]).any(axis=1))
            indexes[name] = index_in_place(old.indexes[name], tables[table], changed,
                                           tune_with[name], cfg) or EmbeddingIndex.build(
                tables[table], kind=cfg.kind, factory=cfg.factory, metric=metric,
                tune_queries=tune_with[name], target_recall=cfg.target_recall, seed=cfg.seed,
                ef_construction=cfg.ef_construction)
        meta = {**settings, "build_seconds": round(time.perf_counter() - started, 2)}
        bundle = IndexBundle(ckpt.model, ckpt.fingerprint, indexes, sp.csr_matrix(seen), rels,
                             catalogue, meta)
    return index_result(save_bundle(stage.index(model), bundle), bundle.describe()).to_dict()


def _previous_bundle(ckpt: Checkpoint, path: Path) -> Any:
    """The index of ``ckpt`` at ``path``, or ``None`` when it belongs to another checkpoint."""
    from shopgraph.errors import IndexMismatchError
    from shopgraph.retrieval.persist import load_bundle

    try:
        return load_bundle(path, ckpt)
    except (IndexMismatchError, ValueError):
        return None


def index_in_place(index: EmbeddingIndex, vectors: np.ndarray, changed: np.ndarray,
                   queries: np.ndarray, cfg: IndexConfig) -> EmbeddingIndex | None:
    """``index`` brought to ``vectors`` (its own rows first, ``changed`` among them, then new
    rows) without a rebuild, or ``None`` where a rebuild is needed.

    Exact search holds no structure: it takes the new table as it is (while the kind still
    says exact). IVF indexes replace the changed vectors (``remove_ids``, then ``add_with_ids``)
    and add the new ones; HNSW adds new vectors but cannot move one, so a changed vector means
    a rebuild. An updated approximate index keeps its tuned search parameter if its recall@20
    against exact search, measured again on up to 1,000 of ``queries``, still reaches
    ``cfg.target_recall``; otherwise it is rebuilt (and tuned) too.
    """
    import faiss

    from shopgraph.retrieval.exact import exact_search, recall_at_k
    from shopgraph.retrieval.index import choose_factory

    n, d = vectors.shape
    if index.exact:
        if (cfg.factory or choose_factory(cfg.kind, n, d)) != "Flat":
            return None  # grown past exact search
        return EmbeddingIndex(vectors, "Flat", index.metric, info=dict(index.info))
    ivf = "IVF" in index.factory
    if (len(changed) and not ivf) or vectors.shape[1] != index.vectors.shape[1]:
        return None
    if not len(changed) and n == len(index):  # the same vectors: the same index
        return EmbeddingIndex(vectors, index.factory, index.metric, index.index, index.params,
                              index.info)
    started = time.perf_counter()
    new = EmbeddingIndex(vectors, index.factory, index.metric,
                         faiss.clone_index(faiss.downcast_index(index.index)), index.params)
    rows = np.concatenate([changed, np.arange(len(index), n)]).astype(np.int64)
    if ivf:
        if len(changed):
            new.index.remove_ids(changed.astype(np.int64))
        new.index.add_with_ids(new.vectors[rows], rows)
    else:
        new.index.add(new.vectors[rows])
    informative = queries[np.linalg.norm(queries, axis=1) > 0]
    rng = np.random.default_rng(cfg.seed)
    sample = informative[rng.choice(len(informative), min(len(informative), 1000),
                                    replace=False)] if len(informative) else vectors[:1000]
    k = min(20, n)
    if index.metric == "cosine":
        sample = sample / np.maximum(np.linalg.norm(sample, axis=1, keepdims=True), 1e-30)
    sample = np.ascontiguousarray(sample, dtype=np.float32)
    recall = recall_at_k(new.search(sample, k).ids, exact_search(sample, new.vectors, k).ids)
    if recall < cfg.target_recall:
        return None
    new.info = {**index.info, "recall@20": round(recall, 4),
                "in_place": {"replaced": len(changed), "added": n - len(index),
                             "seconds": round(time.perf_counter() - started, 3)}}
    return new


@contextmanager
def _staging(layout: WorkspaceLayout) -> Iterator[WorkspaceLayout]:
    """A scratch workspace layout inside the workspace (same file system, so the final
    renames are atomic), removed afterwards whatever happens."""
    layout.root.mkdir(parents=True, exist_ok=True)
    folder = tempfile.mkdtemp(prefix=".update-", dir=layout.root)
    try:
        yield WorkspaceLayout.at(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _replace(src: os.PathLike[str], dest: os.PathLike[str]) -> None:
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    os.replace(src, dest)
