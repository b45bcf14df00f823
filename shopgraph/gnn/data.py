"""``InteractionMatrix``: the user-item training data every model and metric reads.

Built from the graph layer's export (:class:`shopgraph.graphdb.export.Interactions`) or, for
benchmarks, straight from LightGCN-format files. Positions follow stable id maps, so a
checkpoint can be mapped back to the graph's ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from shopgraph.artifacts import fingerprint


@dataclass
class InteractionMatrix:
    """A binary user x item matrix with its id maps.

    Args:
        matrix: ``n_users x n_items`` CSR matrix, float32, 1 where the user interacted.
        user_ids: position -> user id (str).
        item_ids: position -> item id (str).
    """

    matrix: sp.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray

    @property
    def n_users(self) -> int:
        """Number of users (rows)."""
        return int(self.matrix.shape[0])

    @property
    def n_items(self) -> int:
        """Number of items (columns)."""
        return int(self.matrix.shape[1])

    @property
    def nnz(self) -> int:
        """Number of interactions."""
        return int(self.matrix.nnz)

    def fingerprint(self) -> str:
        """A fingerprint of the matrix and id maps (for checkpoints and indexes)."""
        m = self.matrix
        return fingerprint(m.shape, _digest(m.indptr), _digest(m.indices),
                           _digest(self.user_ids.astype(str)), _digest(self.item_ids.astype(str)))

    @classmethod
    def from_pairs(cls, users: np.ndarray, items: np.ndarray, n_users: int, n_items: int,
                   user_ids: np.ndarray | None = None,
                   item_ids: np.ndarray | None = None) -> InteractionMatrix:
        """Build from parallel position arrays (duplicates collapse to one)."""
        data = np.ones(len(users), dtype=np.float32)
        m = sp.csr_matrix((data, (users, items)), shape=(n_users, n_items), dtype=np.float32)
        m.sum_duplicates()
        m.data[:] = 1.0
        uids = user_ids if user_ids is not None else np.arange(n_users).astype(str)
        iids = item_ids if item_ids is not None else np.arange(n_items).astype(str)
        return cls(m, np.asarray(uids, dtype=str), np.asarray(iids, dtype=str))

    @classmethod
    def from_interactions(cls, arrays: object) -> InteractionMatrix:
        """Build from the graph layer's :class:`~shopgraph.graphdb.export.Interactions`."""
        return cls.from_pairs(arrays.users, arrays.items, len(arrays.user_ids),  # type: ignore[attr-defined]
                              len(arrays.item_ids), arrays.user_ids, arrays.item_ids)  # type: ignore[attr-defined]

    def like(self, users: np.ndarray, items: np.ndarray) -> InteractionMatrix:
        """Another matrix on the same id maps (e.g. the test split)."""
        return InteractionMatrix.from_pairs(users, items, self.n_users, self.n_items,
                                            self.user_ids, self.item_ids)


class PairSet:
    """Vectorised membership test for the (row, column) pairs stored in a sparse matrix.

    Args:
        m: the matrix whose non-zeros are the pairs.
    """

    def __init__(self, m: sp.spmatrix) -> None:
        m = sp.csr_matrix(m)
        self.n_cols = m.shape[1]
        rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
        self.keys = np.sort(rows * self.n_cols + m.indices.astype(np.int64))

    def contains(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Whether each (row, col) is a stored pair; ``rows`` and ``cols`` broadcast."""
        wanted = np.asarray(rows, dtype=np.int64) * self.n_cols + cols
        if not len(self.keys):
            return np.zeros(wanted.shape, dtype=bool)
        pos = np.minimum(np.searchsorted(self.keys, wanted), len(self.keys) - 1)
        found: np.ndarray = self.keys[pos] == wanted
        return found


def _digest(arr: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def read_lightgcn_pairs(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(user, item) int64 position arrays of a LightGCN ``user item item ...`` file."""
    users: list[np.ndarray] = []
    items: list[np.ndarray] = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) < 2:
                continue
            ids = np.asarray(parts[1:], dtype=np.int64)
            items.append(ids)
            users.append(np.full(len(ids), int(parts[0]), dtype=np.int64))
    if not items:
        raise ValueError(f"{path}: no interactions found")
    return np.concatenate(users), np.concatenate(items)


def read_rating_pairs(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(user, item) int64 position arrays of a ``user item rating`` file (SELFRec splits such
    as Amazon-Sports); the rating column is ignored."""
    table = np.loadtxt(path, dtype=np.int64, usecols=(0, 1), ndmin=2)
    if not len(table):
        raise ValueError(f"{path}: no interactions found")
    return table[:, 0], table[:, 1]


def load_lightgcn_split(train: str | Path, *tests: str | Path) -> list[InteractionMatrix]:
    """The training file and any evaluation files, on one shared shape (ids = positions)."""
    pairs = [read_lightgcn_pairs(p) for p in (train, *tests)]
    n_users = max(int(u.max()) for u, _ in pairs) + 1
    n_items = max(int(i.max()) for _, i in pairs) + 1
    return [InteractionMatrix.from_pairs(u, i, n_users, n_items) for u, i in pairs]
