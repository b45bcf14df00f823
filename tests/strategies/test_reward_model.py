"""The per-arm reward model on synthetic logs with a known mean reward per user and arm: a
confounded log (who got which offer depends on a feature that drives spend), uplift recovered
better with more data, a posterior that narrows and covers, out-of-fold cross-fitting, small and
never-logged arms, and input errors."""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, softmax

from shopgraph.errors import ShopgraphError
from shopgraph.strategies.reward_model import RewardModel, RewardModelWarning, arm_weights

A = 5


def users(n: int, rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.random(n),
                         "seg": rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2]),
                         "x3": rng.normal(size=n)})


def truth(frame: pd.DataFrame) -> np.ndarray:
    """Mean spend per user and arm: 20 x P(buy), P U-shaped in ``x1``; arm 0 = no offer, the
    offers lift P by a step in ``x1``, a slope in ``x2``, segment ``c`` and a constant."""
    x1, x2 = frame["x1"].to_numpy(), frame["x2"].to_numpy()
    c = (frame["seg"] == "c").to_numpy()
    lift = np.column_stack([0 * x1, 0.8 * (x1 > 0), 1.2 * x2 - 0.4, 0.9 * c - 0.1,
                            0.3 + 0 * x1])
    return 20 * expit((-1.5 + 1.2 * np.abs(x1) - 0.5 * x2)[:, None] + lift)


def draw(n: int, seed: int, targeted: float = 0.7
         ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A log of two kinds of rounds: random tests (each arm 1/5) and, for a share ``targeted``
    of rows, a policy steered by ``x1`` (arm 0 for low ``x1``, arm 1 for high) with a 2%
    floor per arm. Spend: a purchase with P = truth / 20, then Gamma(4, 5), so many zeros."""
    rng = np.random.default_rng(seed)
    frame = users(n, rng)
    mu = truth(frame)
    pi = 0.9 * softmax(2.0 * np.outer(frame["x1"], [-1.0, 1.0, 0.5, -0.5, 0.0]), axis=1) + 0.02
    pi[rng.random(n) >= targeted] = 1 / A
    action = (rng.random((n, 1)) > np.cumsum(pi, axis=1)).sum(axis=1).clip(max=A - 1)
    buy = rng.random(n) < mu[np.arange(n), action] / 20
    reward = buy * rng.gamma(4.0, 5.0, size=n)
    return frame, action, reward, pi[np.arange(n), action], mu


TEST = users(4000, np.random.default_rng(99))
TRUE = truth(TEST)
SIZES = (2_000, 10_000, 50_000)


@cache
def fitted(n: int) -> RewardModel:
    frame, action, reward, prop, _ = draw(n, seed=1)
    return RewardModel(members=5).fit(frame, action, reward, prop, n_arms=A, seed=0)


@cache
def draws(n: int) -> np.ndarray:
    return fitted(n).sample(TEST, k=40, seed=3)


# ---- weighting ------------------------------------------------------------------------------
def test_arm_weights_are_normalised_and_clipped() -> None:
    action = np.array([0, 0, 0, 0, 1, 1])
    w = arm_weights(action, np.array([0.5, 0.5, 0.5, 0.001, 0.2, 0.8]), 2)
    # arm 0: 1/p = 2, 2, 2, 1000 -> / mean 251.5, clipped at sqrt(4) = 2 -> mean 1
    expected = np.array([2, 2, 2, 1000]) / 251.5
    expected[3] = 2.0
    assert w[:4] == pytest.approx(expected / expected.mean())
    # arm 1: 5, 1.25 -> 1.6, 0.4, clipped at sqrt(2) -> mean 1
    expected = np.array([np.sqrt(2), 0.4])
    assert w[4:] == pytest.approx(expected / expected.mean())
    assert arm_weights(action, np.full(6, 0.3), 2) == pytest.approx(np.ones(6))


def test_weighting_removes_the_bias_of_a_confounded_log() -> None:
    # The linear fallback cannot fit the U shape in x1; unweighted, each arm fits the users
    # the targeted policy chose for it and extrapolates wrongly to the others. Bias: the mean
    # error of each arm's value over four logs (one log's weighted error has sd ~0.15; the
    # shrinkage towards the pooled model may move a value by up to one standard error).
    errors: dict[str, list[np.ndarray]] = {"ipw": [], "none": []}
    for seed in range(4):
        frame, action, reward, prop, mu = draw(50_000, seed=seed)
        for weighting, found in errors.items():
            model = RewardModel("linear", members=3, weighting=weighting)
            q = model.fit(frame, action, reward, prop, n_arms=A, seed=0).predict(frame)
            found.append(q.mean(axis=0) - mu.mean(axis=0))
    bias = {k: np.abs(np.mean(v, axis=0)) for k, v in errors.items()}
    assert bias["ipw"].max() < 0.35, bias
    assert bias["none"].min() > 0.4 and bias["none"].mean() > 3 * bias["ipw"].mean(), bias


# ---- learning with data ---------------------------------------------------------------------
def _uplift_correlation(n: int) -> float:
    up, true_up = fitted(n).uplift(TEST), TRUE - TRUE[:, :1]
    return float(np.mean([np.corrcoef(up[:, a], true_up[:, a])[0, 1] for a in range(1, A)]))


def test_uplift_correlation_grows_with_data() -> None:
    cor = [_uplift_correlation(n) for n in SIZES]
    assert cor[0] < cor[1] < cor[2] and cor[2] > 0.45, cor


def test_posterior_spread_shrinks_with_data_and_covers_the_truth() -> None:
    spread = [float(draws(n).std(axis=0).mean()) for n in SIZES]
    assert spread[0] > spread[1] > spread[2] and spread[0] > 1.5 * spread[2], spread
    for n in SIZES:
        s = draws(n)
        value = s.mean(axis=1)  # (draws, arms): each arm's value over the test users
        z = np.abs(value.mean(axis=0) - TRUE.mean(axis=0)) / value.std(axis=0)
        assert z.max() < 4, (n, z)
        up = s - s[:, :, :1]
        low, high = np.quantile(up[:, :, 1:], [0.05, 0.95], axis=0)
        true_up = (TRUE - TRUE[:, :1])[:, 1:]
        assert ((true_up >= low) & (true_up <= high)).mean() > 0.5, n


def test_draws_average_to_the_prediction_and_repeat_with_a_seed() -> None:
    model = fitted(SIZES[0])
    s = model.sample(TEST, k=200, seed=5)
    assert s.shape == (200, len(TEST), A)
    assert np.abs(s.mean(axis=0) - model.predict(TEST)).mean() < 0.15 * s.std(axis=0).mean()
    assert np.array_equal(model.sample(TEST, k=3, seed=5), model.sample(TEST, k=3, seed=5))
    assert np.allclose(model.uplift(TEST), model.predict(TEST) - model.predict(TEST)[:, :1])


# ---- cross-fitting --------------------------------------------------------------------------
def test_cross_fit_is_out_of_fold() -> None:
    frame, action, reward, prop, _ = draw(2_000, seed=4)
    model = RewardModel("lightgbm", members=3)
    q = model.cross_fit(frame, action, reward, prop, n_arms=A, folds=3, seed=0)
    changed = reward.copy()
    changed[0] = 5_000.0  # a row's own reward never reaches its prediction ...
    q2 = model.cross_fit(frame, action, changed, prop, n_arms=A, folds=3, seed=0)
    assert q.shape == (2_000, A) and np.array_equal(q[0], q2[0])
    assert (np.abs(q2 - q).max(axis=1) > 1e-6).sum() > 1_000  # ... but the other folds' do
    assert not model.arms.size  # the template stays unfitted


# ---- small and missing arms -----------------------------------------------------------------
def test_a_small_arm_shrinks_to_the_pooled_model() -> None:
    frame, action, reward, prop, mu = draw(10_000, seed=5)
    rare = np.flatnonzero(action == 4)
    keep = np.ones(len(action), dtype=bool)
    keep[rare[12:]] = False  # arm 4 keeps 12 rows
    frame, action, reward, prop, mu = (frame[keep], action[keep], reward[keep], prop[keep],
                                       mu[keep])
    model = RewardModel(members=4).fit(frame, action, reward, prop, n_arms=A, seed=0)
    q = model.predict(frame)
    pooled = q[:, :4].mean()
    raw = reward[action == 4].mean()
    assert model.arms.loc[4, "credibility_mean"] < 0.5
    assert model.arms.loc[4, "credibility_mean"] < model.arms.loc[:3, "credibility_mean"].min()
    assert abs(q[:, 4].mean() - mu[:, 4].mean()) < abs(raw - mu[:, 4].mean())
    assert abs(q[:, 4].mean() - pooled) < 0.6 * abs(raw - pooled)
    spread = model.sample(frame.iloc[:500], k=30, seed=0).mean(axis=1).std(axis=0)
    assert spread[4] > 2 * spread[:4].max()  # small arms stay uncertain for Thompson


def test_an_arm_never_logged_gets_the_pooled_model_and_a_warning() -> None:
    frame, action, reward, prop, _ = draw(4_000, seed=6)
    model = RewardModel(members=3).fit(frame, action, reward, prop, n_arms=A + 1, seed=0)
    assert model.warnings and "arm 5 was never logged" in model.warnings[0]
    x = model._inputs(frame.iloc[:50])
    g, _ = model._members(x)
    assert np.allclose(model.predict(frame.iloc[:50])[:, 5], g.mean(axis=0))
    assert model.sample(frame.iloc[:50], k=20, seed=0)[:, :, 5].std(axis=0).min() > 0
    model2 = RewardModel("linear", members=2)
    with pytest.warns(RewardModelWarning, match="arm 5 was never logged"):
        model2.cross_fit(frame, action, reward, prop, n_arms=A + 1, folds=2)


def test_a_conversion_reward_gives_probabilities() -> None:
    frame, action, reward, prop, mu = draw(4_000, seed=7)
    model = RewardModel(members=3).fit(frame, action, reward > 0, prop, n_arms=A, seed=0)
    q = model.predict(frame)
    assert model.link == "logit" and q.min() >= 0 and q.max() <= 1
    assert np.corrcoef(q.ravel(), (mu / 20).ravel())[0, 1] > 0.8


# ---- errors ---------------------------------------------------------------------------------
F3 = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
OK = {"action": [0, 1, 0], "reward": [0.0, 1.5, 0.0], "propensity": [0.5, 0.5, 1.0]}


@pytest.mark.parametrize(("change", "message"), [
    ({"action": [0, 1]}, "must have one non-zero length"),
    ({"action": [0.0, 1.0, 0.0]}, "integer arm indices"),
    ({"action": [0, 2, 0]}, r"action must be in 0\.\.1; row 1 has 2"),
    ({"reward": [0.0, np.nan, 1.0]}, "reward must be finite"),
    ({"propensity": [0.5, np.nan, 1.0]}, "propensity must be finite"),
    ({"propensity": [0.5, 0.0, 1.0]}, r"propensity must be in \(0, 1\]; 1 rows are not \(row 1"),
    ({"propensity": [0.5, 1.5, 1.0]}, r"propensity must be in \(0, 1\]"),
    ({"features": F3.assign(x=[1.0, np.inf, 0.0])}, r"columns \['x'\] have infinite values"),
    ({"features": F3.to_numpy()}, "features must be a pandas DataFrame"),
    ({"n_arms": 1}, "n_arms must be an integer >= 2"),
])
def test_bad_input_raises(change: dict, message: str) -> None:
    args = {"features": F3, **OK, "n_arms": 2, **change}
    with pytest.raises(ValueError, match=message):
        RewardModel().fit(args.pop("features"), **args)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"kind": "forest"}, "kind must be one of"),
    ({"weighting": "snips"}, "weighting must be one of"),
    ({"members": 1}, "members must be at least 2"),
    ({"max_weight": 0.5}, "max_weight must be >= 1"),
])
def test_bad_settings_raise(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RewardModel(**kwargs)


def test_misuse_raises() -> None:
    with pytest.raises(ShopgraphError, match="not fitted"):
        RewardModel().predict(F3)
    model = RewardModel(members=2).fit(F3, n_arms=2, **OK)
    with pytest.raises(ValueError, match=r"lack columns \['x'\]"):
        model.predict(pd.DataFrame({"y": [1.0]}))
    with pytest.raises(ValueError, match="k must be at least 1"):
        model.sample(F3, k=0)
    with pytest.raises(ValueError, match=r"folds must be in 2\.\.3"):
        model.cross_fit(F3, n_arms=2, folds=4, **OK)
    assert model.predict(F3).shape == (3, 2)  # three rows still fit (constant models)
