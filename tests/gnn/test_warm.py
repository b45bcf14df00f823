"""Warm start of the BPR models on a grown graph: old parameters kept in place, new nodes from
their neighbours' mean, a few epochs that learn more than starting again would."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from shopgraph.gnn.data import InteractionMatrix
from shopgraph.gnn.graphsage import GraphSAGE
from shopgraph.gnn.lightgcn import LightGCN
from shopgraph.gnn.metrics import ScoreFn, evaluate, popularity_scores
from shopgraph.gnn.warm import neighbour_mean, warm_fit, warm_started

SETTINGS = {"dim": 16, "layers": 2, "batch_size": 64, "lr": 0.02, "seed": 0}


def test_neighbour_mean_copies_old_rows_and_averages_known_neighbours() -> None:
    old = np.arange(10, dtype=np.float32).reshape(5, 2)  # users 0-2, then items 0-1
    # 5 users x 4 items, users 3-4 and items 2-3 new: user 3 took items 0 and 1; item 2 was
    # taken by users 0 and 2 and by user 4, who took nothing else; nobody took item 3
    matrix = sp.csr_matrix(np.array([[1, 0, 1, 0],
                                     [0, 1, 0, 0],
                                     [1, 0, 1, 0],
                                     [1, 1, 0, 0],
                                     [0, 0, 1, 0]], dtype=np.float32))
    out = neighbour_mean(old, 3, 2, matrix)
    assert out.shape == (9, 2) and out.dtype == np.float32
    np.testing.assert_array_equal(out[:3], old[:3])           # old users in place
    np.testing.assert_array_equal(out[5:7], old[3:5])         # old items after the 5 users
    np.testing.assert_allclose(out[3], old[3:5].mean(axis=0))  # new user: its items' mean
    np.testing.assert_allclose(out[7], old[[0, 2]].mean(axis=0))  # new item: old users' mean
    np.testing.assert_allclose(out[4], out[7])                 # user 4: from the new item
    np.testing.assert_array_equal(out[8], 0)                   # no neighbour at all
    with pytest.raises(ValueError, match="rows"):
        neighbour_mean(old[:4], 3, 2, matrix)
    with pytest.raises(ValueError, match="appended"):
        neighbour_mean(old, 3, 2, matrix[:2])


def tastes(n_users: int, seed: int, groups: int = 2, size: int = 10, take: int = 5
           ) -> tuple[np.ndarray, np.ndarray]:
    """User u takes ``take`` items of group ``u % groups`` (items ``g*size .. g*size+size-1``)."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(n_users):
        picks = rng.choice(size, take, replace=False) + (u % groups) * size
        users += [u] * take
        items += picks.tolist()
    return np.array(users), np.array(items)


Shop = tuple[LightGCN, InteractionMatrix, InteractionMatrix]
OLD_USERS, OLD_ITEMS = 170, 70


@pytest.fixture(scope="module")
def grown() -> Shop:
    """200 users x 80 items who take 10 items each, drawn by the affinity of random unit
    vectors (3 per user held out); a LightGCN fitted on the first 170 users x 70 items, as if
    the last 30 users and 10 items were new since."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    taste, kind = rng.normal(size=(200, 4)), rng.normal(size=(80, 4))
    taste /= np.linalg.norm(taste, axis=1, keepdims=True)
    kind /= np.linalg.norm(kind, axis=1, keepdims=True)
    users, items, held = [], [], []
    for u in range(200):
        p = np.exp(4 * taste[u] @ kind.T)
        users += [u] * 10
        items += rng.choice(80, 10, replace=False, p=p / p.sum()).tolist()
        held += [True] * 3 + [False] * 7
    users_a, items_a, held_a = np.array(users), np.array(items), np.array(held)
    train = InteractionMatrix.from_pairs(users_a[~held_a], items_a[~held_a], 200, 80)
    test = InteractionMatrix.from_pairs(users_a[held_a], items_a[held_a], 200, 80)
    old = InteractionMatrix(sp.csr_matrix(train.matrix[:OLD_USERS, :OLD_ITEMS]),
                            train.user_ids[:OLD_USERS], train.item_ids[:OLD_ITEMS])
    model = LightGCN(**SETTINGS, epochs=20)
    model.fit(old, None, progress=False)
    return model, train, test


def recall(score: ScoreFn, train: InteractionMatrix, test: InteractionMatrix,
           users: np.ndarray | None = None) -> float:
    return evaluate(score, train.matrix, test.matrix, ks=(10,), users=users)["recall@10"]


def test_lightgcn_warm_start_keeps_old_rows_and_starts_new_nodes_from_neighbours(
        grown: Shop) -> None:
    model, train, test = grown
    state = model.state()["embedding"]
    warm = warm_started("lightgcn", model.config, model.state(), OLD_USERS, OLD_ITEMS, train)
    ego = warm.state()["embedding"]
    n_users = train.n_users
    assert ego.shape == (n_users + train.n_items, SETTINGS["dim"])
    np.testing.assert_array_equal(ego[:OLD_USERS], state[:OLD_USERS])
    np.testing.assert_array_equal(ego[n_users:n_users + OLD_ITEMS], state[OLD_USERS:])
    for u in range(OLD_USERS, n_users):  # a new user: the mean of the old items they took
        taken = train.matrix[u].indices
        np.testing.assert_allclose(ego[u], state[OLD_USERS + taken[taken < OLD_ITEMS]].mean(0),
                                   rtol=1e-5, atol=1e-6)
    for i in range(OLD_ITEMS, train.n_items):  # a new item: the mean of its old users
        takers = train.matrix[:, i].nonzero()[0]
        np.testing.assert_allclose(ego[n_users + i], state[takers[takers < OLD_USERS]].mean(0),
                                   rtol=1e-5, atol=1e-6)
    # before any training the new users are served far better than by the popular list
    new = np.arange(OLD_USERS, n_users)
    pop = recall(popularity_scores(train.matrix), train, test, new)
    assert recall(warm.score, train, test, new) > 2 * pop


def test_lightgcn_warm_epochs_keep_up_with_a_retrain(grown: Shop) -> None:
    model, train, test = grown
    warm = warm_started("lightgcn", model.config, model.state(), OLD_USERS, OLD_ITEMS, train)
    report = warm_fit(warm, train, 2, seed=5)
    assert [row["epoch"] for row in report.history] == [1, 2]
    retrained = LightGCN(**SETTINGS, epochs=20)
    retrained.fit(train, None, progress=False)
    ours, full = recall(warm.score, train, test), recall(retrained.score, train, test)
    # parameters copied to the wrong rows start from noise: about 0.2 after 2 epochs, 0.45 here
    assert ours >= 0.9 * full and ours > 2.5 * recall(popularity_scores(train.matrix), train, test)
    assert warm_fit(warm, train, 0).history == []  # 0 epochs: the start as it is
    with pytest.raises(ValueError, match="epochs"):
        warm_fit(warm, train, -1)


def test_warm_fit_keeps_the_time_budget_per_step(grown: Shop) -> None:
    model, train, _ = grown
    config = {**model.config, "max_seconds": 1e-9, "batch_size": 8}
    warm = warm_started("lightgcn", config, model.state(), OLD_USERS, OLD_ITEMS, train)
    report = warm_fit(warm, train, 3)
    assert len(report.history) == 1 and report.history[0]["steps"] == 1


def test_graphsage_warm_start_grows_ids_and_features_by_category_name() -> None:
    torch.set_num_threads(1)
    users, items = tastes(40, seed=2)
    old = InteractionMatrix.from_pairs(users, items, 40, 20)
    names = np.array(["books", "games"])
    cats = np.repeat([0, 1], 10)
    price = np.linspace(5, 50, 20)
    model = GraphSAGE(dim=8, layers=2, epochs=3, batch_size=64, lr=0.01)
    model.fit(old, None, item_features={"category": cats, "categories": names, "price": price},
              progress=False)
    state = model.state()
    # two new items: a "games" one and one of a category the model never saw; the export's
    # codes are renumbered ("art" sorts first), the names are what carry over
    now_names = np.array(["art", "books", "games"])
    now_cats = np.concatenate([cats + 1, [2, 0]])
    grown = InteractionMatrix.from_pairs(np.concatenate([users, [0, 2, 41, 41]]),
                                         np.concatenate([items, [20, 20, 21, 3]]), 42, 22)
    feats = {"category": now_cats, "categories": now_names,
             "price": np.concatenate([price, [20.0, np.nan]])}
    warm = warm_started("graphsage", model.config, state, 40, 20, grown, item_features=feats)
    assert warm.module is not None
    got = warm.state()
    np.testing.assert_array_equal(got["item_cat"], np.concatenate([cats, [1, -1]]))
    assert got["item_num"][21, 1] == 1 and got["item_num"][20, 1] == 0  # missing price flag
    np.testing.assert_array_equal(got["price_stats"], state["price_stats"])
    for key in ("convs.0.lin_l.weight", "convs.1.lin_r.weight", "cat_emb.weight"):
        np.testing.assert_array_equal(got[key], state[key])
    ids = got["embedding.weight"]
    np.testing.assert_array_equal(ids[:40], state["embedding.weight"][:40])
    np.testing.assert_array_equal(ids[42:62], state["embedding.weight"][40:])
    np.testing.assert_allclose(ids[62], state["embedding.weight"][[0, 2]].mean(axis=0),
                               rtol=1e-5)
    np.testing.assert_allclose(ids[41], state["embedding.weight"][40 + 3], rtol=1e-5)
    user_emb, item_emb = warm.embeddings()
    assert user_emb.shape[0] == 42 and item_emb.shape[0] == 22
    assert len(warm_fit(warm, grown, 1).history) == 1
    with pytest.raises(ValueError, match="warm-started"):
        warm_started("spectral", {}, {}, 40, 20, grown)
