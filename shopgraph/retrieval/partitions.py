"""All-user top-k in fixed-size blocks of users, on any :class:`~shopgraph.parallel.Engine`.

Users are cut into blocks of ``block_size`` consecutive positions. Every block is scored by the
same function (:func:`score_block`) with the same inputs whichever engine runs it, in this
process or on a worker of a cluster, so the results are bit-identical; only where the work
happens changes. The block size does not change the items either: FAISS scores each (user,
item) pair on its own, and exact search (a matrix product per block) may differ only in the
last bit of a score for a block of a few users. What every block needs beside its users (the
item index, popularity, the filter) is an :class:`ItemSearch`, sent once to each worker; a
:class:`UserBlock` carries the block's user vectors, seen items and cold-start flags.

:func:`write_parquet` writes the long form of :meth:`~shopgraph.retrieval.queries.Results.
to_pandas` (``query``, ``rank``, ``item_id``, ``score``), one Parquet row group per block as the
blocks arrive, to one file (atomically), so an export of every user never holds more than a few
blocks in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from shopgraph.parallel import Engine, LocalEngine
from shopgraph.retrieval.exact import SearchResult, exact_search
from shopgraph.retrieval.index import EmbeddingIndex

BLOCK_SIZE = 65536
"""Users per block (16 MB of 64-d vectors); results are the same for any size."""


@dataclass(frozen=True)
class ItemSearch:
    """Top-``k`` items for users: what every block shares.

    Args:
        index: the item index (inner product).
        popularity: seen-pair count per item; users without an embedding get the most popular.
        k: items per user.
        candidates: positions of the only admissible items (a filter), or None.
    """

    index: EmbeddingIndex
    popularity: np.ndarray
    k: int
    candidates: np.ndarray | None = None

    def __call__(self, queries: np.ndarray, exclude: sp.csr_matrix | None,
                 cold: np.ndarray) -> SearchResult:
        """The top items of each query row, leaving out its ``exclude`` pairs; rows flagged
        ``cold`` (all-zero embeddings) get the most popular items instead."""
        found = self.index.search(queries, self.k, exclude=exclude, candidates=self.candidates)
        rows = np.flatnonzero(cold)
        if len(rows):
            found.scores[rows], found.ids[rows] = self.popular(
                len(rows), exclude[rows] if exclude is not None else None)
        return found

    def popular(self, rows: int, exclude: sp.csr_matrix | None = None) -> SearchResult:
        """The ``k`` most popular items for each of ``rows`` rows, less their ``exclude``."""
        return exact_search(np.ones((rows, 1), dtype=np.float32), self.popularity[:, None],
                            self.k, candidates=self.candidates, exclude=exclude)


@dataclass(frozen=True)
class UserBlock:
    """One block of users: rows ``start:start + len(queries)`` of the user table.

    Args:
        start: the first user position.
        queries: float32 user vectors of the block.
        exclude: the block's seen items (rows of the seen matrix), or None.
        cold: True where the user's embedding is all zeros.
    """

    start: int
    queries: np.ndarray
    exclude: sp.csr_matrix | None
    cold: np.ndarray


def score_block(search: ItemSearch, block: UserBlock) -> tuple[int, SearchResult]:
    """The block's start and its top items (the task every engine runs)."""
    return block.start, search(block.queries, block.exclude, block.cold)


def user_blocks(user_emb: np.ndarray, seen: sp.csr_matrix | None, cold: np.ndarray,
                block_size: int = BLOCK_SIZE) -> Iterator[UserBlock]:
    """The user table cut into consecutive blocks of ``block_size`` users (made lazily)."""
    if block_size < 1:
        raise ValueError(f"block_size must be at least 1, got {block_size}")
    for start in range(0, len(user_emb), block_size):
        stop = min(len(user_emb), start + block_size)
        yield UserBlock(start, np.ascontiguousarray(user_emb[start:stop]),
                        seen[start:stop] if seen is not None else None, cold[start:stop])


def top_items(search: ItemSearch, user_emb: np.ndarray, seen: sp.csr_matrix | None,
              cold: np.ndarray, *, block_size: int = BLOCK_SIZE,
              engine: Engine | None = None) -> Iterator[tuple[int, SearchResult]]:
    """Every user's top items, block by block in user order: ``(start, result)`` pairs.

    Args:
        search: the shared part of the search.
        user_emb: float32 ``(n_users, d)``.
        seen: ``n_users x n_items`` pairs to leave out, or None.
        cold: True for users with an all-zero embedding.
        block_size: users per block.
        engine: where the blocks are scored (default: here, in order).
    """
    blocks = user_blocks(user_emb, seen, cold, block_size)
    return (engine or LocalEngine()).map(score_block, search, blocks)


def write_parquet(path: str | Path, blocks: Iterable[tuple[int, SearchResult]],
                  user_ids: np.ndarray, item_ids: np.ndarray) -> int:
    """Write ``blocks`` (from :func:`top_items`) to one Parquet file, a row group per block,
    in the long form of ``Results.to_pandas()``; returns the number of rows written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from shopgraph.artifacts import atomic_path

    schema = pa.schema([("query", pa.string()), ("rank", pa.int64()), ("item_id", pa.string()),
                        ("score", pa.float64())])
    rows = 0
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for start, found in blocks:
            n, k = found.ids.shape
            valid = (found.ids >= 0).ravel()
            queries = np.repeat(user_ids[start:start + n].astype(str), k)[valid]
            table = pa.table({
                "query": queries,
                "rank": np.tile(np.arange(1, k + 1, dtype=np.int64), n)[valid],
                "item_id": item_ids[found.ids.ravel()[valid]].astype(str),
                "score": found.scores.ravel()[valid].astype(np.float64)}, schema=schema)
            writer.write_table(table)
            rows += table.num_rows
    return rows
