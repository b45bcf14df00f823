"""Hold out part of each user's interactions for validation.

With timestamps on every interaction the split is temporal (each user's latest ``fraction``
is held out, as a shop would see it in production); otherwise it is random per user, seeded.
Users with a single interaction keep it in training.
"""

from __future__ import annotations

import numpy as np

from shopgraph.gnn.data import InteractionMatrix


def holdout_split(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int,
                  ts: np.ndarray | None = None, fraction: float = 0.1, seed: int = 0,
                  user_ids: np.ndarray | None = None, item_ids: np.ndarray | None = None,
                  ) -> tuple[InteractionMatrix, InteractionMatrix]:
    """Split interaction arrays into (train, held-out) matrices on the same id maps.

    Args:
        users: user position per interaction.
        items: item position per interaction.
        n_users: number of users.
        n_items: number of items.
        ts: timestamps (temporal split when given and none is missing; ``None``: random).
        fraction: share of each user's interactions held out (rounded down, at least 1 for
            users with 2 or more interactions).
        seed: seeds the random split and breaks timestamp ties.
        user_ids: id map for users.
        item_ids: id map for items.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be between 0 and 1, got {fraction}")
    rng = np.random.default_rng(seed)
    noise = rng.random(len(users))
    key = noise if ts is None else ts.astype(np.float64) + noise * 1e-3
    order = np.lexsort((key, users))          # by user, then oldest -> newest (or random)
    u_sorted = users[order]
    counts = np.bincount(users, minlength=n_users)
    n_out = np.where(counts >= 2, np.maximum(1, np.floor(counts * fraction)), 0).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)])[:-1]
    rank = np.arange(len(order)) - starts[u_sorted]        # position within the user's list
    held = rank >= (counts - n_out)[u_sorted]
    train_idx, test_idx = order[~held], order[held]
    make = InteractionMatrix.from_pairs
    return (make(users[train_idx], items[train_idx], n_users, n_items, user_ids, item_ids),
            make(users[test_idx], items[test_idx], n_users, n_items, user_ids, item_ids))
