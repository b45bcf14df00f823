"""Build a model's retrieval indexes from its checkpoint and a snapshot of the graph: the seen
(user, item) pairs left out of recommendations and the catalogue used by filters."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from shopgraph.config import IndexConfig
from shopgraph.gnn.checkpoint import Checkpoint, load_checkpoint
from shopgraph.graphdb.export import export_interactions, export_item_features
from shopgraph.jobs.results import IndexResult
from shopgraph.layout import WorkspaceLayout
from shopgraph.retrieval.build import build_bundle
from shopgraph.retrieval.persist import Catalogue, save_bundle

if TYPE_CHECKING:
    from shopgraph.graphdb.store import GraphStore

SEEN_REL_TYPES = ("PURCHASED", "RATED", "INTERACTED")
"""Relationship types whose items are left out of a user's recommendations by default: what the
user bought, rated, or (in datasets with one generic type) interacted with. Views and carts are
not excluded: showing them again is usually wanted."""


def seen_from_graph(store: GraphStore, ckpt: Checkpoint, rel_types: Sequence[str] | None = None
                    ) -> tuple[sp.csr_matrix, tuple[str, ...]]:
    """The user -> item pairs of ``rel_types`` in the graph, in ``ckpt``'s positions. Users and
    items the model has not seen (added since training) are left out."""
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


def catalogue_from_graph(store: GraphStore, ckpt: Checkpoint) -> Catalogue:
    """Categories and prices of the model's items, read from the graph."""
    feats = export_item_features(store, ckpt.item_ids)
    return Catalogue(feats["category"], feats["categories"], feats["price"])


def build_index(store: GraphStore, layout: WorkspaceLayout, model: str, config: IndexConfig,
                on_progress: Callable[[int, int], None] | None = None) -> IndexResult:
    """Build ``model``'s indexes from its checkpoint and the graph, and save them in the
    layout's index file (see :func:`shopgraph.retrieval.build.build_bundle`)."""
    ckpt = load_checkpoint(layout.checkpoint(model), weights=False)
    seen, rels = seen_from_graph(store, ckpt, config.seen_rel_types)
    bundle = build_bundle(ckpt, seen=seen, seen_rel_types=rels,
                          catalogue=catalogue_from_graph(store, ckpt), kind=config.kind,
                          factory=config.factory, target_recall=config.target_recall,
                          seed=config.seed, ef_construction=config.ef_construction,
                          on_progress=on_progress)
    path = save_bundle(layout.index(model), bundle)
    return index_result(path, bundle.describe())


def index_result(path: Any, description: dict[str, Any]) -> IndexResult:
    """An :class:`IndexResult` from an index bundle's ``describe()``."""
    info = dict(description)
    return IndexResult(path=path, model=info.pop("model"),
                       checkpoint_fingerprint=info.pop("checkpoint_fingerprint"),
                       seen_rel_types=list(info.pop("seen_rel_types")),
                       seen_pairs=int(info.pop("seen_pairs")), indexes=info.pop("indexes"),
                       build=info)
