"""A/B readouts: each treatment arm against the control on conversion and revenue per user.

For each comparison and metric (per-user values :math:`y`, arms :math:`T` and :math:`C`):

* **Difference of means** with Welch's interval (Welch, "The generalization of Student's problem
  when several different population variances are involved", Biometrika 1947):
  :math:`\\Delta = \\bar y_T - \\bar y_C`, :math:`\\mathrm{se}^2 = s_T^2/n_T + s_C^2/n_C`, the
  Welch-Satterthwaite degrees of freedom
  :math:`\\nu = \\mathrm{se}^4 / \\sum_a (s_a^2/n_a)^2/(n_a-1)`, interval
  :math:`\\Delta \\pm t_{\\nu, (1+\\text{level})/2}\\,\\mathrm{se}` and two-sided p-value: the same
  numbers as ``scipy.stats.ttest_ind(equal_var=False)``; at readout sizes :math:`t_\\nu` is the
  normal quantile.
* **Relative lift** :math:`\\bar y_T/\\bar y_C - 1`, its interval by the delta method
  (Deng, Knoblich & Lu, "Applying the Delta Method in Metric Analytics", KDD 2018):
  :math:`\\mathrm{se}^2 \\approx v_T/\\bar y_C^2 + \\bar y_T^2 v_C/\\bar y_C^4` with
  :math:`v_a` the variance of arm :math:`a`'s mean, normal quantile; undefined (NaN) when
  :math:`\\bar y_C = 0`.
* **CUPED** (Deng, Xu, Kohavi & Walker, "Improving the Sensitivity of Online Controlled
  Experiments by Utilizing Pre-Experiment Data", WSDM 2013), covariate :math:`x` the pre-period
  revenue: :math:`\\theta = \\mathrm{cov}(x, y)/\\mathrm{var}(x)` pooled over the two arms
  compared, :math:`y^{cv} = y - \\theta(x - \\bar x)`, then Welch on :math:`y^{cv}`. The variance
  reduction reported is :math:`1 - \\mathrm{se}_{cv}^2/\\mathrm{se}^2`, about :math:`\\rho^2`
  for a covariate with correlation :math:`\\rho` (it can be slightly negative on a useless one).
* **Sample-ratio mismatch** (Fabijan et al., "Diagnosing Sample Ratio Mismatch in Online
  Controlled Experiments", KDD 2019; Kohavi, Tang & Xu, *Trustworthy Online Controlled
  Experiments*, 2020, ch. 21): Pearson's :math:`\\chi^2` goodness of fit of all arms' user counts
  against the planned shares, flagged at :math:`p <` ``srm_alpha`` (0.001). Without planned
  shares the check is reported as not checkable rather than guessed.

**Weights** (optional, for assignment that was not uniform within the comparison, e.g. treatment
shares that differed by segment): :math:`w_i = 1/p(\\text{arm}_i \\mid x_i)`. Arm means are Hájek
(ratio) means :math:`\\bar y_a = \\sum w y/\\sum w` with the linearisation (sandwich) variance
:math:`v_a = \\frac{n_a}{n_a-1}\\sum w_i^2 (y_i - \\bar y_a)^2/(\\sum w_i)^2` (Särndal, Swensson &
Wretman, *Model Assisted Survey Sampling*, 1992, §5.7), weights taken as known; Welch's
:math:`\\nu` uses Kish's effective size :math:`(\\sum w)^2/\\sum w^2` for :math:`n_a`. With unit
weights every formula reduces to the unweighted one above, so one code path serves both. CUPED's
:math:`\\theta` is then the weighted regression slope. The SRM check always counts users.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy import special

from shopgraph.strategies.ope import kish_ess

METRICS = ("conversion", "revenue")


def _plain(value: Any) -> Any:
    """JSON-ready: dataclasses to dicts, tuples to lists, numpy scalars to Python, NaN to None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value


class _Record:
    """``to_dict``: every field, JSON-ready (non-finite numbers as ``None``)."""

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready dict."""
        out: dict[str, Any] = _plain(self)
        return out


@dataclass(frozen=True)
class Difference(_Record):
    """``diff`` (treatment minus control) with its standard error ``se``, Welch degrees of
    freedom ``df``, interval ``[ci_low, ci_high]`` and two-sided ``p_value``. A zero ``se``
    (no variation in either arm) gives the point as interval and ``p_value`` 1 or 0."""

    diff: float
    se: float
    df: float
    ci_low: float
    ci_high: float
    p_value: float


@dataclass(frozen=True)
class Cuped(_Record):
    """The CUPED-adjusted difference: pooled slope ``theta``, the adjusted ``difference``, and
    ``variance_reduction`` :math:`1 - \\mathrm{se}_{cv}^2/\\mathrm{se}^2` (a share)."""

    theta: float
    difference: Difference
    variance_reduction: float


@dataclass(frozen=True)
class MetricReadout(_Record):
    """One metric of one comparison: arm means, the absolute ``difference``, the relative
    ``lift`` with its delta-method interval, and ``cuped`` (None without a covariate)."""

    metric: str
    treatment_mean: float
    control_mean: float
    difference: Difference
    lift: float
    lift_ci_low: float
    lift_ci_high: float
    cuped: Cuped | None


@dataclass(frozen=True)
class Comparison(_Record):
    """One treatment arm against the control: users per arm, Kish effective sizes (equal to
    the users when unweighted) and one :class:`MetricReadout` per metric."""

    treatment: str
    control: str
    n_treatment: int
    n_control: int
    ess_treatment: float
    ess_control: float
    conversion: MetricReadout
    revenue: MetricReadout


@dataclass(frozen=True)
class SrmCheck(_Record):
    """Sample-ratio mismatch: observed users per arm against the planned shares.

    ``checkable`` is False (and ``chi2``, ``p_value``, ``expected_shares`` None) when no plan
    was given; ``flagged`` is ``p_value < threshold``.
    """

    checkable: bool
    observed: dict[str, int]
    expected_shares: dict[str, float] | None
    chi2: float | None
    p_value: float | None
    threshold: float
    flagged: bool

    def label(self) -> str:
        """One word or phrase for a table cell: ``ok``, ``MISMATCH`` or ``not checkable``."""
        if not self.checkable:
            return "not checkable"
        return "MISMATCH" if self.flagged else "ok"


@dataclass(frozen=True)
class Readout(_Record):
    """The readout of a campaign or round: one :class:`Comparison` per treatment arm, the SRM
    check, the interval ``level`` and whether weights were used."""

    control: str
    level: float
    weighted: bool
    comparisons: tuple[Comparison, ...]
    srm: SrmCheck

    def summary_rows(self) -> list[dict[str, Any]]:
        """One flat row per (treatment arm, metric), the same keys in every row, plain numbers
        (None where undefined) for any table renderer; ``cuped_*`` are None without a
        covariate, ``srm`` repeats the readout-wide :meth:`SrmCheck.label`."""
        rows = []
        for comp in self.comparisons:
            for m in (comp.conversion, comp.revenue):
                d = m.difference
                cv = m.cuped.difference if m.cuped else None
                rows.append(_plain({
                    "treatment": comp.treatment, "control": comp.control, "metric": m.metric,
                    "n_treatment": comp.n_treatment, "n_control": comp.n_control,
                    "treatment_mean": m.treatment_mean, "control_mean": m.control_mean,
                    "diff": d.diff, "ci_low": d.ci_low, "ci_high": d.ci_high,
                    "p_value": d.p_value, "lift": m.lift, "lift_ci_low": m.lift_ci_low,
                    "lift_ci_high": m.lift_ci_high,
                    "cuped_diff": cv.diff if cv else None,
                    "cuped_ci_low": cv.ci_low if cv else None,
                    "cuped_ci_high": cv.ci_high if cv else None,
                    "cuped_p_value": cv.p_value if cv else None,
                    "variance_reduction": m.cuped.variance_reduction if m.cuped else None,
                    "srm": self.srm.label()}))
        return rows


class _Arm(NamedTuple):
    mean: float
    var: float  # variance of the (Hájek) mean
    ess: float  # Kish effective sample size


def _arm(y: np.ndarray, w: np.ndarray) -> _Arm:
    sw = float(w.sum())
    mean = float(w @ y) / sw
    n = int(np.count_nonzero(w))
    var = n / (n - 1) * float(np.sum((w * (y - mean)) ** 2)) / sw**2
    return _Arm(mean, var, kish_ess(w))


def _difference(t: _Arm, c: _Arm, level: float) -> Difference:
    diff, var = t.mean - c.mean, t.var + c.var
    se = math.sqrt(var)
    if se == 0:
        return Difference(diff, 0.0, math.nan, diff, diff, 1.0 if diff == 0 else 0.0)
    df = var**2 / (t.var**2 / (t.ess - 1) + c.var**2 / (c.ess - 1))
    half = float(special.stdtrit(df, 0.5 + level / 2)) * se  # t quantile
    p = float(2 * special.stdtr(df, -abs(diff) / se))  # two-sided t tail
    return Difference(diff, se, df, diff - half, diff + half, p)


def _lift(t: _Arm, c: _Arm, level: float) -> tuple[float, float, float]:
    if c.mean == 0:
        return math.nan, math.nan, math.nan
    lift = t.mean / c.mean - 1
    se = math.sqrt(t.var / c.mean**2 + t.mean**2 * c.var / c.mean**4)
    half = float(special.ndtri(0.5 + level / 2)) * se
    return lift, lift - half, lift + half


def _cuped(y: np.ndarray, x: np.ndarray, w: np.ndarray, is_t: np.ndarray, level: float,
           raw: Difference) -> Cuped:
    xc = x - np.average(x, weights=w)
    sxx = float(w @ xc**2)
    theta = float(w @ (xc * (y - np.average(y, weights=w)))) / sxx if sxx > 0 else 0.0
    adj = y - theta * xc
    d = _difference(_arm(adj[is_t], w[is_t]), _arm(adj[~is_t], w[~is_t]), level)
    reduction = 1 - d.se**2 / raw.se**2 if raw.se > 0 else 0.0
    return Cuped(theta, d, reduction)


def srm_check(counts: Mapping[str, int], planned_shares: Mapping[str, float] | None, *,
              threshold: float = 0.001) -> SrmCheck:
    """Pearson's chi-square test of the users per arm against the planned shares.

    Args:
        counts: users per arm.
        planned_shares: the planned share per arm (proportions, normalised to sum to 1); a
            planned arm with no users counts 0. None: reported as not checkable.
        threshold: flag when the p-value is below it (default: 0.001).

    Raises:
        ValueError: an observed arm is not in the plan, a share is not positive and finite, or
            the threshold is not in (0, 1).
    """
    if not 0 < threshold < 1:
        raise ValueError(f"the SRM threshold must be in (0, 1), got {threshold}")
    observed = {str(k): int(v) for k, v in counts.items()}
    if planned_shares is None:
        return SrmCheck(False, observed, None, None, None, threshold, False)
    plan = {str(k): float(v) for k, v in planned_shares.items()}
    missing = sorted(set(observed) - set(plan))
    if missing:
        raise ValueError(f"arms {missing} have users but no planned share; plan has "
                         f"{sorted(plan)}")
    if not all(math.isfinite(s) and s > 0 for s in plan.values()):
        raise ValueError(f"planned shares must be positive and finite, got {plan}")
    total_share = sum(plan.values())
    shares = {a: s / total_share for a, s in plan.items()}
    obs = np.array([observed.get(a, 0) for a in shares], dtype=float)
    expected = obs.sum() * np.array(list(shares.values()))
    chi2 = float(np.sum((obs - expected) ** 2 / expected))
    p = float(special.chdtrc(len(obs) - 1, chi2))  # chi-square upper tail, k - 1 df
    return SrmCheck(True, {a: int(o) for a, o in zip(shares, obs, strict=True)}, shares,
                    chi2, p, threshold, p < threshold)


def _raw(frame: pd.DataFrame, name: str, role: str) -> np.ndarray:
    """The column's values, after checking that it exists and has no missing values."""
    if name not in frame.columns:
        raise ValueError(f"the {role} column {name!r} is not in the frame; columns are "
                         f"{list(frame.columns)}")
    raw = np.asarray(frame[name].to_numpy())
    missing = int(pd.isna(raw).sum())
    if missing:
        raise ValueError(f"the {role} column {name!r} has {missing} missing values; fill or "
                         "drop them first")
    return raw


def _column(frame: pd.DataFrame, name: str, role: str) -> np.ndarray:
    raw = _raw(frame, name, role)
    numeric = raw.dtype.kind in "biuf"
    values = raw.astype(float) if numeric else np.asarray(pd.to_numeric(raw, errors="coerce"),
                                                          dtype=float)
    if not np.isfinite(values).all():
        raise ValueError(f"the {role} column {name!r} must hold finite numbers")
    return values


def _arms(frame: pd.DataFrame, name: str) -> tuple[np.ndarray, list[str]]:
    """Integer codes per user into the sorted arm labels, compared as text."""
    codes, uniques = pd.factorize(_raw(frame, name, "arm"))
    text = [str(u) for u in uniques]
    labels = sorted(set(text))
    index = {label: k for k, label in enumerate(labels)}
    return np.array([index[t] for t in text], dtype=np.int64)[codes], labels


def _plan(frame: pd.DataFrame, codes: np.ndarray, labels: list[str],
          planned_shares: Mapping[str, float] | str | None) -> Mapping[str, float] | None:
    if not isinstance(planned_shares, str):
        return planned_shares
    plan = pd.Series(_column(frame, planned_shares, "planned share")).groupby(codes)
    if (plan.nunique() > 1).any():
        raise ValueError(f"the planned share column {planned_shares!r} must be constant within "
                         "each arm")
    return {labels[k]: float(v) for k, v in plan.first().items()}


def ab_readout(frame: pd.DataFrame, *, arm: str = "arm", control: object = "control",
               conversion: str = "converted", revenue: str = "revenue",
               pre_revenue: str | None = None, weight: str | None = None,
               planned_shares: Mapping[str, float] | str | None = None, level: float = 0.95,
               srm_threshold: float = 0.001) -> Readout:
    """Read out an A/B(/n) test: every treatment arm against ``control``.

    Args:
        frame: one row per user.
        arm: column of the arm each user was assigned to (compared as text, so ``control=0``
            matches ``"0"``).
        control: the control arm's label (default: ``"control"``, as ``audience.CONTROL``).
        conversion: column of 0/1 conversions.
        revenue: column of revenue in the period.
        pre_revenue: column of pre-period revenue, the CUPED covariate (default: no CUPED).
        weight: column of non-negative inverse-propensity weights (default: unweighted).
        planned_shares: the planned share per arm for the SRM check, as a mapping or the name
            of a column holding each user's arm share (default: not checkable).
        level: interval level, in (0, 1) (default: 0.95).
        srm_threshold: flag a sample-ratio mismatch below this p-value (default: 0.001).

    Raises:
        ValueError: a missing column, missing or non-finite values in a used column,
            conversions other than 0/1, negative weights, no control arm or no treatment arm,
            an arm with fewer than 2 users (of positive weight), a bad level, or a plan that
            misses an arm.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    codes, labels = _arms(frame, arm)
    values = {"conversion": _column(frame, conversion, "conversion"),
              "revenue": _column(frame, revenue, "revenue")}
    if not np.isin(values["conversion"], (0.0, 1.0)).all():
        raise ValueError(f"the conversion column {conversion!r} must hold 0 or 1 only")
    x = None if pre_revenue is None else _column(frame, pre_revenue, "pre-period revenue")
    w = np.ones(len(codes)) if weight is None else _column(frame, weight, "weight")
    if (w < 0).any():
        raise ValueError(f"the weight column {weight!r} has {int((w < 0).sum())} negative "
                         f"values (smallest {w.min():g}); weights must be >= 0")
    name = str(control)
    if name not in labels:
        raise ValueError(f"no control arm {name!r} in column {arm!r}; arms are {labels}")
    if len(labels) < 2:
        raise ValueError(f"only the control arm {name!r} is present; nothing to compare")
    positive = np.bincount(codes, weights=w > 0, minlength=len(labels))
    for a, k in zip(labels, positive, strict=True):
        if k < 2:
            raise ValueError(f"arm {a!r} has fewer than 2 users (of positive weight); a "
                             "readout needs at least 2 per arm")
    counts = np.bincount(codes, minlength=len(labels)).tolist()
    srm = srm_check(dict(zip(labels, counts, strict=True)),
                    _plan(frame, codes, labels, planned_shares), threshold=srm_threshold)
    c = labels.index(name)
    comparisons = tuple(_compare(codes, k, c, labels, values, x, w, level)
                        for k in range(len(labels)) if k != c)
    return Readout(name, level, weight is not None, comparisons, srm)


def _compare(codes: np.ndarray, treatment: int, control: int, labels: list[str],
             values: Mapping[str, np.ndarray], x: np.ndarray | None, w: np.ndarray,
             level: float) -> Comparison:
    keep = (codes == treatment) | (codes == control)
    is_t, wk = codes[keep] == treatment, w[keep]
    out = {}
    for name in METRICS:
        y = values[name][keep]
        t, c = _arm(y[is_t], wk[is_t]), _arm(y[~is_t], wk[~is_t])
        raw = _difference(t, c, level)
        cuped = None if x is None else _cuped(y, x[keep], wk, is_t, level, raw)
        out[name] = MetricReadout(name, t.mean, c.mean, raw, *_lift(t, c, level), cuped)
    return Comparison(labels[treatment], labels[control], int(is_t.sum()), int((~is_t).sum()),
                      kish_ess(wk[is_t]), kish_ess(wk[~is_t]), out["conversion"], out["revenue"])
