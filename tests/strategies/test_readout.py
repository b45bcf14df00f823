"""A/B readouts on simulated data with known effects: Welch against scipy, interval coverage over
many seeds, CUPED's rho^2 variance reduction, SRM, inverse-propensity weights, errors."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from shopgraph.strategies.readout import Readout, ab_readout, srm_check

P_C, P_T = 0.20, 0.25  # conversion rates: true difference 0.05
REV_C, REV_T = 10.0, 11.0  # mean revenue per user (exponential): difference 1, lift 0.1


def _ab(seed: int, n: int = 300) -> pd.DataFrame:
    """``n`` users per arm; skewed revenue and an uncorrelated pre-period covariate."""
    rng = np.random.default_rng(seed)
    t = np.repeat([True, False], n)
    return pd.DataFrame({
        "arm": np.where(t, "treatment", "control"),
        "converted": (rng.random(2 * n) < np.where(t, P_T, P_C)).astype(int),
        "revenue": rng.exponential(np.where(t, REV_T, REV_C)),
        "pre": rng.gamma(2.0, 5.0, 2 * n)})


def _correlated(seed: int, rho: float, n: int, effect: float = 0.5) -> pd.DataFrame:
    """Revenue ~ N(effect * T, 1) whose noise correlates with the covariate at ``rho``."""
    rng = np.random.default_rng(seed)
    t = np.repeat([True, False], n)
    x = rng.normal(size=2 * n)
    y = effect * t + rho * x + np.sqrt(1 - rho**2) * rng.normal(size=2 * n)
    return pd.DataFrame({"arm": np.where(t, "treatment", "control"),
                         "converted": (rng.random(2 * n) < 0.5).astype(int),
                         "revenue": y, "pre": x})


def _covers(lo: float, hi: float, truth: float) -> bool:
    return lo <= truth <= hi


# ---- Welch: the same numbers as scipy --------------------------------------------------------
@pytest.mark.parametrize("level", [0.95, 0.8])
def test_welch_matches_scipy_ttest_ind(level: float) -> None:
    frame = _ab(7, n=50)
    frame = frame.iloc[:80]  # unequal arms: 50 treated, 30 control
    d = ab_readout(frame, level=level).comparisons[0].revenue.difference
    t_arm = frame.loc[frame.arm == "treatment", "revenue"]
    c_arm = frame.loc[frame.arm == "control", "revenue"]
    ref = stats.ttest_ind(t_arm, c_arm, equal_var=False)
    ci = ref.confidence_interval(level)
    assert d.diff / d.se == pytest.approx(ref.statistic, rel=1e-10)
    assert d.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert d.df == pytest.approx(ref.df, rel=1e-10)
    assert (d.ci_low, d.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-10)


# ---- coverage over many seeds ----------------------------------------------------------------
def test_intervals_cover_the_true_effect_at_the_nominal_rate() -> None:
    seeds, hits = 400, np.zeros(4)
    for seed in range(seeds):
        comp = ab_readout(_ab(seed), pre_revenue="pre").comparisons[0]
        conv, rev = comp.conversion.difference, comp.revenue.difference
        assert comp.revenue.cuped is not None
        cuped = comp.revenue.cuped.difference
        hits += [_covers(conv.ci_low, conv.ci_high, P_T - P_C),
                 _covers(rev.ci_low, rev.ci_high, REV_T - REV_C),
                 _covers(comp.revenue.lift_ci_low, comp.revenue.lift_ci_high, REV_T / REV_C - 1),
                 _covers(cuped.ci_low, cuped.ci_high, REV_T - REV_C)]
    # 400 seeds: the binomial sd of a 95% coverage is 0.011; allow 3 sd
    assert np.abs(hits / seeds - 0.95).max() < 0.035, hits / seeds


# ---- CUPED -----------------------------------------------------------------------------------
@pytest.mark.parametrize("rho", [0.0, 0.5, 0.8, 0.95])
def test_cuped_reduces_variance_by_rho_squared(rho: float) -> None:
    m = ab_readout(_correlated(1, rho, n=20_000), pre_revenue="pre").comparisons[0].revenue
    assert m.cuped is not None
    assert m.cuped.variance_reduction == pytest.approx(rho**2, abs=0.02)
    assert m.cuped.theta == pytest.approx(rho, abs=0.02)


def test_cuped_estimates_vary_less_across_seeds_and_stay_unbiased() -> None:
    rho, seeds, raw, adjusted = 0.8, 200, [], []
    for seed in range(seeds):
        m = ab_readout(_correlated(seed, rho, n=200), pre_revenue="pre").comparisons[0].revenue
        assert m.cuped is not None
        raw.append(m.difference.diff)
        adjusted.append(m.cuped.difference.diff)
    assert np.var(adjusted) / np.var(raw) == pytest.approx(1 - rho**2, abs=0.08)
    assert np.mean(adjusted) == pytest.approx(0.5, abs=3 * np.std(adjusted) / np.sqrt(seeds))


def test_no_cuped_without_a_covariate() -> None:
    comp = ab_readout(_ab(0)).comparisons[0]
    assert comp.conversion.cuped is None and comp.revenue.cuped is None


# ---- SRM -------------------------------------------------------------------------------------
def _counts_frame(counts: dict[str, int]) -> pd.DataFrame:
    arm = np.repeat(list(counts), list(counts.values()))
    rng = np.random.default_rng(0)
    return pd.DataFrame({"arm": arm, "converted": rng.integers(0, 2, len(arm)),
                         "revenue": rng.exponential(10.0, len(arm))})


def test_srm_flags_a_52_48_split_of_100k_users() -> None:
    srm = ab_readout(_counts_frame({"treatment": 52_000, "control": 48_000}),
                     planned_shares={"treatment": 0.5, "control": 0.5}).srm
    assert srm.checkable and srm.flagged and srm.label() == "MISMATCH"
    assert srm.chi2 == pytest.approx(160.0)  # 2 * 2000^2 / 50000
    ref = stats.chisquare([52_000, 48_000])
    assert (srm.chi2, srm.p_value) == pytest.approx((ref.statistic, ref.pvalue), rel=1e-9)


def test_srm_passes_a_fair_random_split() -> None:
    n_t = int(np.random.default_rng(3).binomial(100_000, 0.5))
    srm = ab_readout(_counts_frame({"treatment": n_t, "control": 100_000 - n_t}),
                     planned_shares={"treatment": 0.5, "control": 0.5}).srm
    assert srm.checkable and not srm.flagged and srm.p_value is not None and srm.p_value > 0.001


def test_srm_not_checkable_without_a_plan() -> None:
    srm = ab_readout(_ab(0)).srm
    assert not srm.checkable and srm.p_value is None and not srm.flagged
    assert srm.label() == "not checkable" and srm.observed == {"control": 300, "treatment": 300}


def test_srm_plan_from_a_column_with_proportions_and_a_missing_arm() -> None:
    frame = _counts_frame({"a": 4_500, "b": 4_500, "control": 1_000})
    frame["share"] = np.where(frame.arm == "control", 0.1, 0.45)
    assert not ab_readout(frame, planned_shares="share").srm.flagged
    srm = srm_check({"a": 45, "control": 10}, {"a": 45, "b": 45, "control": 10})
    assert srm.observed == {"a": 45, "b": 0, "control": 10} and srm.flagged
    assert srm.expected_shares == pytest.approx({"a": 0.45, "b": 0.45, "control": 0.1})
    ref = stats.chisquare([45, 0, 10], [24.75, 24.75, 5.5])
    assert (srm.chi2, srm.p_value) == pytest.approx((ref.statistic, ref.pvalue), rel=1e-9)


# ---- inverse-propensity weights --------------------------------------------------------------
def _stratified(seed: int, n: int = 1000, effect: float = 1.0) -> pd.DataFrame:
    """Treated at 80% in the high-value segment and 20% in the other: confounded by segment."""
    rng = np.random.default_rng(seed)
    high = rng.random(n) < 0.5
    p = np.where(high, 0.8, 0.2)
    t = rng.random(n) < p
    return pd.DataFrame({"arm": np.where(t, "treatment", "control"),
                         "converted": (rng.random(n) < 0.3).astype(int),
                         "revenue": 5 + 10 * high + effect * t + rng.normal(0, 3, n),
                         "pre": 10 * high + rng.normal(0, 3, n),
                         "w": np.where(t, 1 / p, 1 / (1 - p))})


def test_unweighted_readout_of_a_confounded_assignment_is_biased() -> None:
    naive = ab_readout(_stratified(0, n=50_000)).comparisons[0].revenue.difference
    assert naive.diff == pytest.approx(7.0, abs=0.2)  # 1 + 10 * (0.8 - 0.2), not the effect 1


def test_weighted_readout_removes_the_assignment_bias_and_covers() -> None:
    seeds, covered, diffs, ses = 300, np.zeros(2), [], []
    for seed in range(seeds):
        m = ab_readout(_stratified(seed), weight="w", pre_revenue="pre").comparisons[0].revenue
        assert m.cuped is not None
        covered += [_covers(m.difference.ci_low, m.difference.ci_high, 1.0),
                    _covers(m.cuped.difference.ci_low, m.cuped.difference.ci_high, 1.0)]
        diffs.append(m.difference.diff)
        ses.append(m.difference.se)
    assert np.mean(diffs) == pytest.approx(1.0, abs=3 * np.std(diffs) / np.sqrt(seeds))
    # the sandwich se matches the spread over seeds (1500 seeds: 0.461 vs 0.451, cover 0.959)
    assert np.mean(ses) == pytest.approx(np.std(diffs), rel=0.12)
    assert np.abs(covered / seeds - 0.95).max() < 0.04, covered / seeds


def test_unit_or_constant_weights_give_the_unweighted_readout() -> None:
    frame = _ab(5)
    plain = ab_readout(frame, pre_revenue="pre")
    for c in (1.0, 3.7):
        weighted = ab_readout(frame.assign(w=c), pre_revenue="pre", weight="w")
        assert weighted.weighted and not plain.weighted
        assert _close(weighted.to_dict()["comparisons"], plain.to_dict()["comparisons"])


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return bool(np.isclose(a, b, rtol=1e-9, atol=1e-12))
    return bool(a == b)


# ---- several arms, output, edge cases --------------------------------------------------------
def test_each_treatment_arm_is_compared_with_the_control_and_output_is_json() -> None:
    frame = pd.concat([_ab(1), _ab(2).replace({"arm": {"treatment": "b", "control": "c2"}})])
    frame = frame[frame.arm != "c2"]
    readout = ab_readout(frame, planned_shares={"control": 1, "treatment": 1, "b": 1})
    assert isinstance(readout, Readout)
    assert [c.treatment for c in readout.comparisons] == ["b", "treatment"]
    assert all(c.n_control == 300 for c in readout.comparisons)
    json.dumps(readout.to_dict(), allow_nan=False)
    rows = readout.summary_rows()
    assert len(rows) == 4 and len({tuple(r) for r in rows}) == 1
    assert {r["metric"] for r in rows} == {"conversion", "revenue"}
    assert rows[0]["cuped_diff"] is None and rows[0]["srm"] == "ok"
    json.dumps(rows, allow_nan=False)


def test_no_variation_and_zero_control_mean_are_reported_not_crashed() -> None:
    frame = pd.DataFrame({"arm": ["treatment"] * 3 + ["control"] * 3,
                          "converted": [0] * 6, "revenue": [0.0] * 6})
    m = ab_readout(frame).comparisons[0].conversion
    assert (m.difference.diff, m.difference.se, m.difference.p_value) == (0.0, 0.0, 1.0)
    assert np.isnan(m.lift) and m.to_dict()["lift"] is None


def test_arm_labels_are_compared_as_text() -> None:
    frame = _ab(0).assign(arm=lambda f: np.where(f.arm == "control", 0, 1))
    readout = ab_readout(frame, control=0)
    assert readout.control == "0" and readout.comparisons[0].treatment == "1"


# ---- errors ----------------------------------------------------------------------------------
def _bad(**changes: Any) -> pd.DataFrame:
    frame = _ab(0, n=5).assign(w=1.0)
    for col, (row, value) in changes.items():
        frame[col] = frame[col].astype(object if col == "arm" else float)
        frame.loc[row, col] = value
    return frame


@pytest.mark.parametrize(("frame", "kwargs", "message"), [
    (_ab(0, n=5).assign(arm="treatment"), {}, "no control arm 'control'"),
    (_ab(0, n=5).assign(arm="control"), {}, "only the control arm"),
    (_bad(arm=(0, "lonely")), {}, "arm 'lonely' has fewer than 2 users"),
    (_bad(revenue=(3, np.nan)), {}, "revenue column 'revenue' has 1 missing"),
    (_bad(converted=(3, np.nan)), {}, "conversion column 'converted' has 1 missing"),
    (_bad(arm=(3, None)), {}, "arm column 'arm' has 1 missing"),
    (_bad(pre=(2, np.nan)), {"pre_revenue": "pre"}, "pre-period revenue column 'pre'"),
    (_bad(revenue=(3, np.inf)), {}, "must hold finite numbers"),
    (_bad(converted=(3, 2.0)), {}, "must hold 0 or 1 only"),
    (_bad(w=(1, -0.5)), {"weight": "w"}, "1 negative values"),
    (_bad(w=(slice(1, 4), 0.0)), {"weight": "w"}, "arm 'treatment' has fewer than 2 users"),
    (_ab(0, n=5), {"revenue": "spend"}, "column 'spend' is not in the frame"),
    (_ab(0, n=5), {"level": 1.0}, "level must be in"),
    (_ab(0, n=5), {"srm_threshold": 0.0}, "SRM threshold must be in"),
    (_ab(0, n=5), {"planned_shares": {"control": 0.5}}, "no planned share"),
    (_ab(0, n=5), {"planned_shares": {"control": 1, "treatment": 0}}, "positive and finite"),
])
def test_bad_input_raises_a_clear_value_error(frame: pd.DataFrame, kwargs: dict[str, Any],
                                               message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ab_readout(frame, **kwargs)
