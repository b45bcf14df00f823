"""The calibration line on logs of any policy: it recovers how much of a predicted uplift is
real, with logging propensities that depend on the features."""

from __future__ import annotations

import numpy as np

from shopgraph.strategies.uplift_calibration import logged_calibration_lines


def log(n: int, seed: int, noise: float) -> tuple[np.ndarray, ...]:
    """Uplift 1 + x/2, predictions with ``noise``, a policy that treats high x more often."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    tau = 1.0 + 0.5 * x
    p1 = np.clip(1 / (1 + np.exp(-x)), 0.05, 0.95)
    a = (rng.random(n) < p1).astype(int)
    prop = np.where(a == 1, p1, 1 - p1)
    r = 2 + 0.3 * x + a * tau + rng.normal(size=n)
    q = np.column_stack([2 + 0.3 * x, 2 + 0.3 * x + tau + noise * rng.normal(size=n)])
    return q, a, r, prop


def test_the_line_says_how_much_of_the_prediction_is_real() -> None:
    q, a, r, prop = log(40_000, 0, noise=0.5)
    ((alpha, beta, se),) = logged_calibration_lines(q, a, r, prop)
    expected = 0.25 / (0.25 + 0.25)  # var(tau) / var(prediction)
    assert abs(beta - expected) < 0.08 and abs(alpha - (1 - expected)) < 0.1
    assert 0 < se < 0.05


def test_pure_noise_gets_beta_zero_and_the_average_effect() -> None:
    q, a, r, prop = log(40_000, 1, noise=0.5)
    rng = np.random.default_rng(2)
    q[:, 1] = q[:, 0] + rng.normal(size=len(q)) * 3  # predictions unrelated to the uplift
    ((alpha, beta, _),) = logged_calibration_lines(q, a, r, prop)
    assert beta < 0.05 and abs(alpha - 1.0) < 0.1


def test_tiny_propensities_are_clipped() -> None:
    q, a, r, prop = log(20_000, 3, noise=0.2)
    prop = prop.copy()
    prop[:50] = 0.002  # a few exploration rows with huge raw weights
    clipped = logged_calibration_lines(q, a, r, prop)[0][2]
    raw = logged_calibration_lines(q, a, r, prop, max_weight=1e9)[0][2]
    assert clipped < raw
