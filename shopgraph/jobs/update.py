"""Refresh a trained model after new events were ingested, without a full retrain
(``shopgraph update``); see ``docs/update.md``.

* ``spectral``: users whose interactions changed since the checkpoint, and new users, are folded
  in from their rows with the current item basis; new items (and items that had no interactions)
  are embedded from their columns (:meth:`SpectralFilter.updated`). Users and items that did
  not change keep their embeddings bit for bit. No new SVD.
* ``lightgcn`` / ``graphsage``: warm-started (:mod:`shopgraph.gnn.warm`): the model is built on
  the grown graph with every learnt parameter of the checkpoint copied, each new user's and
  item's ID embedding the mean of its neighbours', then trained ``UpdateConfig.warm_epochs``
  BPR epochs on every interaction (no split; default 0, the start alone, as measured in
  ``docs/update.md``) with the checkpoint's optimiser settings and ``max_seconds`` budget
  (checked per step). GraphSAGE's new items get their category and
  price from the graph. Every vector moves, so the index is rebuilt.
* Past :class:`~shopgraph.config.UpdateConfig`'s drift thresholds (the pairs added, or the items
  first seen, since the last full fit), or when ids disappeared from the graph, the spectral
  model is refitted on every interaction with the checkpoint's settings (one SVD, no split and
  no tuning, as ``train``'s refit for serving); a BPR model is retrained.
* It is retrained from scratch (the ``train`` path: split, tuning, refit) when asked
  (``full``).

What changed is found by comparing the graph's interactions with the export the checkpoint was
fitted on (``layout.interactions``, written by ``train`` and by every update, recognised by the
checkpoint's data fingerprint): the edges of the users that ingest's journal lists since that
export are read again (:func:`~shopgraph.graphdb.export.read_listed_changes`), or, where the
journal does not cover the interval, :func:`~shopgraph.graphdb.export.read_changes` counts every
user's edges in the graph and reads again only those of users whose counts moved. If that
export is missing or belongs to other data, everything is exported and every user with
interactions is folded in again (the same embeddings up to rounding).

Atomicity: the new checkpoint, its index (updated in place or rebuilt, with the settings it was
built with, see :func:`~shopgraph.retrieval.build.updated_bundle`) and the export are written
into a staging folder inside the workspace, then renamed over the old files (checkpoint, index,
export), so a failure before the renames leaves every old file in place and
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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from shopgraph.config import IndexConfig, TrainConfig, UpdateConfig
from shopgraph.gnn.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from shopgraph.gnn.data import InteractionMatrix
from shopgraph.graphdb.export import (
    Interactions,
    export_interactions,
    read_changes,
    read_listed_changes,
)
from shopgraph.graphdb.journal import journalled_users, prune_journal
from shopgraph.jobs.results import UpdateResult
from shopgraph.jobs.train import train_model
from shopgraph.layout import WorkspaceLayout
from shopgraph.retrieval.persist import index_config, index_fingerprint

if TYPE_CHECKING:
    from shopgraph.graphdb.store import GraphStore

FOLDABLE = ("spectral",)
"""Models updated by folding in."""
WARM = ("lightgcn", "graphsage")
"""Models updated by a warm start (:mod:`shopgraph.gnn.warm`); any other is retrained."""
TUNED = ("k", "item_scale")
"""Spectral settings chosen by tuning: a retrain tunes them again from the defaults."""

SPLIT_PART = ("split",)
"""The ``rel_types`` of a base that is the training part of a split (pairs, no edges)."""

Step = Callable[[str], None]


@dataclass
class _Fold:
    """An incremental update (a fold or a warm start): the new model on the grown matrix, what
    changed, and what to record of it in the checkpoint's ``meta["update"]``."""

    model: Any
    matrix: InteractionMatrix
    new_users: int
    new_items: int
    changed_users: int
    new_interactions: int
    refolded_all: bool
    record: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Grown:
    """The interactions now on the checkpoint's id order (its ids first, new ones appended)."""

    users: np.ndarray
    items: np.ndarray
    now: sp.csr_matrix
    before: sp.csr_matrix | None
    changed: np.ndarray
    added: int


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
    # journal entries up to the export read here are never needed again once it is replaced
    read_past = layout.interactions.stat().st_mtime if layout.interactions.is_file() else None

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
        arrays, read = (_read(store, layout, base) if whole and base is not None
                        else (None, {"changes_from": "export"}))
        if arrays is None:  # no whole export to start from, or ids vanished: read everything
            arrays = export_interactions(store, list(base.rel_types) if whole and base
                                         else ckpt.meta.get("split", {}).get("rel_types"))
            read = {"changes_from": "export"}
        current = InteractionMatrix.from_interactions(arrays)
    since = _since_full_fit(ckpt, base, current)
    drift = {**since, "max_new_share": config.max_new_share,
             "max_new_item_share": config.max_new_item_share}
    index_cfg = index_config(layout.index(model))
    if not config.full and current.fingerprint() == ckpt.data_fingerprint:  # nothing new
        if not whole:  # the export was missing or stale (an earlier run cut short): heal it
            arrays.save(layout.interactions)
        index = None
        if index_cfg is not None and index_fingerprint(layout.index(model)) != ckpt.fingerprint:
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
    elif action == "warm":
        with step("warm"):
            fold = _warm_bpr(store, ckpt, base, arrays, config.warm_epochs, progress)
        if fold is None:
            action, reason = "retrain", "users or items were deleted from the graph"
    with _staging(layout) as stage:
        trained = None
        if action == "retrain":
            with step("train"):
                trained = train_model(store, stage, model, _train_config(ckpt),
                                      progress=progress)
            counts = _counts(ckpt, load_checkpoint(stage.checkpoint(model), weights=False),
                             base if whole else None, current)
        else:
            with step("refit" if fold is None else "save"):
                if fold is None:
                    _save_refit(stage.checkpoint(model), ckpt, current, since, read)
                    counts = _counts(ckpt, load_checkpoint(stage.checkpoint(model),
                                                           weights=False),
                                     base if whole else None, current)
                else:
                    _save_folded(stage.checkpoint(model), ckpt, fold, current, since,
                                 time.perf_counter() - started, read)
                    counts = (fold.new_users, fold.new_items, fold.changed_users,
                              fold.new_interactions)
                arrays.save(stage.interactions)
        new = load_checkpoint(stage.checkpoint(model), weights=False)
        index = None
        if index_cfg is not None:
            with step("index"):  # in place where it can when the rows only grew (a fold)
                index = _build_index(store, stage, model, index_cfg, arrays,
                                     (ckpt, layout.index(model)) if action == "fold" else None)
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
    if read_past is not None:
        prune_journal(layout.changes, read_past)
    if action == "fold" and fold is not None and fold.refolded_all:
        reason = ("no export matching the checkpoint's training data, so every user was "
                  "folded in again")
    mode = {"fold": "folded", "warm": "warm-started", "refit": "refitted",
            "retrain": "retrained"}[action]
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


def _read(store: GraphStore, layout: WorkspaceLayout,
          base: Interactions) -> tuple[Interactions | None, dict[str, Any]]:
    """The graph's interactions now, from ``base`` (the export saved with the checkpoint) and
    the edges of the users the ingest journal lists since that export was written, where the
    journal covers that interval and the result agrees with the graph's edge counts; else from
    every user's edge counts (:func:`read_changes`). With how it was read, for the checkpoint's
    ``meta["update"]``: ``changes_from`` (``journal`` or ``counts``) and ``users_reread``
    (the users the journal listed)."""
    users = journalled_users(layout.changes, layout.interactions.stat().st_mtime)
    if users is not None:
        arrays = read_listed_changes(store, base, users)
        if arrays is not None:
            listed = set().union(*(users.get(t, set()) for t in base.rel_types))
            return arrays, {"changes_from": "journal", "users_reread": len(listed)}
    return read_changes(store, base), {"changes_from": "counts"}


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
    """``(action, reason)``: ``fold`` (spectral) or ``warm`` (BPR models); past a drift
    threshold ``refit`` (spectral) or ``retrain`` (BPR); ``retrain`` when asked."""
    if config.full:
        return "retrain", "a full retrain was asked for"
    if model not in FOLDABLE + WARM:
        return "retrain", (f"{model} has no incremental update (only "
                           f"{', '.join(FOLDABLE + WARM)} have one)")
    past = "refit" if model in FOLDABLE else "retrain"  # a BPR model has no cheap refit
    if since["new_share"] > config.max_new_share:
        return past, (f"{since['new_share']:.1%} of the interactions are new since the last "
                      f"full fit (threshold {config.max_new_share:.1%})")
    if since["new_item_share"] > config.max_new_item_share:
        return past, (f"{since['new_item_share']:.1%} of the items are new since the last "
                      f"full fit (threshold {config.max_new_item_share:.1%})")
    return ("fold" if model in FOLDABLE else "warm"), ""


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


def _grow(ckpt: Checkpoint, base: Interactions | None, arrays: Interactions) -> _Grown | None:
    """``arrays`` on ``ckpt``'s ids followed by the new ones, with the users whose rows differ
    from ``base`` (everyone with interactions when there is no ``base``) and the pairs added;
    ``None`` when ids of the checkpoint are no longer in the graph."""
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
        return _Grown(users, items, now, before, changed, added)
    # no record of the training rows: everyone who has interactions counts as changed
    changed = np.flatnonzero(np.diff(now.indptr)[:n_users] > 0)
    added = max(now.nnz - int((ckpt.refit or {}).get("interactions", 0)), 0)
    return _Grown(users, items, now, None, changed, added)


def _warm_bpr(store: GraphStore, ckpt: Checkpoint, base: Interactions | None,
              arrays: Interactions, epochs: int, progress: bool) -> _Fold | None:
    """``ckpt``'s BPR model warm-started on the grown interactions and trained ``epochs``
    epochs on all of them (:mod:`shopgraph.gnn.warm`); ``None`` when ids vanished."""
    from shopgraph.gnn.warm import warm_fit, warm_started
    from shopgraph.graphdb.export import export_item_features

    grown = _grow(ckpt, base, arrays)
    if grown is None:
        return None
    data = InteractionMatrix(grown.now, grown.users, grown.items)
    features = None
    if ckpt.model == "graphsage" and {"item_cat", "item_num"} & set(ckpt.weights):
        features = export_item_features(store, grown.items)
    n_users, n_items = len(ckpt.user_ids), len(ckpt.item_ids)
    model = warm_started(ckpt.model, ckpt.config, ckpt.weights, n_users, n_items, data,
                         item_features=features)
    seed = int(ckpt.config.get("seed", 0)) + _update_number(ckpt)  # new negatives each time
    report = warm_fit(model, data, epochs, seed=seed, progress=progress)
    with_pairs = np.diff(grown.now.tocsc().indptr) > 0
    had = (np.diff(grown.before.tocsc().indptr) > 0 if grown.before is not None
           else np.arange(len(grown.items)) < n_items)
    last = report.history[-1] if report.history else {}
    record = {"warm": {"epochs": len(report.history), "epochs_asked": epochs,
                       "steps": int(last.get("steps", 0)), "loss": last.get("loss"),
                       "seconds": round(report.seconds, 3), "seed": seed}}
    return _Fold(model, data, len(grown.users) - n_users, int((with_pairs & ~had).sum()),
                 len(grown.changed), grown.added, base is None, record)


def _update_number(ckpt: Checkpoint) -> int:
    """The number of the update that follows ``ckpt`` since its last full fit (1 for the
    first)."""
    return int((ckpt.meta.get("update") or {}).get("count", 0)) + 1


def _fold_spectral(ckpt: Checkpoint, base: Interactions | None,
                   arrays: Interactions) -> _Fold | None:
    """Fold the grown interactions into ``ckpt``'s spectral model (``None``: ids vanished)."""
    from shopgraph.gnn.spectral import SpectralFilter

    grown = _grow(ckpt, base, arrays)
    if grown is None:
        return None
    users, items, now, changed = grown.users, grown.items, grown.now, grown.changed
    n_users = len(ckpt.user_ids)
    w = ckpt.weights
    # Items the model knows are those with a training degree; the others (no interactions at
    # the fit, or new ids) go last, where SpectralFilter.updated embeds them from their columns.
    known = np.flatnonzero(np.asarray(w["item_degree"]) > 0)
    order = np.concatenate([known, np.setdiff1d(np.arange(len(items)), known)])
    fitted = SpectralFilter(**ckpt.config)
    fitted.load_state({"user_emb": w["user_emb"], "item_emb": w["item_emb"][known],
                       "item_degree": w["item_degree"][known], "sigma": w["sigma"]},
                      n_users, len(known))
    state = fitted.updated(now[:, order], changed).state()
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
                 len(changed), grown.added, base is None)


# -- writing -------------------------------------------------------------------------------

def _save_folded(path: Path, ckpt: Checkpoint, fold: _Fold, current: InteractionMatrix,
                 since: dict[str, float], seconds: float, read: dict[str, Any]) -> None:
    """The folded (or warm-started) model's checkpoint: the previous meta (split, metrics,
    refit) carried over, the update recorded (with ``fold.record``), and the data
    fingerprint of all current interactions (stable order, as ``train`` and ``evaluate``
    compute it)."""
    keep = {k: v for k, v in ckpt.meta.items()
            if k not in ("format", "created", "embeddings_sha256", "update")}
    keep["full_fit"] = {"interactions": since["full_fit_interactions"],
                        "items": since["full_fit_items"]}
    keep["update"] = {
        "base_fingerprint": ckpt.fingerprint, "base_data_fingerprint": ckpt.data_fingerprint,
        "new_users": fold.new_users, "new_items": fold.new_items,
        "changed_users": fold.changed_users, "new_interactions": fold.new_interactions,
        "refolded_all": fold.refolded_all, "seconds": round(seconds, 3), "at": time.time(),
        "count": _update_number(ckpt), **fold.record,
        **read}
    # save_checkpoint records the fingerprint of the matrix it is given (ids in the
    # checkpoint's order: old first); ``data_fingerprint`` overrides it with the stable one.
    save_checkpoint(path, fold.model, fold.matrix, data_fingerprint=current.fingerprint(),
                    **keep)


def _save_refit(path: Path, ckpt: Checkpoint, current: InteractionMatrix,
                since: dict[str, float], read: dict[str, Any]) -> None:
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
                      "drift": {k: since[k] for k in ("new_share", "new_item_share")}, **read}
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


def _counts(old: Checkpoint, new: Checkpoint, base: Interactions | None,
            current: InteractionMatrix) -> tuple[int, int, int, int]:
    """New users and items of a refit or retrain (ids the old checkpoint lacked) and the pairs
    added since its training data (``base``; without it, since its last refit); the changed
    users are not tracked through a refit."""
    if base is not None:
        before = InteractionMatrix.from_interactions(base).nnz
    else:
        before = int((old.refit or {}).get("interactions", current.nnz))
    return (len(np.setdiff1d(new.user_ids, old.user_ids)),
            len(np.setdiff1d(new.item_ids, old.item_ids)), 0, max(current.nnz - before, 0))


def _build_index(store: GraphStore, stage: WorkspaceLayout, model: str, cfg: IndexConfig,
                 arrays: Interactions, previous: tuple[Checkpoint, Path] | None = None
                 ) -> dict[str, Any]:
    """Build the staged checkpoint's index as :func:`shopgraph.jobs.index.build_index` does,
    taking the seen pairs from ``arrays`` (the interactions just read) when they hold the seen
    types instead of reading them again. With ``previous`` (the old checkpoint, whose rows the
    new one extends, and its index file), each FAISS index is updated in place where
    :meth:`~shopgraph.retrieval.index.EmbeddingIndex.updated` can, and rebuilt otherwise
    (:func:`~shopgraph.retrieval.build.updated_bundle`)."""
    from shopgraph.jobs.index import catalogue_from_graph, index_result, seen_from_graph
    from shopgraph.retrieval.build import build_bundle, previous_bundle, updated_bundle
    from shopgraph.retrieval.persist import save_bundle

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
    old = previous_bundle(*previous) if previous is not None else None
    if previous is None or old is None:
        bundle = build_bundle(ckpt, seen=seen, seen_rel_types=rels, catalogue=catalogue,
                              **settings)
    else:
        bundle = updated_bundle(old, ckpt, previous[0], seen=seen, seen_rel_types=rels,
                                catalogue=catalogue, **settings)
    return index_result(save_bundle(stage.index(model), bundle), bundle.describe()).to_dict()


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
