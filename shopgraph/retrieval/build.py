"""Build a model's indexes from its checkpoint, the seen (user, item) pairs left out of
recommendations and the catalogue used by filters (read from the graph by
:mod:`shopgraph.jobs.index`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from shopgraph.errors import IndexMismatchError
from shopgraph.gnn.checkpoint import Checkpoint
from shopgraph.retrieval.index import EmbeddingIndex
from shopgraph.retrieval.persist import TABLES, Catalogue, IndexBundle, load_bundle


def build_bundle(ckpt: Checkpoint, *, seen: sp.csr_matrix, seen_rel_types: Sequence[str],
                 catalogue: Catalogue, kind: str = "auto", factory: str | None = None,
                 target_recall: float = 0.98, seed: int = 0, ef_construction: int | None = None,
                 on_progress: Callable[[int, int], None] | None = None) -> IndexBundle:
    """Build the four indexes of :data:`~shopgraph.retrieval.persist.TABLES` over ``ckpt``.

    Each approximate index is tuned with queries like the ones it will answer: user vectors for
    the item index (recommendations), item vectors for the user index (audiences are built from
    items), and its own vectors for the cosine indexes (similar items, similar users). The item
    index expects every user as a query (the all-user export) when its kind is chosen.
    """
    tables = {"item": ckpt.item_emb, "user": ckpt.user_emb}
    tune_with = {"items": ckpt.user_emb, "users": ckpt.item_emb,
                 "items_cosine": ckpt.item_emb, "users_cosine": ckpt.user_emb}
    started = time.perf_counter()
    indexes: dict[str, EmbeddingIndex] = {}
    for done, (name, (table, metric)) in enumerate(TABLES.items()):
        if on_progress:
            on_progress(done, len(TABLES))
        indexes[name] = EmbeddingIndex.build(tables[table], kind=kind, factory=factory,
                                             metric=metric, tune_queries=tune_with[name],
                                             target_recall=target_recall, seed=seed,
                                             ef_construction=ef_construction,
                                             queries=_pass_queries(name, ckpt))
    if on_progress:
        on_progress(len(TABLES), len(TABLES))
    meta = {"kind": kind, "factory": factory, "target_recall": target_recall, "seed": seed,
            "ef_construction": ef_construction,
            "build_seconds": round(time.perf_counter() - started, 2)}
    return IndexBundle(ckpt.model, ckpt.fingerprint, indexes, sp.csr_matrix(seen),
                       tuple(seen_rel_types), catalogue, meta)


def updated_bundle(old: IndexBundle, ckpt: Checkpoint, before: Checkpoint, *,
                   seen: sp.csr_matrix, seen_rel_types: Sequence[str], catalogue: Catalogue,
                   kind: str = "auto", factory: str | None = None, target_recall: float = 0.98,
                   seed: int = 0, ef_construction: int | None = None) -> IndexBundle:
    """The indexes of ``old`` (built over ``before``) brought to ``ckpt``, whose rows extend
    ``before``'s: each one updated in place where :meth:`EmbeddingIndex.updated` can, and
    rebuilt (as :func:`build_bundle` does) otherwise. The settings are those ``old`` was built
    with."""
    settings = {"kind": kind, "factory": factory, "target_recall": target_recall, "seed": seed,
                "ef_construction": ef_construction}
    started = time.perf_counter()
    tables = {"item": ckpt.item_emb, "user": ckpt.user_emb}
    previous = {"item": before.item_emb, "user": before.user_emb}
    tune_with = {"items": ckpt.user_emb, "users": ckpt.item_emb,
                 "items_cosine": ckpt.item_emb, "users_cosine": ckpt.user_emb}
    indexes = {}
    for name, (table, metric) in TABLES.items():
        n_old = len(previous[table])
        changed = np.flatnonzero((tables[table][:n_old] != previous[table]).any(axis=1))
        indexes[name] = old.indexes[name].updated(
            tables[table], changed, tune_with[name], kind=kind, factory=factory,
            target_recall=target_recall, seed=seed,
            n_queries=_pass_queries(name, ckpt)) or EmbeddingIndex.build(
            tables[table], kind=kind, factory=factory, metric=metric,
            tune_queries=tune_with[name], target_recall=target_recall, seed=seed,
            ef_construction=ef_construction, queries=_pass_queries(name, ckpt))
    meta = {**settings, "build_seconds": round(time.perf_counter() - started, 2)}
    return IndexBundle(ckpt.model, ckpt.fingerprint, indexes, sp.csr_matrix(seen),
                       tuple(seen_rel_types), catalogue, meta)


def _pass_queries(name: str, ckpt: Checkpoint) -> int:
    """Queries of one pass over index ``name``: every user for the item index (the all-user
    export), one otherwise."""
    return len(ckpt.user_emb) if name == "items" else 1


def previous_bundle(ckpt: Checkpoint, path: str | Path) -> IndexBundle | None:
    """The index of ``ckpt`` at ``path``, or ``None`` when it belongs to another checkpoint."""
    try:
        return load_bundle(path, ckpt)
    except (IndexMismatchError, ValueError):
        return None
