"""GraphSAGE: Inductive Representation Learning on Large Graphs.

Hamilton, Ying & Leskovec, NeurIPS 2017 (https://arxiv.org/abs/1706.02216). Users and items
form one homogeneous graph (users first, then items). Every node starts from its input
features :math:`x_v` — a learned ID embedding (``use_ids``) concatenated with item features
(a learned category embedding, standardised ``log1p`` price and a missing-price flag) or dense
user features, zero-padded for the other node type — and each layer is PyG's ``SAGEConv`` with
mean aggregation:

.. math::
    h_v^{(0)} = x_v, \\qquad
    h_v^{(k+1)} = \\sigma\\Big(W_1^{(k)} h_v^{(k)} + W_2^{(k)}
        \\tfrac{1}{|N(v)|}\\textstyle\\sum_{u \\in N(v)} h_u^{(k)} + b^{(k)}\\Big),
    \\qquad \\hat y_{ui} = \\langle z_u, z_i \\rangle,

with :math:`\\sigma` = ReLU between layers (none after the last) and :math:`z` the last layer's
output (``readout="last"``) or all layers' outputs concatenated (``"concat"``). The model is
trained with BPR (:mod:`shopgraph.gnn.train`).

A node without training interactions aggregates nothing (the mean over no neighbours is 0), so
its root term :math:`W_1 h_v` carries its features alone; its ID embedding, which no positive
ever trained, is masked to 0. Cold items therefore get embeddings from their category and
price, and :meth:`GraphSAGE.embed_items` embeds items that are not in the graph at all.

The mean aggregation :math:`D^{-1} A X` runs as one CSR product. :math:`D^{-1} A` is not
symmetric, so LightGCN's symmetric backward does not apply; the backward here multiplies by a
precomputed CSR transpose :math:`A D^{-1}`. Measured on Gowalla (70.8k nodes, 1.62M directed
edges, d = 64, 2 layers, 2 loaded CPU cores): forward 0.24-0.27 s for every variant; backward
1.2 s with ``aggr="mean"`` on a binary CSR, 1.5 s with autograd through a row-normalised CSR,
0.43 s with the precomputed transpose, and ``edge_index`` scatter 1.19 s + 1.36 s.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch_geometric.nn import SAGEConv

from shopgraph.gnn.base import EmbeddingModel, FitReport
from shopgraph.gnn.data import InteractionMatrix
from shopgraph.gnn.device import pick_device
from shopgraph.gnn.train import TrainConfig, train_bpr

Graph = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _csr(m: sp.csr_matrix, device: torch.device | str) -> torch.Tensor:
    m = m.tocsr()
    m.sort_indices()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(
            torch.from_numpy(m.indptr.astype(np.int64)),
            torch.from_numpy(m.indices.astype(np.int64)),
            torch.from_numpy(m.data.astype(np.float32)), m.shape, device=device)


def mean_adjacency(train: sp.csr_matrix, device: torch.device | str = "cpu") -> Graph:
    """``(D^-1 A, its transpose, degree > 0)`` of the bipartite graph of ``train``, users
    first: the mean-aggregation matrix as CSR tensors, and which nodes have neighbours."""
    r = sp.csr_matrix(train, dtype=np.float32)
    a = sp.bmat([[None, r], [r.T, None]], format="csr", dtype=np.float32)
    deg = np.asarray(a.sum(axis=1)).ravel()
    inv = np.zeros_like(deg)
    np.divide(1.0, deg, out=inv, where=deg > 0)
    mean = (sp.diags(inv) @ a).tocsr()
    return (_csr(mean, device), _csr(mean.T, device),
            torch.from_numpy(deg > 0).to(device))


class _MeanSpMM(torch.autograd.Function):
    """``adj @ x`` whose gradient uses the precomputed transpose: ``adj_t @ grad``."""

    @staticmethod
    def forward(ctx: Any, adj: torch.Tensor, adj_t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.adj_t = adj_t
        return adj @ x

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, None, torch.Tensor]:
        return None, None, ctx.adj_t @ grad


class MeanSAGEConv(SAGEConv):
    """PyG's ``SAGEConv`` (mean aggregation) fed the row-normalised CSR ``D^-1 A``; the
    aggregation's backward uses ``self.adj_t``, the transpose, set by the module."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, aggr="mean")
        self.adj_t: torch.Tensor | None = None

    def message_and_aggregate(self, adj_t: torch.Tensor, x: Any) -> torch.Tensor:
        return _MeanSpMM.apply(adj_t, self.adj_t, x[0])


class GraphSAGEModule(torch.nn.Module):
    """Input features plus ``SAGEConv`` layers; ``forward()`` returns (user, item) outputs.

    Args:
        n_users, n_items: node counts.
        dim: ID embedding size and width of every layer.
        layers: number of ``SAGEConv`` layers.
        use_ids: learn an ID embedding per node.
        dropout: dropout between layers (training only).
        readout: ``"last"`` layer's output or ``"concat"`` of all layers.
        item_cat: category code per item (-1 unknown), ``None`` without categories.
        n_categories: number of known categories.
        item_num: ``(n_items, 2)`` float: standardised log price, missing flag; or ``None``.
        user_feat: ``(n_users, f)`` float user features, or ``None``.
    """

    name = "graphsage"

    def __init__(self, n_users: int, n_items: int, dim: int, layers: int, use_ids: bool,
                 dropout: float, readout: str, item_cat: torch.Tensor | None = None,
                 n_categories: int = 0, item_num: torch.Tensor | None = None,
                 user_feat: torch.Tensor | None = None) -> None:
        super().__init__()
        self.n_users, self.n_items, self.dropout, self.readout = n_users, n_items, dropout, readout
        self.embedding = torch.nn.Embedding(n_users + n_items, dim) if use_ids else None
        if self.embedding is not None:
            torch.nn.init.normal_(self.embedding.weight, std=0.1)
        self.cat_emb = None if item_cat is None else torch.nn.Embedding(n_categories + 1, dim)
        for name, buf in (("item_cat", item_cat), ("item_num", item_num),
                          ("user_feat", user_feat)):
            self.register_buffer(name, buf)
        width = (dim if use_ids else 0) + (dim if item_cat is not None else 0) + \
            (2 if item_num is not None else 0) + (0 if user_feat is None else user_feat.shape[1])
        if width == 0:
            raise ValueError("graphsage needs use_ids=True or node features")
        self.convs = torch.nn.ModuleList(
            MeanSAGEConv(width if k == 0 else dim, dim) for k in range(layers))
        self.adj: torch.Tensor | None = None
        self.register_buffer("has_edges", None, persistent=False)

    def set_graph(self, graph: Graph) -> None:
        """Propagate over :func:`mean_adjacency`'s output (e.g. after new interactions)."""
        self.adj, adj_t, self.has_edges = graph
        for conv in self.convs:
            conv.adj_t = adj_t

    def item_inputs(self, item_cat: torch.Tensor | None,
                    item_num: torch.Tensor | None) -> list[torch.Tensor]:
        """The item feature columns: category embedding (code -1 -> its own row), price."""
        parts = [] if self.cat_emb is None else [self.cat_emb(item_cat + 1)]
        return parts + ([] if item_num is None else [item_num])

    def inputs(self) -> torch.Tensor:
        """:math:`x_v` of every node, users first; other types' columns zero-padded."""
        n, nu, parts = self.n_users + self.n_items, self.n_users, []
        if self.embedding is not None:  # nodes without training edges: no ID information
            parts.append(self.embedding.weight * self.has_edges[:, None])
        for block, rows in ((self.item_inputs(self.item_cat, self.item_num), slice(nu, n)),
                            ([self.user_feat] if self.user_feat is not None else [],
                             slice(0, nu))):
            if block:
                x = torch.cat(block, dim=1)
                parts.append(x.new_zeros(n, x.shape[1]).index_copy(
                    0, torch.arange(rows.start, rows.stop, device=x.device), x))
        return torch.cat(parts, dim=1)

    def layers_out(self, x: torch.Tensor, adj: torch.Tensor | None) -> torch.Tensor:
        """Run the layers on ``x``; ``adj=None``: nodes without neighbours."""
        outs = []
        for k, conv in enumerate(self.convs):
            if adj is None:  # SAGEConv with an empty neighbourhood: lin_l(0) + lin_r(x)
                x = conv.lin_l(x.new_zeros(len(x), conv.lin_l.in_channels)) + conv.lin_r(x)
            else:
                x = conv(x, adj)
            if k < len(self.convs) - 1:
                x = torch.nn.functional.dropout(x.relu(), self.dropout, self.training)
            outs.append(x)
        return x if self.readout == "last" else torch.cat(outs, dim=1)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.adj is None:
            raise RuntimeError("no graph: call set_graph() first")
        out = self.layers_out(self.inputs(), self.adj)
        return out[: self.n_users], out[self.n_users:]

    def regularizer(self, users: torch.Tensor, pos: torch.Tensor,
                    neg: torch.Tensor) -> torch.Tensor:
        if self.embedding is None:
            return torch.zeros((), device=users.device)
        w, n = self.embedding.weight, self.n_users
        return w[users].pow(2).sum() + w[n + pos].pow(2).sum() + w[n + neg].pow(2).sum()


def _price_columns(price: np.ndarray, stats: tuple[float, float]) -> np.ndarray:
    logp = np.log1p(np.clip(np.asarray(price, dtype=np.float64), 0, None))
    missing = np.isnan(logp)
    z = np.where(missing, 0.0, (logp - stats[0]) / stats[1])
    return np.stack([z, missing.astype(np.float64)], axis=1).astype(np.float32)


class GraphSAGE(EmbeddingModel):
    """GraphSAGE trained with BPR; settings are :class:`TrainConfig`'s plus ``dim``,
    ``layers``, ``use_ids``, ``dropout`` and ``readout``."""

    name = "graphsage"
    defaults: dict[str, Any] = {"dim": 64, "layers": 2, "use_ids": True, "dropout": 0.0,
                                "readout": "concat", **TrainConfig().__dict__}

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        if self.config["readout"] not in ("last", "concat"):
            raise ValueError(f"readout must be 'last' or 'concat', got {self.config['readout']!r}")
        self.module: GraphSAGEModule | None = None
        self.price_stats = (0.0, 1.0)

    def _build(self, n_users: int, n_items: int, **features: Any) -> GraphSAGEModule:
        c = self.config
        return GraphSAGEModule(n_users, n_items, c["dim"], c["layers"], c["use_ids"],
                               c["dropout"], c["readout"], **features)

    def fit(self, train: InteractionMatrix, valid: InteractionMatrix | None = None,
            item_features: dict[str, np.ndarray] | None = None,
            user_features: np.ndarray | None = None, **kwargs: Any) -> FitReport:
        """Train on ``train``. ``item_features``: ``{"category": int64 codes (-1 unknown),
        "categories": names, "price": float64 (NaN unknown)}`` aligned with item positions
        (either key may be absent); ``user_features``: ``(n_users, f)`` floats. ``kwargs`` go
        to :func:`~shopgraph.gnn.train.train_bpr`."""
        cfg = TrainConfig(**{k: v for k, v in self.config.items() if k in TrainConfig().__dict__})
        device = pick_device(cfg.device)
        torch.manual_seed(cfg.seed)
        self.n_users, self.n_items = train.n_users, train.n_items
        feats: dict[str, Any] = {}
        item_features = item_features or {}
        if item_features.get("category") is not None:
            codes = np.asarray(item_features["category"], dtype=np.int64)
            _check_rows(codes, train.n_items, "item category")
            n_cat = len(item_features.get("categories", ())) or int(codes.max(initial=-1)) + 1
            feats.update(item_cat=torch.from_numpy(codes), n_categories=n_cat)
        if item_features.get("price") is not None:
            price = np.asarray(item_features["price"], dtype=np.float64)
            _check_rows(price, train.n_items, "item price")
            logp = np.log1p(np.clip(price[~np.isnan(price)], 0, None))
            self.price_stats = (float(logp.mean()), float(logp.std()) or 1.0) if len(logp) \
                else (0.0, 1.0)
            feats["item_num"] = torch.from_numpy(_price_columns(price, self.price_stats))
        if user_features is not None:
            uf = np.asarray(user_features, dtype=np.float64).reshape(train.n_users, -1)
            mu, sd = np.nanmean(uf, axis=0), np.nanstd(uf, axis=0)
            uf = np.nan_to_num((uf - mu) / np.where(sd > 0, sd, 1.0))
            feats["user_feat"] = torch.from_numpy(uf.astype(np.float32))
        self.module = self._build(train.n_users, train.n_items, **feats).to(device)
        self.module.set_graph(mean_adjacency(train.matrix, device))
        report = train_bpr(self.module, train, valid, cfg, **kwargs)
        self._invalidate()
        return report

    def embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        if self.module is None:
            raise RuntimeError("the model is not fitted; call fit() or load a checkpoint")
        self.module.eval()
        with torch.no_grad():
            u, i = self.module()
        return u.float().cpu().numpy(), i.float().cpu().numpy()

    def embed_items(self, item_features: dict[str, np.ndarray]) -> np.ndarray:
        """Embeddings of new items that are not in the graph (no edges, no ID), from the same
        kind of ``item_features`` as :meth:`fit` took; ``(m, d)`` float32."""
        if self.module is None:
            raise RuntimeError("the model is not fitted; call fit() or load a checkpoint")
        m = self.module
        dev = next(m.parameters()).device
        cat = num = None
        if m.item_cat is not None:
            cat = torch.as_tensor(np.asarray(item_features["category"], dtype=np.int64),
                                  device=dev).clamp(-1, m.cat_emb.num_embeddings - 2)
        if m.item_num is not None:
            num = torch.from_numpy(_price_columns(item_features["price"],
                                                  self.price_stats)).to(dev)
        parts = m.item_inputs(cat, num)
        if not parts:
            raise ValueError("the model was trained without item features")
        x = torch.zeros(len(parts[0]), m.convs[0].lin_r.in_channels, device=dev)
        start = m.embedding.embedding_dim if m.embedding is not None else 0
        m.eval()
        with torch.no_grad():
            block = torch.cat(parts, dim=1)
            x[:, start:start + block.shape[1]] = block
            return m.layers_out(x, None).float().cpu().numpy()

    def state(self) -> dict[str, np.ndarray]:
        if self.module is None:
            raise RuntimeError("the model is not fitted")
        out = {k: v.detach().cpu().numpy() for k, v in self.module.state_dict().items()}
        return {**out, "price_stats": np.asarray(self.price_stats, dtype=np.float64)}

    def load_state(self, state: dict[str, np.ndarray], n_users: int, n_items: int) -> None:
        """Restore the weights and features; call ``module.set_graph(mean_adjacency(...))``
        to propagate again, or use the checkpoint's stored final embeddings."""
        self.n_users, self.n_items = n_users, n_items
        state = dict(state)
        self.price_stats = tuple(float(v) for v in state.pop("price_stats", (0.0, 1.0)))
        feats: dict[str, Any] = {k: torch.from_numpy(np.asarray(state[k]))
                                 for k in ("item_cat", "item_num", "user_feat") if k in state}
        if "cat_emb.weight" in state:
            feats["n_categories"] = state["cat_emb.weight"].shape[0] - 1
        self.module = self._build(n_users, n_items, **feats)
        self.module.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
        self._invalidate()


def _check_rows(arr: np.ndarray, n: int, what: str) -> None:
    if len(arr) != n:
        raise ValueError(f"{what} has {len(arr)} rows; the training matrix has {n}")
