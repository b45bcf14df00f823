"""Warm start of the BPR models (LightGCN, GraphSAGE) on a grown interaction matrix.

After new events, the graph has the checkpoint's users and items in their old positions and new
ones appended (``shopgraph update``'s id order). :func:`warm_started` builds the model on that
grown graph with every learnt parameter copied: LightGCN's ego embeddings, GraphSAGE's ID
embeddings, layer weights, category embeddings and feature statistics. Each new node's ID
embedding is the mean of its neighbours' (:func:`neighbour_mean`):

.. math::
    e_v^{(0)} = \\frac{1}{|N_{old}(v)|} \\sum_{w \\in N_{old}(v)} e_w^{(0)}

over the neighbours that already have one: a new user starts where the items they took are,
a new item where its users are (one propagation step in the ego space, so before any training
the new user's score favours items like theirs instead of noise). A new node whose neighbours
are all new takes the mean of those once they have theirs; one with no neighbour stays 0.

:func:`warm_fit` then runs a few BPR epochs on all interactions (no validation split), with the
checkpoint's optimiser settings (Adam at its ``lr``, ``weight_decay``, ``batch_size``,
negatives) and its ``max_seconds`` budget, checked after every step by
:func:`~shopgraph.gnn.train.train_bpr`. Adam's moments start afresh: checkpoints keep weights,
not optimiser state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from shopgraph.gnn.base import FitReport
from shopgraph.gnn.data import InteractionMatrix
from shopgraph.gnn.device import pick_device
from shopgraph.gnn.graphsage import GraphSAGE, mean_adjacency, price_columns
from shopgraph.gnn.lightgcn import LightGCN
from shopgraph.gnn.propagation import normalized_adjacency
from shopgraph.gnn.train import TrainConfig, train_bpr

BPRModel = LightGCN | GraphSAGE
"""The models :func:`warm_started` grows."""


def neighbour_mean(old: np.ndarray, old_users: int, old_items: int,
                   matrix: sp.spmatrix) -> np.ndarray:
    """The ID table (users first) of the graph of ``matrix`` grown from ``old``'s.

    Args:
        old: ``(old_users + old_items, d)`` ID embeddings, users first.
        old_users: users of ``old`` (rows ``0 .. old_users - 1`` of ``matrix``).
        old_items: items of ``old`` (columns ``0 .. old_items - 1`` of ``matrix``).
        matrix: the grown ``n_users x n_items`` interactions, old ids first.

    Returns:
        ``(n_users + n_items, d)``: the old rows copied, each new row the mean of its
        neighbours' rows (see the module docstring), 0 without neighbours.
    """
    n_users, n_items = matrix.shape
    if old.shape[0] != old_users + old_items:
        raise ValueError(f"the ID table has {old.shape[0]} rows; {old_users} users and "
                         f"{old_items} items need {old_users + old_items}")
    if n_users < old_users or n_items < old_items:
        raise ValueError(f"the matrix ({n_users} x {n_items}) is smaller than the old graph "
                         f"({old_users} x {old_items}); ids must only be appended")
    out = np.zeros((n_users + n_items, old.shape[1]), dtype=np.float32)
    out[:old_users] = old[:old_users]
    out[n_users:n_users + old_items] = old[old_users:]
    known = np.zeros(n_users + n_items, dtype=bool)
    known[:old_users] = known[n_users:n_users + old_items] = True
    r = sp.csr_matrix(matrix, dtype=np.float32)
    r.data[:] = 1.0
    adj = sp.bmat([[None, r], [r.T, None]], format="csr", dtype=np.float32)
    for _ in range(2):  # from old neighbours; then from new ones that got a row
        weight = known.astype(np.float32)
        counts = adj @ weight
        todo = np.flatnonzero(~known & (counts > 0))
        if not len(todo):
            break
        out[todo] = (adj[todo] @ (out * weight[:, None])) / counts[todo, None]
        known[todo] = True
    return out


def warm_started(name: str, config: Mapping[str, Any], state: Mapping[str, np.ndarray],
                 old_users: int, old_items: int, data: InteractionMatrix, *,
                 item_features: Mapping[str, Any] | None = None) -> BPRModel:
    """The checkpoint's model on the grown graph of ``data``, parameters copied, new nodes
    initialised from their neighbours; not trained yet (see :func:`warm_fit`).

    Args:
        name: ``lightgcn`` or ``graphsage``.
        config: the checkpoint's settings.
        state: the checkpoint's weights (:meth:`EmbeddingModel.state`).
        old_users: users in the checkpoint, the first rows of ``data``.
        old_items: items in the checkpoint, the first columns of ``data``.
        data: every current interaction, old ids first, new ones appended.
        item_features: GraphSAGE: features of ``data``'s items as
            :func:`~shopgraph.graphdb.export.export_item_features` gives them (``category``
            codes, ``categories``, ``price``); new items' category names are mapped to the
            checkpoint's codes through the old items' (a category it never saw is unknown).
            ``None``: new items get the unknown category and no price.

    Raises:
        ValueError: ``name`` cannot be warm-started, or the shapes do not fit.
    """
    model: BPRModel
    grown = dict(state)
    if name == "lightgcn":
        model = LightGCN(**config)
        grown["embedding"] = neighbour_mean(np.asarray(state["embedding"]), old_users,
                                            old_items, data.matrix)
        model.load_state(grown, data.n_users, data.n_items)
        assert model.module is not None  # set by load_state
        device = pick_device(str(model.config["device"]))
        model.module.to(device).set_graph(normalized_adjacency(data.matrix, device))
    elif name == "graphsage":
        sage = GraphSAGE(**config)
        if "embedding.weight" in state:
            grown["embedding.weight"] = neighbour_mean(np.asarray(state["embedding.weight"]),
                                                       old_users, old_items, data.matrix)
        grown.update(_grown_features(state, old_users, old_items, data, item_features))
        sage.load_state(grown, data.n_users, data.n_items)
        assert sage.module is not None  # set by load_state
        device = pick_device(str(sage.config["device"]))
        sage.module.to(device).set_graph(mean_adjacency(data.matrix, device))
        model = sage
    else:
        raise ValueError(f"only lightgcn and graphsage can be warm-started, not {name!r}")
    return model


def _grown_features(state: Mapping[str, np.ndarray], old_users: int, old_items: int,
                    data: InteractionMatrix,
                    features: Mapping[str, Any] | None) -> dict[str, np.ndarray]:
    """GraphSAGE's feature buffers with rows for the new users (0: the standardised mean) and
    items (category by name, price standardised with the checkpoint's statistics)."""
    out: dict[str, np.ndarray] = {}
    new_items = data.n_items - old_items
    if "item_cat" in state:
        old = np.asarray(state["item_cat"])
        codes = np.full(new_items, -1, dtype=old.dtype)
        if features is not None and features.get("category") is not None:
            now = np.asarray(features["category"])
            names = np.asarray(features.get("categories", ()), dtype=str)
            both = (now[:old_items] >= 0) & (old >= 0)
            known = dict(zip(names[now[:old_items][both]].tolist(), old[both].tolist()))
            codes = np.array([known.get(names[c], -1) if c >= 0 else -1
                              for c in now[old_items:]], dtype=old.dtype)
        out["item_cat"] = np.concatenate([old, codes])
    if "item_num" in state:
        price = np.full(new_items, np.nan)
        if features is not None and features.get("price") is not None:
            price = np.asarray(features["price"], dtype=np.float64)[old_items:]
        stats = torch.from_numpy(np.asarray(state["price_stats"]))
        extra = price_columns(price, stats).numpy().astype(np.asarray(state["item_num"]).dtype)
        out["item_num"] = np.concatenate([np.asarray(state["item_num"]), extra])
    if "user_feat" in state:
        old_feat = np.asarray(state["user_feat"])
        pad = np.zeros((data.n_users - old_users, old_feat.shape[1]), dtype=old_feat.dtype)
        out["user_feat"] = np.concatenate([old_feat, pad])
    return out


def warm_fit(model: BPRModel, data: InteractionMatrix, epochs: int, *,
             seed: int | None = None, progress: bool = False) -> FitReport:
    """Train :func:`warm_started`'s ``model`` for ``epochs`` BPR epochs on all of ``data``
    (no validation), with its own optimiser settings and ``max_seconds`` budget; ``seed``
    overrides its seed (an update passes a new one each time, so that successive updates draw
    other negatives). ``epochs=0`` leaves the neighbour-mean start as it is."""
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    if epochs == 0:
        return FitReport()
    names = {f.name for f in fields(TrainConfig)}
    settings = {k: v for k, v in model.config.items() if k in names}
    settings["epochs"] = epochs
    if seed is not None:
        settings["seed"] = seed
    report = train_bpr(model.module, data, None, TrainConfig(**settings), progress=progress)
    model._invalidate()  # the cached embeddings are those of the start
    return report
