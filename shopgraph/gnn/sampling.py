"""Negative sampling for BPR: uniform, or the hardest of a few uniform candidates.

A negative is an item the user has not interacted with in training. ``"uniform"`` draws one
uniformly (rejecting positives). ``"dns"`` is dynamic negative sampling (Zhang et al., SIGIR
2013, "Optimizing Top-N Collaborative Filtering via Dynamic Negative Item Sampling"): draw
``candidates`` uniform negatives and keep the one the current model scores highest.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch

from shopgraph.gnn.data import PairSet


class NegativeSampler:
    """Draws negatives for (user, positive) pairs of a training matrix.

    Args:
        train: the user x item training matrix.
        rng: the NumPy generator (seeded by the caller, for determinism).
    """

    def __init__(self, train: sp.csr_matrix, rng: np.random.Generator) -> None:
        self.n_items = train.shape[1]
        self.positives = PairSet(train)
        self.rng = rng

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Whether each (user, item) is a training interaction."""
        return self.positives.contains(users, items)

    def uniform(self, users: np.ndarray, per_user: int = 1) -> np.ndarray:
        """``len(users) x per_user`` uniform negatives (re-drawn until none is a positive)."""
        users = np.repeat(users, per_user)
        items = self.rng.integers(0, self.n_items, size=len(users))
        bad = self.is_positive(users, items)
        for _ in range(100):
            if not bad.any():
                break
            items[bad] = self.rng.integers(0, self.n_items, size=int(bad.sum()))
            bad[bad] = self.is_positive(users[bad], items[bad])
        return items.reshape(-1, per_user)

    def hardest(self, users: np.ndarray, candidates: int,
                score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> np.ndarray:
        """Of ``candidates`` uniform negatives per user, the one ``score(users, items)`` ranks
        highest (``score`` takes ``B`` users and ``B x candidates`` items)."""
        cand = self.uniform(users, candidates)
        with torch.no_grad():
            s = score(torch.from_numpy(users), torch.from_numpy(cand))
        best: np.ndarray = cand[np.arange(len(users)), s.argmax(dim=1).cpu().numpy()]
        return best
