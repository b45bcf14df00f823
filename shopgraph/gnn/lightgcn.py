"""LightGCN: Simplifying and Powering Graph Convolution Network for Recommendation.

He et al., SIGIR 2020 (https://arxiv.org/abs/2002.02126). Only ID embeddings
:math:`E^{(0)}` are learned; layers propagate them over the normalised user-item graph without
weights or non-linearities, and the readout averages the layers:

.. math::
    E^{(k+1)} = \\tilde A E^{(k)}, \\qquad
    E = \\sum_{k=0}^{K} \\frac{1}{K+1} E^{(k)}, \\qquad
    \\hat y_{ui} = e_u^\\top e_i .

The propagation is the same as PyG's ``torch_geometric.nn.models.LightGCN`` (a test checks
that), but runs on a precomputed CSR :math:`\\tilde A` with a symmetric backward
(:mod:`shopgraph.gnn.propagation`), which is what makes CPU training practical.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from shopgraph.gnn.base import EmbeddingModel, FitReport
from shopgraph.gnn.data import InteractionMatrix
from shopgraph.gnn.device import pick_device
from shopgraph.gnn.propagation import layer_mean, normalized_adjacency
from shopgraph.gnn.train import TrainConfig, train_bpr


class LightGCNModule(torch.nn.Module):
    """Ego embeddings plus propagation; ``forward()`` returns all (user, item) embeddings.

    Args:
        n_users: number of users.
        n_items: number of items.
        dim: embedding size.
        layers: propagation layers :math:`K`.
        adj: the normalised adjacency (may be set later with :meth:`set_graph`).
    """

    name = "lightgcn"

    def __init__(self, n_users: int, n_items: int, dim: int, layers: int,
                 adj: torch.Tensor | None = None) -> None:
        super().__init__()
        self.n_users, self.n_items, self.layers = n_users, n_items, layers
        self.embedding = torch.nn.Embedding(n_users + n_items, dim)
        torch.nn.init.normal_(self.embedding.weight, std=0.1)
        self.adj = adj

    def set_graph(self, adj: torch.Tensor) -> None:
        """Use another normalised adjacency (e.g. after new interactions)."""
        self.adj = adj

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.adj is None:
            raise RuntimeError("no graph: call set_graph() first")
        out = layer_mean(self.adj, self.embedding.weight, self.layers)
        return out[: self.n_users], out[self.n_users:]

    def regularizer(self, users: torch.Tensor, pos: torch.Tensor,
                    neg: torch.Tensor) -> torch.Tensor:
        w = self.embedding.weight
        n = self.n_users
        return w[users].pow(2).sum() + w[n + pos].pow(2).sum() + w[n + neg].pow(2).sum()


class LightGCN(EmbeddingModel):
    """LightGCN trained with BPR; settings are :class:`TrainConfig`'s plus ``dim``, ``layers``."""

    name = "lightgcn"
    defaults: ClassVar[dict[str, Any]] = {"dim": 64, "layers": 3, **TrainConfig().__dict__}

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.module: LightGCNModule | None = None

    def _train_config(self) -> TrainConfig:
        return TrainConfig(**{k: v for k, v in self.config.items() if k in TrainConfig().__dict__})

    def fit(self, train: InteractionMatrix, valid: InteractionMatrix | None = None,
            **kwargs: Any) -> FitReport:
        """Train on ``train``; ``kwargs`` go to :func:`~shopgraph.gnn.train.train_bpr`
        (``log_path``, ``state_path``, ``resume``, ``progress``)."""
        cfg = self._train_config()
        device = pick_device(cfg.device)
        torch.manual_seed(cfg.seed)
        self.n_users, self.n_items = train.n_users, train.n_items
        self.module = LightGCNModule(train.n_users, train.n_items, self.config["dim"],
                                     self.config["layers"],
                                     normalized_adjacency(train.matrix, device)).to(device)
        report = train_bpr(self.module, train, valid, cfg, **kwargs)
        self._invalidate()
        return report

    def embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        if self.module is None:
            raise RuntimeError("the model is not fitted; call fit() or load a checkpoint")
        with torch.no_grad():
            u, i = self.module()
        return u.float().cpu().numpy(), i.float().cpu().numpy()

    def state(self) -> dict[str, np.ndarray]:
        if self.module is None:
            raise RuntimeError("the model is not fitted")
        return {"embedding": self.module.embedding.weight.detach().cpu().numpy()}

    def load_state(self, state: dict[str, np.ndarray], n_users: int, n_items: int) -> None:
        """Restore ego embeddings; call ``module.set_graph`` to propagate again, or use the
        checkpoint's stored final embeddings."""
        self.n_users, self.n_items = n_users, n_items
        self.module = LightGCNModule(n_users, n_items, self.config["dim"], self.config["layers"])
        with torch.no_grad():
            self.module.embedding.weight.copy_(torch.from_numpy(state["embedding"]))
        self._invalidate()
