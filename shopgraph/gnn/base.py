"""``EmbeddingModel``: the contract every model of shopgraph follows, written once here.

A model learns a ``d``-dimensional vector per user and per item so that the inner product
ranks items for a user: ``score(u, i) = <user_emb[u], item_emb[i]>``. That is what the
retrieval layer indexes, so :meth:`score` must agree with :meth:`embeddings`.

The verbs:

* :meth:`fit` learns from a training :class:`~shopgraph.gnn.data.InteractionMatrix`, optionally
  watching a validation matrix (early stopping), and returns a :class:`FitReport`.
* :meth:`embeddings` returns ``(user_emb, item_emb)`` as float32 NumPy arrays.
* :meth:`score` and :meth:`recommend` rank items for users.
* :meth:`state` / :meth:`load_state` give and take the arrays a checkpoint stores.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from shopgraph.gnn.data import InteractionMatrix


@dataclass
class FitReport:
    """What :meth:`EmbeddingModel.fit` did.

    Args:
        history: one dict per epoch (or evaluation step): loss, validation metrics, seconds.
        best_epoch: the epoch whose weights were kept (early stopping), -1 if not tracked.
        best_metric: the validation metric at ``best_epoch`` (NaN without validation).
        seconds: wall time of the fit.
    """

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_metric: float = float("nan")
    seconds: float = 0.0


class EmbeddingModel(ABC):
    """Base class of the embedding models; see the module docstring for the contract.

    Args:
        **config: model hyper-parameters; unknown keys raise ``ValueError``. The defaults are in
            each subclass's ``defaults``.
    """

    name: ClassVar[str] = "model"
    defaults: ClassVar[dict[str, Any]] = {}
    # Set lazily by _cached_embeddings(); None (or absent) until then and after _invalidate().
    _emb_cache: tuple[torch.Tensor, torch.Tensor] | None

    def __init__(self, **config: Any) -> None:
        unknown = set(config) - set(self.defaults)
        if unknown:
            raise ValueError(f"{self.name} has no settings {sorted(unknown)}; known: "
                             f"{sorted(self.defaults)}")
        self.config: dict[str, Any] = {**self.defaults, **config}
        self.n_users = self.n_items = 0

    @abstractmethod
    def fit(self, train: InteractionMatrix, valid: InteractionMatrix | None = None,
            **kwargs: Any) -> FitReport:
        """Learn embeddings from ``train``; ``valid`` (held-out items) drives early stopping."""

    @abstractmethod
    def embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        """``(user_emb, item_emb)``: float32 arrays of shape ``(n_users, d)``, ``(n_items, d)``."""

    @abstractmethod
    def state(self) -> dict[str, np.ndarray]:
        """The arrays needed to rebuild the fitted model (weights), for checkpoints."""

    @abstractmethod
    def load_state(self, state: dict[str, np.ndarray], n_users: int, n_items: int) -> None:
        """Restore what :meth:`state` returned."""

    def score(self, users: np.ndarray) -> torch.Tensor:
        """Scores of every item for ``users``: a ``len(users) x n_items`` float tensor."""
        user_emb, item_emb = self._cached_embeddings()
        return user_emb[torch.as_tensor(users, dtype=torch.long)] @ item_emb.T

    def recommend(self, users: np.ndarray, k: int = 20,
                  exclude: sp.csr_matrix | None = None) -> np.ndarray:
        """Top-``k`` item positions per user, best first, leaving out ``exclude``'s items."""
        from shopgraph.gnn.metrics import top_k

        return top_k(self.score, np.asarray(users), k, exclude)

    def _cached_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        cache: tuple[torch.Tensor, torch.Tensor] | None = getattr(self, "_emb_cache", None)
        if cache is None:
            u, i = self.embeddings()
            cache = (torch.from_numpy(u), torch.from_numpy(i))
            self._emb_cache = cache
        return cache

    def _invalidate(self) -> None:
        """Drop cached embeddings after the weights changed."""
        self._emb_cache = None
