"""Off-policy estimators: hand-computed cases, synthetic logs with a known policy value (accuracy,
interval coverage, unbiasedness, variance), input errors, and the Open Bandit Dataset check of
``bench/obd.py`` on one campaign."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, softmax

from shopgraph.strategies.ope import (
    LoggedBandit,
    dm,
    dr,
    evaluate,
    importance_weights,
    ips,
    kish_ess,
    sndr,
    snips,
)

ROOT = Path(__file__).resolve().parents[2]

# ---- a synthetic shop: 5 context features, 4 actions ("none" is one of them) ----------------
ACTIONS = ("none", "bogo", "discount", "free_shipping")
_G = np.random.default_rng(12345)
THETA, BIAS = _G.normal(size=(5, 4)) * 0.7, _G.normal(size=4) * 0.5 - 1.0
PHI = _G.normal(size=(5, 4))


def policies(x: np.ndarray, beta_e: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True click probability ``q``, logging policy ``pi_b`` (softmax of unrelated scores) and
    target ``pi_e`` (softmax of the true reward logit, sharper with ``beta_e``)."""
    logit = x @ THETA + BIAS
    return expit(logit), softmax(0.5 * (x @ PHI), axis=1), softmax(beta_e * logit, axis=1)


def draw(n: int, seed: int, beta_e: float = 2.0, x: np.ndarray | None = None
         ) -> tuple[LoggedBandit, np.ndarray, np.ndarray, np.ndarray]:
    """A logged log (actions from ``pi_b``, Bernoulli rewards from ``q``), with ``pi_e``, the
    true ``q`` and a biased reward model."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)) if x is None else x
    q, pi_b, pi_e = policies(x, beta_e)
    a = (rng.random((n, 1)) > np.cumsum(pi_b, axis=1)).sum(axis=1).clip(max=3)
    r = (rng.random(n) < q[np.arange(n), a]).astype(float)
    biased = expit(0.6 * np.log(q / (1 - q)) + 0.4 * np.sin(x[:, :1]) - 0.2)
    return LoggedBandit(a, r, pi_b[np.arange(n), a]), pi_e, q, biased


@cache
def truth(beta_e: float = 2.0) -> float:
    """The target policy's value on 400,000 fresh contexts (Monte-Carlo error ~3e-4)."""
    q, _, pi_e = policies(np.random.default_rng(999).normal(size=(400_000, 5)), beta_e)
    return float((pi_e * q).sum(axis=1).mean())


# ---- hand cases -------------------------------------------------------------------------------
def test_estimators_by_hand() -> None:
    log = LoggedBandit(np.array([0, 1, 1, 0]), np.array([1.0, 0.0, 1.0, 0.0]),
                       np.array([0.5, 0.25, 0.5, 1.0]))
    pi_e = np.array([[0.5, 0.5], [0.0, 1.0], [1.0, 0.0], [0.25, 0.75]])
    q_hat = np.array([[0.5, 0.5], [0.2, 0.4], [0.2, 0.4], [0.1, 0.3]])
    w = np.array([1.0, 4.0, 0.0, 0.25])
    assert importance_weights(log, pi_e).tolist() == w.tolist()
    assert ips(log, pi_e, n_boot=0).value == pytest.approx(0.25)          # (1 + 0 + 0 + 0) / 4
    assert snips(log, pi_e, n_boot=0).value == pytest.approx(1 / 5.25)    # 1 / sum(w)
    # q_hat(x, pi_e) = 0.5, 0.4, 0.2, 0.25; residuals at the logged action 0.5, -0.4, 0.6, -0.1
    assert dm(log, pi_e, q_hat, n_boot=0).value == pytest.approx(1.35 / 4)
    correction = np.array([0.5, -1.6, 0.0, -0.025])
    assert dr(log, pi_e, q_hat, n_boot=0).value == pytest.approx((1.35 + correction.sum()) / 4)
    assert sndr(log, pi_e, q_hat, n_boot=0).value == pytest.approx(
        1.35 / 4 + correction.sum() / w.sum())
    assert kish_ess(w) == pytest.approx(5.25 ** 2 / 17.0625)
    assert kish_ess([2, 2, 2]) == pytest.approx(3) and kish_ess([0, 0]) == 0
    est = dm(log, pi_e, q_hat, n_boot=0)
    assert est.ess == 4 and est.n == 4 and np.isnan(est.ci_low)


def test_labels_frame_and_stored_arrays() -> None:
    log, pi_e, _, _ = draw(300, 1)
    frame = pd.DataFrame({"offer": np.array(ACTIONS)[log.action], "click": log.reward,
                          "p": log.propensity})
    labelled = LoggedBandit.from_frame(frame, action="offer", reward="click", propensity="p",
                                       actions=ACTIONS)
    assert labelled.action.tolist() == log.action.tolist() and labelled.actions == ACTIONS
    assert ips(labelled, pi_e) == ips(log, pi_e)
    with pytest.raises(ValueError, match="read-only"):
        labelled.reward[0] = 5.0


def test_evaluate_equals_each_estimator() -> None:
    log, pi_e, _, q_hat = draw(2_000, 2)
    every = evaluate(log, pi_e, q_hat, n_boot=300, seed=7, level=0.8)
    assert list(every) == ["ips", "snips", "dm", "dr", "sndr"]
    assert list(evaluate(log, pi_e, n_boot=0)) == ["ips", "snips"]
    single = {"ips": ips(log, pi_e, n_boot=300, seed=7, level=0.8),
              "snips": snips(log, pi_e, n_boot=300, seed=7, level=0.8),
              "dm": dm(log, pi_e, q_hat, n_boot=300, seed=7, level=0.8),
              "dr": dr(log, pi_e, q_hat, n_boot=300, seed=7, level=0.8),
              "sndr": sndr(log, pi_e, q_hat, n_boot=300, seed=7, level=0.8)}
    for name, est in single.items():
        assert every[name] == pytest.approx(est, rel=1e-9), name


# ---- synthetic logs with a known value ----------------------------------------------------------
def test_each_estimator_is_close_to_the_truth() -> None:
    log, pi_e, q, biased = draw(20_000, 3)
    v = truth()
    found = evaluate(log, pi_e, biased, n_boot=0)
    assert abs(found["dm"].value - v) > 0.05  # DM with a biased model is off; DR, SNDR are not
    found["dm"] = dm(log, pi_e, q, n_boot=0)
    for name, est in found.items():
        assert abs(est.value - v) < max(4 * est.se, 0.005), (name, est.value, v)
        assert 0 < est.ess <= log.n


def test_intervals_cover_the_truth_at_about_the_nominal_rate() -> None:
    v, hits, widths = truth(), {}, {}
    for seed in range(60):
        log, pi_e, q, biased = draw(2_000, 100 + seed)
        found = evaluate(log, pi_e, biased, n_boot=200, seed=seed, level=0.9)
        found["dm"] = dm(log, pi_e, q, n_boot=200, seed=seed, level=0.9)
        for name, est in found.items():
            hits.setdefault(name, []).append(est.ci_low <= v <= est.ci_high)
            widths.setdefault(name, []).append((est.ci_high - est.ci_low) / (2 * 1.645 * est.se))
    # 60 runs: a binomial sd of 0.04 around 0.9 for each estimator
    assert 0.84 <= np.mean(list(hits.values())) <= 0.95
    for name in hits:
        assert 0.78 <= np.mean(hits[name]) <= 0.98, (name, np.mean(hits[name]))
        # the percentile interval's width matches the analytic standard error
        assert 0.85 < np.median(widths[name]) < 1.15, (name, np.median(widths[name]))


def test_ips_and_dr_are_unbiased_and_dr_with_the_true_model_varies_less() -> None:
    # contexts fixed, actions and rewards redrawn: E[estimate | x] is exactly the mean over rows
    # of sum_a pi_e(a|x) q(x, a)
    x = np.random.default_rng(5).normal(size=(500, 5))
    q, _, pi_e = policies(x, 2.0)
    target = float((pi_e * q).sum(axis=1).mean())
    runs = [draw(500, seed, x=x) for seed in range(400)]
    got = {"ips": np.array([ips(log, pi_e, n_boot=0).value for log, *_ in runs]),
           "dr_true": np.array([dr(log, pi_e, q, n_boot=0).value for log, *_ in runs]),
           "dr_biased": np.array([dr(log, pi_e, b, n_boot=0).value for log, _, _, b in runs])}
    for name, values in got.items():
        assert abs(values.mean() - target) < 3 * values.std() / np.sqrt(len(values)), name
    assert got["dr_true"].var() < 0.5 * got["ips"].var()
    se = np.array([ips(log, pi_e, n_boot=0).se for log, *_ in runs])
    assert np.mean(se) == pytest.approx(got["ips"].std(), rel=0.15)


# ---- errors -------------------------------------------------------------------------------------
A, R, P = np.array([0, 1, 2]), np.array([1.0, 0.0, 1.0]), np.array([0.5, 0.25, 0.25])
PI = np.full((3, 3), 1 / 3)


@pytest.mark.parametrize("kwargs, match", [
    ({"propensity": np.array([0.5, 0.0, 0.25])}, r"propensity must be in \(0, 1\]; 1 rows"),
    ({"propensity": np.array([0.5, 1.5, 0.25])}, r"row 1: 1.5"),
    ({"propensity": np.array([0.5, np.nan, 0.25])}, "propensity has 1 NaN"),
    ({"reward": np.array([1.0, np.nan, 0.0])}, "reward has 1 NaN"),
    ({"reward": np.array([1.0, 0.0])}, "1-D of one non-zero length"),
    ({"action": np.array([0.0, 1.0, 2.0])}, "pass actions=... to use labels"),
    ({"action": np.array(["none", "x", "bogo"]), "actions": ("none", "bogo")},
     r"logged actions \['x'\] are not in actions"),
    ({"action": np.array(["a", "a", "a"]), "actions": ("a", "a")}, "repeated labels"),
])
def test_bad_logs_are_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LoggedBandit(**{"action": A, "reward": R, "propensity": P, **kwargs})


LOG = LoggedBandit(A, R, P)


@pytest.mark.parametrize("call, match", [
    (lambda: ips(LOG, np.full((3, 3), 0.3)), r"rows must sum to 1; 3 do not \(row 0 sums to 0.9"),
    (lambda: ips(LOG, np.full((2, 3), 1 / 3)), r"= \(3, actions\); got \(2, 3\)"),
    (lambda: ips(LOG, np.full((3, 2), 0.5)), "action 2 at row 2 is outside pi_e's 2 columns"),
    (lambda: ips(LOG, np.array([[1.5, -0.5, 0]] * 3)), r"probabilities in \[0, 1\]"),
    (lambda: ips(LOG, np.where(np.eye(3), np.nan, 0.5)), "pi_e has 3 NaN"),
    (lambda: dr(LOG, PI, np.full((3, 3), np.inf)), "q_hat has 9 NaN or infinite"),
    (lambda: ips(LOG, PI, level=1.0), r"level must be in \(0, 1\)"),
    (lambda: ips(LOG, PI, n_boot=-1), "n_boot must be >= 0"),
    (lambda: ips(LoggedBandit(np.array(["a", "b", "c"]), R, P, actions=("a", "b", "c", "d")), PI),
     r"pi_e must have shape \(rows, actions\) = \(3, 4\)"),
    (lambda: LoggedBandit.from_frame(pd.DataFrame({"action": A})), r"lacks columns \['reward'"),
])
def test_bad_inputs_are_refused(call: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_q_hat_must_match_pi_e() -> None:
    with pytest.raises(ValueError, match=r"q_hat has shape \(3, 4\), pi_e \(3, 3\)"):
        dr(LOG, PI, np.zeros((3, 4)))


# ---- the Open Bandit Dataset check ---------------------------------------------------------------
def test_obd_men_campaign_is_sane() -> None:
    pytest.importorskip("sklearn")
    data = ROOT.parent / "shared" / "data" / "open_bandit_sample"
    if not (data / "prior_bts.yaml").is_file():
        pytest.skip(f"the Open Bandit sample is not at {data}")
    spec = importlib.util.spec_from_file_location("bench_obd", ROOT / "bench" / "obd.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    prior = bench.read_prior(data / "prior_bts.yaml")
    assert len(prior["men"]["alpha"]) == len(prior["men"]["beta"]) == 34
    out = bench.check(data, "men", prior, runs=2, n_sim=20_000, n_boot=200, seed=0,
                      c_grid=(0.03,))
    assert out["on_policy_ctr"] == pytest.approx(0.0069) and out["clicks"] == 46
    for name in ("IPS", "SNIPS", "DM", "DR", "SNDR"):
        e = out[name]
        assert 0.001 < e["estimate"] < 0.02, name
        assert e["ci95"][0] <= e["estimate"] <= e["ci95"][1], name
        assert e["relative_error"] < 1 and e["runs_relative_error_mean"] < 1, name
        assert 1 <= e["ess"] <= out["n"], name


def test_contrast_is_the_difference_over_always_none_and_covers_the_truth() -> None:
    from shopgraph.strategies.ope import contrast, dm, dr, ips

    log, pi_e, q, biased = draw(20_000, seed=3)
    est = contrast(log, pi_e, biased, n_boot=300)
    base = np.zeros_like(pi_e)
    base[:, 0] = 1
    for name, single in (("ips", ips), ("dr", dr)):
        args = (log, pi_e) if name == "ips" else (log, pi_e, biased)
        args_b = (log, base) if name == "ips" else (log, base, biased)
        expected = single(*args, n_boot=0).value - single(*args_b, n_boot=0).value
        assert est[name].value == pytest.approx(expected, abs=1e-12)
    assert est["dm"].value == pytest.approx(dm(log, pi_e, biased, n_boot=0).value
                                            - dm(log, base, biased, n_boot=0).value)
    x = np.random.default_rng(999).normal(size=(400_000, 5))
    q_all, _, pe_all = policies(x, 2.0)
    true_gain = float(((pe_all * q_all).sum(axis=1) - q_all[:, 0]).mean())
    assert est["dr"].ci_low <= true_gain <= est["dr"].ci_high
    assert abs(est["dr"].value - true_gain) < 4 * est["dr"].se
    with pytest.raises(ValueError, match="base must be an action index"):
        contrast(log, pi_e, biased, base=7)
