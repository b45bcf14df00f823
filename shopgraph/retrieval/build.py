"""Build a model's indexes from its checkpoint and a snapshot of the graph (seen items and the
catalogue used by filters)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from shopgraph.gnn.checkpoint import Checkpoint
from shopgraph.retrieval.index import EmbeddingIndex
from shopgraph.retrieval.persist import TABLES, Catalogue, IndexBundle

SEEN_REL_TYPES = ("PURCHASED", "RATED", "INTERACTED")
"""Relationship types whose items are left out of a user's recommendations by default: what the
user bought, rated, or (in datasets with one generic type) interacted with. Views and carts are
not excluded: showing them again is usually wanted."""


def seen_from_graph(store: Any, ckpt: Checkpoint, rel_types: Sequence[str] | None = None
                    ) -> tuple[sp.csr_matrix, tuple[str, ...]]:
    """The user -> item pairs of ``rel_types`` in the graph, in ``ckpt``'s positions. Users and
    items the model has not seen (added since training) are left out."""
    from shopgraph.graphdb.export import export_interactions

    wanted = tuple(rel_types) if rel_types is not None else SEEN_REL_TYPES
    present = tuple(t for t in wanted if store.count_rels(t)) if rel_types is None else wanted
    shape = (len(ckpt.user_ids), len(ckpt.item_ids))
    if not present:
        return sp.csr_matrix(shape, dtype=np.float32), ()
    arrays = export_interactions(store, list(present), user_ids=ckpt.user_ids,
                                 item_ids=ckpt.item_ids, drop_unknown=True)
    seen = sp.csr_matrix((np.ones(len(arrays), dtype=np.float32), (arrays.users, arrays.items)),
                         shape=shape)
    seen.sum_duplicates()
    seen.data[:] = 1
    return seen, present


def catalogue_from_graph(store: Any, ckpt: Checkpoint) -> Catalogue:
    """Categories and prices of the model's items, read from the graph."""
    from shopgraph.graphdb.export import export_item_features

    feats = export_item_features(store, ckpt.item_ids)
    return Catalogue(feats["category"], feats["categories"], feats["price"])


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
