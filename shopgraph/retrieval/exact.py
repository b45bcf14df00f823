"""Exact inner-product search: the ground truth for approximate indexes, and the path for small
catalogues, selective filters and users whose excluded items outnumber what an index can
over-fetch.

Scores are computed one block of queries at a time with a single matrix multiply (PyTorch, so
every BLAS thread works), excluded pairs are set to ``-inf``, and ``torch.topk`` reduces each row.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
import torch

BLOCK_FLOATS = 1 << 25
"""Scores held at once (128 MB of float32); sets how many queries share one multiply."""


class SearchResult(NamedTuple):
    """Best-first results of a batch of queries.

    Args:
        scores: float32 ``(n, k)``; NaN where a query has fewer than ``k`` results.
        ids: int64 positions ``(n, k)``; -1 where a query has fewer than ``k`` results.
    """

    scores: np.ndarray
    ids: np.ndarray


def empty_result(n: int, k: int) -> SearchResult:
    """A result of ``n`` rows that holds nothing yet (all padding)."""
    return SearchResult(np.full((n, k), np.nan, dtype=np.float32),
                        np.full((n, k), -1, dtype=np.int64))


def exact_search(queries: np.ndarray, vectors: np.ndarray, k: int, *,
                 exclude: sp.csr_matrix | None = None, candidates: np.ndarray | None = None,
                 block_floats: int = BLOCK_FLOATS) -> SearchResult:
    """The ``k`` vectors with the largest inner product with each query.

    Args:
        queries: float32 ``(n, d)``.
        vectors: float32 ``(m, d)``.
        k: results per query; rows with fewer admissible vectors are padded.
        exclude: ``n x m`` sparse matrix; a stored ``(q, j)`` keeps vector ``j`` out of query
            ``q``'s results (seen items, the query item itself).
        candidates: positions of the only vectors to consider (a filter), or None for all.
        block_floats: scores held at once; bounds memory.
    """
    n = len(queries)
    pool = np.arange(len(vectors)) if candidates is None else np.asarray(candidates, np.int64)
    width = min(k, len(pool))
    result = empty_result(n, k)
    if n == 0 or width == 0:
        return result
    table = torch.from_numpy(np.ascontiguousarray(vectors if candidates is None
                                                  else vectors[pool], dtype=np.float32))
    remap = None
    if exclude is not None and candidates is not None:
        remap = np.full(len(vectors), -1, dtype=np.int64)
        remap[pool] = np.arange(len(pool))
    step = max(1, block_floats // len(pool))
    for start in range(0, n, step):
        stop = min(n, start + step)
        scores = torch.from_numpy(np.ascontiguousarray(queries[start:stop], np.float32)) @ table.T
        if exclude is not None:
            block = exclude[start:stop]
            rows = np.repeat(np.arange(stop - start), np.diff(block.indptr))
            cols = block.indices.astype(np.int64)
            if remap is not None:
                cols = remap[cols]
                rows, cols = rows[cols >= 0], cols[cols >= 0]
            scores[torch.from_numpy(rows), torch.from_numpy(cols)] = float("-inf")
        top = torch.topk(scores, width, dim=1)
        vals, idx = top.values.numpy(), top.indices.numpy()
        valid = np.isfinite(vals)
        result.scores[start:stop, :width] = np.where(valid, vals, np.nan)
        result.ids[start:stop, :width] = np.where(valid, pool[idx], -1)
    return result


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row's true neighbours (``truth``, -1 padding ignored) that ``found``
    recovered: the recall of an approximate index against exact search."""
    hits = total = 0
    for f, t in zip(found, truth):
        t = t[t >= 0]
        hits += np.intersect1d(f[f >= 0], t).size
        total += t.size
    return hits / total if total else 1.0
