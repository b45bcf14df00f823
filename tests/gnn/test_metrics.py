"""Ranking metrics against cases worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from shopgraph.gnn.metrics import evaluate, popularity_scores, top_k


def csr(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    r = [u for u, items in enumerate(rows) for _ in items]
    c = [i for items in rows for i in items]
    return sp.csr_matrix((np.ones(len(c), np.float32), (r, c)), shape=(len(rows), n_items))


# 2 users, 6 items. Scores rank items 0..5 in the order given per user.
SCORES = torch.tensor([[6.0, 5, 4, 3, 2, 1], [1.0, 2, 3, 4, 5, 6]])


def score_fn(users: np.ndarray) -> torch.Tensor:
    return SCORES[torch.as_tensor(users)].clone()


def test_hand_computed_recall_ndcg_precision_hitrate() -> None:
    train = csr([[0], [5]], 6)        # masked: user 0 loses item 0, user 1 loses item 5
    test = csr([[2, 4], [3]], 6)      # user 0 ranking 1,2,3,4,5 ; user 1 ranking 4,3,2,1,0
    m = evaluate(score_fn, train, test, ks=(2, 3))
    # K=2: user 0 top [1,2] hits {2} at rank 2; user 1 top [4,3] hits {3} at rank 2.
    d2 = 1 / math.log2(3)
    assert m["recall@2"] == pytest.approx((1 / 2 + 1 / 1) / 2)
    assert m["precision@2"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert m["hitrate@2"] == 1.0
    idcg_u0 = 1 + d2            # two relevant items, K=2
    assert m["ndcg@2"] == pytest.approx((d2 / idcg_u0 + d2 / 1) / 2)
    # K=3: user 0 top [1,2,3] -> still 1 hit; user 1 top [4,3,2] -> 1 hit.
    assert m["recall@3"] == pytest.approx((0.5 + 1.0) / 2)
    # coverage@2: items {1,2} and {4,3} -> 4 of 6
    assert m["coverage@2"] == pytest.approx(4 / 6)
    assert m["users"] == 2


def test_users_without_test_items_are_skipped_and_training_items_never_count() -> None:
    train = csr([[2], [], [0]], 6)
    test = csr([[2], [], [1]], 6)     # user 0's only test item is also a training item
    scores = torch.tensor([[0.0, 0, 9, 0, 0, 0], [0.0] * 6, [9.0, 8, 0, 0, 0, 0]])
    m = evaluate(lambda u: scores[torch.as_tensor(u)].clone(), train, test, ks=(1,))
    assert m["users"] == 2 and m["recall@1"] == pytest.approx(0.5)


def test_bad_shapes_and_k_are_errors() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        evaluate(score_fn, csr([[0]], 6), csr([[0]], 7))
    with pytest.raises(ValueError, match="larger than the catalogue"):
        evaluate(score_fn, csr([[0], [1]], 6), csr([[1], [2]], 6), ks=(7,))
    with pytest.raises(ValueError, match="no user"):
        evaluate(score_fn, csr([[0], [1]], 6), csr([[], []], 6))


def test_top_k_excludes_and_popularity_ranks_by_count() -> None:
    train = csr([[0, 1], [1], [1, 2], [2]], 4)   # counts: item 1: 3, item 2: 2, item 0: 1
    pop = popularity_scores(train)
    assert top_k(pop, np.array([0, 1]), 2, exclude=None).tolist() == [[1, 2], [1, 2]]
    assert top_k(pop, np.array([0]), 2, exclude=train).tolist() == [[2, 3]]


def test_beyond_max_users_a_seeded_sample_is_scored_and_estimates_the_whole() -> None:
    rng = np.random.default_rng(3)
    n_users, n_items = 4000, 50
    test = sp.csr_matrix((np.ones(n_users, np.float32),
                          (np.arange(n_users), rng.integers(0, n_items, n_users))),
                         shape=(n_users, n_items))
    train = sp.csr_matrix((n_users, n_items), dtype=np.float32)
    noise = torch.from_numpy(rng.random((n_users, n_items), dtype=np.float32))
    truth = torch.from_numpy(test.toarray())

    def noisy(users: np.ndarray) -> torch.Tensor:  # finds the held-out item about half the time
        u = torch.as_tensor(users)
        return noise[u] + 0.5 * truth[u]

    whole = evaluate(noisy, train, test, ks=(5,), max_users=None)
    scored: list[int] = []

    def counting(users: np.ndarray) -> torch.Tensor:
        scored.extend(users.tolist())
        return noisy(users)

    part = evaluate(counting, train, test, ks=(5,), max_users=1000, seed=7)
    assert whole["users"] == n_users and part["users"] == 1000
    assert len(set(scored)) == 1000 and scored == sorted(scored)
    assert part["recall@5"] == pytest.approx(whole["recall@5"], abs=0.05)
    assert part == evaluate(noisy, train, test, ks=(5,), max_users=1000, seed=7)
    assert part != evaluate(noisy, train, test, ks=(5,), max_users=1000, seed=8)
