"""Exact search and the FAISS indexes: exclusions, filters, padding, tuning, persistence."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from shopgraph.retrieval import index as index_mod
from shopgraph.retrieval.exact import exact_search, recall_at_k
from shopgraph.retrieval.index import EmbeddingIndex, choose_factory


def clustered(n: int, d: int = 16, centres: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, d))
    return (c[rng.integers(0, centres, n)] + 0.3 * rng.normal(size=(n, d))).astype(np.float32)


def brute(q: np.ndarray, v: np.ndarray, k: int, banned: list[set[int]],
          allowed: set[int] | None = None) -> list[list[int]]:
    out = []
    for row, qv in enumerate(q):
        s = v @ qv
        order = [j for j in np.argsort(-s, kind="stable") if j not in banned[row]
                 and (allowed is None or j in allowed)]
        out.append(order[:k])
    return out


def excl(rows: list[set[int]], n: int) -> sp.csr_matrix:
    r = [i for i, s in enumerate(rows) for _ in s]
    c = [j for s in rows for j in sorted(s)]
    return sp.csr_matrix((np.ones(len(c)), (r, c)), shape=(len(rows), n))


def test_exact_search_matches_brute_force_with_exclusions_and_candidates() -> None:
    v = clustered(300)
    q = clustered(7, seed=1)
    banned = [set(np.random.default_rng(i).choice(300, 30, replace=False).tolist())
              for i in range(7)]
    res = exact_search(q, v, 10, exclude=excl(banned, 300), block_floats=600)  # several blocks
    assert res.ids.tolist() == brute(q, v, 10, banned)
    assert np.allclose(res.scores, np.take_along_axis(q @ v.T, res.ids, 1), atol=1e-5)
    allowed = np.arange(0, 300, 3)
    res = exact_search(q, v, 10, exclude=excl(banned, 300), candidates=allowed)
    assert res.ids.tolist() == brute(q, v, 10, banned, set(allowed.tolist()))


def test_exact_search_pads_when_fewer_results_than_k() -> None:
    v = clustered(5)
    res = exact_search(v[:2], v, 8, exclude=excl([{0, 1, 2}, set()], 5))
    assert res.ids.shape == (2, 8)
    assert (res.ids[0, :2] >= 0).all() and (res.ids[0, 2:] == -1).all()
    assert np.isnan(res.scores[0, 2:]).all() and (res.ids[1, 5:] == -1).all()
    assert set(res.ids[1, :5]) == set(range(5))


def test_recall_at_k_counts_shared_ids_and_ignores_padding() -> None:
    truth = np.array([[1, 2, 3, 4], [5, 6, -1, -1]])
    assert recall_at_k(np.array([[4, 3, 9, 8], [6, 7, 5, -1]]), truth) == pytest.approx(4 / 6)


def test_auto_kind_is_exact_small_and_hnsw_large() -> None:
    assert choose_factory("auto", 1000, 64) == "Flat"
    assert choose_factory("auto", 500_000, 64) == "Flat"  # 32M floats: about 10 ms a query
    assert choose_factory("auto", 600_000, 64) == "HNSW32"
    assert choose_factory("ivf", 100_000, 64) == "IVF1265,Flat"
    assert choose_factory("ivfpq", 100_000, 64) == "IVF1265,PQ16"
    # A small table that a pass of many queries would score exactly too often: approximate.
    assert choose_factory("auto", 50_000, 32, queries=300_000) == "Flat"
    assert choose_factory("auto", 50_000, 32, queries=400_000) == "HNSW32"
    assert choose_factory("exact", 50_000, 32, queries=10**9) == "Flat"
    with pytest.raises(ValueError, match="not one of"):
        choose_factory("lsh", 10, 4)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_index_is_tuned_to_the_target_recall(kind: str) -> None:
    v = clustered(4000, d=32)
    q = clustered(300, d=32, seed=3)
    ix = EmbeddingIndex.build(v, kind=kind, tune_queries=q, target_recall=0.95)
    assert ix.info["recall@20"] >= 0.95 and ix.params
    truth = exact_search(q, v, 20).ids
    assert recall_at_k(ix.search(q, 20).ids, truth) >= 0.93  # fresh queries, same tuning


def test_ann_search_never_returns_excluded_or_filtered_items() -> None:
    v = clustered(3000, d=16)
    q = clustered(50, d=16, seed=2)
    ix = EmbeddingIndex.build(v, kind="hnsw", tune_queries=q, target_recall=0.99)
    truth = exact_search(q, v, 20).ids
    banned = [set(truth[r, :10].tolist()) for r in range(50)]  # the 10 best are excluded
    banned[0] = set(range(0, 3000, 2))  # a heavy user: beyond MAX_FETCH, goes exact
    res = ix.search(q, 20, exclude=excl(banned, 3000))
    for row in range(50):
        assert not set(res.ids[row].tolist()) & banned[row]
    assert res.ids[0].tolist() == brute(q[:1], v, 20, banned[:1])[0]
    assert recall_at_k(res.ids[1:], exact_search(q[1:], v, 20,
                                                 exclude=excl(banned[1:], 3000)).ids) > 0.95
    # a broad filter searched through the index, then a selective one searched exactly
    broad = np.arange(0, 3000, 2)
    old = index_mod.FILTER_EXACT_FLOATS
    index_mod.FILTER_EXACT_FLOATS = 0
    try:
        res = ix.search(q, 10, candidates=broad)
    finally:
        index_mod.FILTER_EXACT_FLOATS = old
    assert (res.ids >= 0).all() and (res.ids % 2 == 0).all()
    assert recall_at_k(res.ids, exact_search(q, v, 10, candidates=broad).ids) > 0.9
    few = np.array([5, 17, 400])
    res = ix.search(q, 10, candidates=few)
    assert set(res.ids[0, :3].tolist()) == {5, 17, 400} and (res.ids[:, 3:] == -1).all()


def test_cosine_metric_normalises_vectors_and_queries() -> None:
    v = np.array([[10.0, 0.0], [0.6, 0.8], [0.0, 1.0]], dtype=np.float32)
    ix = EmbeddingIndex.build(v, metric="cosine")
    res = ix.search(np.array([[0.0, 2.0]], dtype=np.float32), 3)
    assert res.ids[0].tolist() == [2, 1, 0]
    assert res.scores[0].tolist() == pytest.approx([1.0, 0.8, 0.0])


def test_serialised_index_gives_identical_results_and_checks_shape() -> None:
    v = clustered(2000, d=16)
    ix = EmbeddingIndex.build(v, kind="ivf")
    back = EmbeddingIndex.from_bytes(v, ix.to_bytes(), ix.factory, ix.metric, ix.params, ix.info)
    assert np.array_equal(back.search(v[:20], 5).ids, ix.search(v[:20], 5).ids)
    assert ix.nbytes > 0 and back.params == ix.params
    with pytest.raises(ValueError, match="rebuild"):
        EmbeddingIndex.from_bytes(v[:100], ix.to_bytes(), ix.factory, ix.metric, ix.params, {})


def test_bad_input_is_refused_clearly() -> None:
    v = clustered(100)
    with pytest.raises(ValueError, match="factory string"):
        EmbeddingIndex.build(v, factory="NoSuchIndex12")
    with pytest.raises(ValueError, match="NaN"):
        EmbeddingIndex.build(np.full((3, 2), np.nan, dtype=np.float32))
    ix = EmbeddingIndex.build(v)
    with pytest.raises(ValueError, match="dimensions"):
        ix.search(np.zeros((1, 3), dtype=np.float32), 5)
    with pytest.raises(ValueError, match="k must be"):
        ix.search(v[:1], 0)
