"""Spectral filter: the maths against a dense reference, embeddings = scores, determinism,
state round trip, and a real ranking gain over popularity on LastFM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from shopgraph.gnn.checkpoint import load_checkpoint, save_checkpoint
from shopgraph.gnn.data import InteractionMatrix, load_lightgcn_split
from shopgraph.gnn.metrics import evaluate, popularity_scores
from shopgraph.gnn.spectral import TUNE_RANKS, SpectralFilter, randomized_svd, tune_filter

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
LASTFM = {"k": 128, "threads": 1}


@pytest.fixture(scope="module")
def shared_data() -> Path:
    """The shared datasets folder; skips when it is absent."""
    if not (SHARED / "lastfm" / "train.txt").is_file():
        pytest.skip(f"shared datasets not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="module")
def lastfm(shared_data: Path) -> tuple[InteractionMatrix, InteractionMatrix, SpectralFilter]:
    train, test = load_lightgcn_split(shared_data / "lastfm" / "train.txt",
                                      shared_data / "lastfm" / "test.txt")
    model = SpectralFilter(**LASTFM)
    model.fit(train)
    return train, test, model


def tiny(seed: int = 0, n_users: int = 60, n_items: int = 40, n: int = 500) -> InteractionMatrix:
    rng = np.random.default_rng(seed)
    return InteractionMatrix.from_pairs(rng.integers(0, n_users, n), rng.integers(0, n_items, n),
                                        n_users, n_items)


def test_randomized_svd_matches_dense_svd() -> None:
    m = tiny().matrix
    sigma, v = randomized_svd(m, 10, oversample=30, n_iter=4)
    ref = np.linalg.svd(m.toarray().astype(np.float64), compute_uv=False)
    np.testing.assert_allclose(sigma, ref[:10], rtol=1e-4)
    np.testing.assert_allclose(v.T @ v, np.eye(10), atol=1e-5)


def test_scores_follow_the_filter_formula() -> None:
    """s_u = r~_u V Sigma^p V^T D_I^c with r~ = D_U^-a R D_I^-b, against a dense SVD."""
    data = tiny(1)
    cfg = {"k": 12, "user_norm": 0.3, "item_norm": 0.4, "item_scale": 0.35, "power": 0.7,
           "oversample": 28}
    model = SpectralFilter(**cfg)
    model.fit(data)
    r = data.matrix.toarray().astype(np.float64)
    du, di = r.sum(1), r.sum(0)
    with np.errstate(divide="ignore"):
        norm = np.where(du > 0, du ** -0.3, 0)[:, None] * r * np.where(di > 0, di ** -0.4, 0)
    _, s, vt = np.linalg.svd(norm)
    v = vt[:12].T
    expected = norm @ v @ np.diag(s[:12] ** 0.7) @ v.T * np.where(di > 0, di ** 0.35, 0)
    got = model.score(np.arange(data.n_users)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_beats_popularity_on_lastfm(lastfm) -> None:
    train, test, model = lastfm
    ours = evaluate(model.score, train.matrix, test.matrix)
    pop = evaluate(popularity_scores(train.matrix), train.matrix, test.matrix)
    # measured: recall@20 0.2301 (seeds 0-2: 0.2301-0.2314) vs popularity 0.1055; NDCG@20
    # 0.2262 vs 0.0973 (k=128, defaults otherwise)
    assert ours["recall@20"] > 0.21
    assert ours["recall@20"] > 1.8 * pop["recall@20"]
    assert ours["ndcg@20"] > 1.8 * pop["ndcg@20"]


def test_score_is_the_embedding_inner_product(lastfm) -> None:
    _, _, model = lastfm
    user_emb, item_emb = model.embeddings()
    assert user_emb.dtype == item_emb.dtype == np.float32
    assert user_emb.shape[1] == item_emb.shape[1] == LASTFM["k"]
    users = np.arange(0, model.n_users, 7)
    expected = torch.from_numpy(user_emb[users] @ item_emb.T)
    assert torch.allclose(model.score(users), expected, atol=1e-5)


def test_same_seed_same_embeddings(lastfm) -> None:
    train, _, model = lastfm
    again = SpectralFilter(**LASTFM)
    again.fit(train)
    for a, b in zip(model.embeddings(), again.embeddings()):
        np.testing.assert_array_equal(a, b)
    other = SpectralFilter(**LASTFM, seed=1)
    other.fit(train)
    assert not np.array_equal(model.embeddings()[1], other.embeddings()[1])


def test_state_round_trip_gives_identical_scores(lastfm, tmp_path: Path) -> None:
    train, _, model = lastfm
    path = save_checkpoint(tmp_path / "spectral.npz", model, train)
    ckpt = load_checkpoint(path)
    restored = SpectralFilter(**ckpt.config)
    restored.load_state(ckpt.weights, len(ckpt.user_ids), len(ckpt.item_ids))
    users = np.arange(model.n_users)
    assert torch.equal(restored.score(users), model.score(users))
    np.testing.assert_array_equal(restored.embeddings()[0], ckpt.user_emb)


def test_refilter_and_fold_in_are_exact(lastfm) -> None:
    train, _, model = lastfm
    cheap = model.refilter(item_scale=0.5, power=1.0)
    fitted = SpectralFilter(**{**LASTFM, "item_scale": 0.5, "power": 1.0})
    fitted.fit(train)
    for a, b in zip(cheap.embeddings(), fitted.embeddings()):
        np.testing.assert_allclose(a, b, atol=1e-5)
    rows = train.matrix[:25]
    np.testing.assert_allclose(model.fold_in(rows), model.embeddings()[0][:25], atol=1e-5)


def test_tuning_scores_are_the_tuned_models_validation_recall(lastfm) -> None:
    """The grid's accumulated prefix scores equal a model fitted at the chosen rank and scale,
    scored by ``evaluate`` on the same users."""
    train, test, _ = lastfm
    model = SpectralFilter(k=128, threads=1, tune_users=10**6)
    report = model.fit(train, test)
    step = report.history[0]
    k, scale = int(step["tuned_k"]), step["tuned_item_scale"]
    assert k in TUNE_RANKS and k <= 128 and model.config["k"] == k
    assert model.config["item_scale"] == scale and model.embeddings()[0].shape[1] == k
    fixed = SpectralFilter(k=128, threads=1, tune=False, item_scale=scale)
    fixed.fit(train)
    user, item = fixed.embeddings()

    def truncated(users: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(user[users, :k] @ item[:, :k].T)

    ref = evaluate(truncated, train.matrix, test.matrix, ks=(20,))["recall@20"]
    assert step["tune_recall"] == pytest.approx(ref, abs=1e-6)
    assert report.best_metric == step["tune_recall"]


def test_tune_filter_takes_the_largest_rank_tied_with_the_best() -> None:
    """Ranks whose validation recall is within a paired standard error of the best are tied;
    the largest of them is chosen, then the best scale at it."""
    train, valid = tiny(4, n_users=400, n_items=60, n=3000), tiny(5, n_users=400, n_items=60,
                                                                  n=600)
    model = SpectralFilter(k=60, threads=1, tune=False)
    norm = model._normalize(train.matrix.tocsr(), np.asarray(train.matrix.sum(1)).ravel(),
                            np.asarray(train.matrix.sum(0)).ravel())
    _, vecs = randomized_svd(norm, 60, oversample=20, n_iter=4)
    users = np.flatnonzero(np.diff(valid.matrix.tocsr().indptr) > 0)
    rows = tune_filter(np.asarray(norm[users] @ vecs), vecs, np.ones(60),
                       np.asarray(train.matrix.sum(0)).ravel(), train.matrix.tocsr(),
                       valid.matrix, users, 0.3)
    first = [r for r in rows if r["item_scale"] == 0.3 and r["k"] in (8, 16, 32, 60)]
    chosen = next(r for r in rows if r["chosen"])
    best = max(r["recall"] for r in first)
    assert chosen["k"] >= max(r["k"] for r in first if r["recall"] == best)
    assert chosen["recall"] == max(r["recall"] for r in rows if r["k"] == chosen["k"])
    # A validation item each user already has in training is never recommended: every rank
    # ties at recall 0, so the largest is chosen (an argmax would take the first, 8).
    cold = sp.lil_matrix(valid.matrix.shape, dtype=np.float32)
    cold[users, 59] = 1
    seen = train.matrix.tolil()
    seen[users, 59] = 1
    rows = tune_filter(np.asarray(norm[users] @ vecs), vecs, np.ones(60),
                       np.asarray(train.matrix.sum(0)).ravel(), seen.tocsr(), cold.tocsr(),
                       users, 0.3)
    assert {r["recall"] for r in rows} == {0.0}
    assert next(r for r in rows if r["chosen"])["k"] == 60


def test_tuning_on_a_small_matrix_applies_the_chosen_rank() -> None:
    """With ``k`` above the first tuning rank's reach, the tuned rank and the embeddings agree."""
    train, valid = tiny(2, n_users=300, n_items=80, n=1500), tiny(3, n_users=300, n_items=80,
                                                                 n=300)
    model = SpectralFilter(k=64, threads=1)
    step = model.fit(train, valid).history[0]
    assert model.config["k"] == int(step["tuned_k"]) <= 64
    assert model.embeddings()[1].shape == (80, model.config["k"])


def test_updated_folds_in_new_items_and_users(lastfm) -> None:
    """Items the model never saw get (up to the SVD's accuracy) the embedding a full fit gives
    them; a new user with an existing user's row gets that user's embedding; others keep
    theirs."""
    train, _, _ = lastfm
    x = train.matrix.tocsr()
    degree = np.asarray(x.sum(axis=0)).ravel()
    moved = np.argsort(-degree)[100:110]
    order = np.concatenate([np.setdiff1d(np.arange(x.shape[1]), moved), moved])
    full = SpectralFilter(k=64, n_iter=6, threads=1, tune=False)
    full.fit(InteractionMatrix(x[:, order].tocsr(), train.user_ids, train.item_ids[order]))
    user, item = full.embeddings()
    state = full.state()
    old = SpectralFilter(**full.config)
    old.load_state({"user_emb": user, "item_emb": item[:-10],
                    "item_degree": state["item_degree"][:-10], "sigma": state["sigma"]},
                   full.n_users, full.n_items - 10)
    grown = x[:, order].tocsr()
    grown = sp.vstack([grown, grown[:3]]).tocsr()  # three new users copying users 0-2
    new = old.updated(grown, np.array([], dtype=np.int64))
    new_user, new_item = new.embeddings()
    assert new.n_users == full.n_users + 3 and new.n_items == full.n_items
    scale = np.abs(item[-10:]).max()
    np.testing.assert_allclose(new_item[-10:], item[-10:], atol=0.03 * scale)
    np.testing.assert_array_equal(new_item[:-10], item[:-10])
    np.testing.assert_array_equal(new_user[:-3], user)
    np.testing.assert_allclose(new_user[-3:], new.fold_in(grown[:3]), atol=1e-6)
    assert not np.allclose(new_user[-3:], 0)
    with pytest.raises(ValueError, match="must hold"):
        new.updated(x[:5], np.array([], dtype=np.int64))


def test_unknown_setting_and_unfitted() -> None:
    with pytest.raises(ValueError, match="no settings"):
        SpectralFilter(rank=64)
    with pytest.raises(RuntimeError, match="not fitted"):
        SpectralFilter().embeddings()
