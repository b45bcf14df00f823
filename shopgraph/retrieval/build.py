"""Build a model's indexes from its checkpoint, the seen (user, item) pairs left out of
recommendations and the catalogue used by filters (read from the graph by
:mod:`shopgraph.jobs.index`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import scipy.sparse as sp

from shopgraph.gnn.checkpoint import Checkpoint
from shopgraph.retrieval.index import EmbeddingIndex
from shopgraph.retrieval.persist import TABLES, Catalogue, IndexBundle


def build_bundle(ckpt: Checkpoint, *, seen: sp.csr_matrix, seen_rel_types: Sequence[str],
                 catalogue: Catalogue, kind: str = "auto", factory: str | None = None,
                 target_recall: float = 0.98, seed: int = 0, ef_construction: int | None = None,
                 on_progress: Callable[[int, int], None] | None = None) -> IndexBundle:
    """Build the four indexes of :data:`~shopgraph.retrieval.persist.TABLES` over ``ckpt``.

    Each approximate index is tuned with queries like the ones it will answer: user vectors for
    the item index (recommendations), item vectors for the user index (audiences are built from
    items), and its own vectors for the cosine indexes (similar items, similar users).
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
                                             ef_construction=ef_construction)
    if on_progress:
        on_progress(len(TABLES), len(TABLES))
    meta = {"kind": kind, "factory": factory, "target_recall": target_recall, "seed": seed,
            "ef_construction": ef_construction,
            "build_seconds": round(time.perf_counter() - started, 2)}
    return IndexBundle(ckpt.model, ckpt.fingerprint, indexes, sp.csr_matrix(seen),
                       tuple(seen_rel_types), catalogue, meta)
