"""How good an uplift ranking or a treatment policy is, measured on randomised data.

Ranking metrics follow scikit-uplift 0.5 (``sklift.metrics``) so that figures compare with its
tutorials; each function says which of its definitions it reproduces.

* :func:`qini_curve` — Radcliffe (2007): after sorting by predicted uplift, at each cut-off
  :math:`n`, :math:`Q(n) = Y_T(n) - Y_C(n)\\,N_T(n) / N_C(n)`, the treated responders minus the
  control responders rescaled to the treated count (incremental responders if the top
  :math:`n` were all treated).
* :func:`qini_auc_score` — the Qini coefficient as in ``sklift.metrics.qini_auc_score``
  (``negative_effect=True``): area between the model's Qini curve and the random line (the chord
  from :math:`(0, 0)` to the curve's end), divided by the same area for the perfect curve (sorting
  treated responders first and control responders last). 1 is perfect, 0 random, below 0 worse
  than random.
* :func:`uplift_at_k` — ``sklift.metrics.uplift_at_k``: response rate of the treated minus that
  of the controls among the top :math:`k` by predicted uplift; ``"overall"`` takes the top
  :math:`\\lfloor kn \\rfloor` of everyone (the default here and in scikit-uplift's published
  Hillstrom tutorial), ``"by_group"`` the top :math:`k` share of each group separately.
* :func:`policy_value` — the inverse-propensity (IPS) estimate of the mean outcome had a policy
  :math:`\\pi` chosen the treatment, from a randomised log with known propensities
  :math:`p(t)` (Horvitz & Thompson, 1952; Dudík, Langford & Li, "Doubly Robust Policy Evaluation
  and Learning", ICML 2011): :math:`\\hat V(\\pi) = \\frac1n \\sum_i \\frac{\\pi(T_i \\mid x_i)}
  {p(T_i)} Y_i`, unbiased when every arm has :math:`p(t) > 0`, with standard error
  :math:`\\mathrm{sd}(w_i Y_i)/\\sqrt n`. :func:`policy_gain` is the paired difference of two
  policies on the same log (a smaller standard error than the two separate ones).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np


def _arrays(y_true: Any, uplift: Any, treatment: Any) -> tuple[np.ndarray, ...]:
    y, u, t = (np.asarray(a) for a in (y_true, uplift, treatment))
    if not (y.ndim == u.ndim == t.ndim == 1) or not (len(y) == len(u) == len(t)):
        raise ValueError(f"y_true, uplift and treatment must be 1-D of one length; got shapes "
                         f"{y.shape}, {u.shape}, {t.shape}")
    if not np.isin(t, (0, 1)).all():
        raise ValueError("treatment must hold 0 (control) or 1 (treated) only")
    if t.sum() == 0 or t.sum() == len(t):
        raise ValueError("treatment needs both treated (1) and control (0) rows; "
                         f"got {int(t.sum())} treated of {len(t)}")
    if not np.isfinite(u).all():
        raise ValueError("uplift has NaN or infinite values; check the model's predictions")
    return y.astype(float), u.astype(float), t.astype(np.int64)


def qini_curve(y_true: Any, uplift: Any, treatment: Any) -> tuple[np.ndarray, np.ndarray]:
    """Qini curve points ``(n, Q(n))`` at each distinct predicted uplift, from ``(0, 0)``.

    Ties in ``uplift`` form one step, as in scikit-uplift (stable descending sort).

    Args:
        y_true: outcomes (binary, or any number).
        uplift: predicted uplift; higher is targeted first.
        treatment: 1 treated, 0 control.
    """
    y, u, t = _arrays(y_true, uplift, treatment)
    order = np.argsort(u, kind="mergesort")[::-1]
    y, u, t = y[order], u[order], t[order]
    cut = np.r_[np.flatnonzero(np.diff(u)), u.size - 1]
    n_t = np.cumsum(t)[cut].astype(float)
    n_all = (cut + 1).astype(float)
    n_c = n_all - n_t
    y_t = np.cumsum(y * t)[cut]
    y_c = np.cumsum(y * (1 - t))[cut]
    ratio = np.divide(n_t, n_c, out=np.zeros_like(n_t), where=n_c != 0)
    curve = y_t - y_c * ratio
    return np.r_[0.0, n_all], np.r_[0.0, curve]


def perfect_qini_curve(y_true: Any, treatment: Any) -> tuple[np.ndarray, np.ndarray]:
    """The best achievable Qini curve (scikit-uplift's, ``negative_effect=True``): treated
    responders first, control responders last."""
    y = np.asarray(y_true, dtype=float)
    t = np.asarray(treatment)
    return qini_curve(y, y * t - y * (1 - t), t)


def _area(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))


def qini_auc_score(y_true: Any, uplift: Any, treatment: Any) -> float:
    """The Qini coefficient, normalised as ``sklift.metrics.qini_auc_score``.

    .. math::
        \\frac{A(\\text{model}) - A(\\text{random})}{A(\\text{perfect}) - A(\\text{random})}

    with :math:`A` the trapezoid area under a Qini curve and the random line the chord from
    ``(0, 0)`` to ``(n, Q_perfect(n))``.

    Raises:
        ValueError: the perfect curve has no area above the random line (no treated responder,
            or only control responders), so the ratio is undefined.
    """
    y, u, t = _arrays(y_true, uplift, treatment)
    x_p, q_p = perfect_qini_curve(y, t)
    random = x_p[-1] * q_p[-1] / 2
    perfect = _area(x_p, q_p) - random
    if perfect <= 0:
        raise ValueError("the perfect Qini curve has no area above the random line (no treated "
                         "responders?); the Qini coefficient is undefined for this sample")
    coefficient: float = (_area(*qini_curve(y, u, t)) - random) / perfect
    return coefficient


def uplift_at_k(y_true: Any, uplift: Any, treatment: Any, k: float = 0.3,
                strategy: str = "overall", with_se: bool = False) -> Any:
    """Treated minus control response rate among the top ``k`` by predicted uplift.

    Args:
        k: a share in (0, 1).
        strategy: ``"overall"`` (top ``floor(k n)`` rows of everyone) or ``"by_group"`` (top
            ``floor(k n_T)`` treated and ``floor(k n_C)`` control rows), as scikit-uplift.
        with_se: also return the difference's standard error,
            :math:`\\sqrt{s_T^2 / n_T + s_C^2 / n_C}` (the top ``k`` taken as fixed).

    Returns:
        the uplift, or ``(uplift, se)`` with ``with_se``.

    Raises:
        ValueError: ``k`` or ``strategy`` out of range, or the top ``k`` holds no treated or no
            control row.
    """
    if strategy not in ("overall", "by_group"):
        raise ValueError(f"strategy must be 'overall' or 'by_group', got {strategy!r}")
    if not 0 < k < 1:
        raise ValueError(f"k must be a share in (0, 1), got {k}")
    y, u, t = _arrays(y_true, uplift, treatment)
    order = np.argsort(u, kind="mergesort")[::-1]
    y, t = y[order], t[order]
    if strategy == "overall":
        top = int(len(y) * k)
        yt, yc = y[:top][t[:top] == 1], y[:top][t[:top] == 0]
    else:
        yt = y[t == 1][:int((t == 1).sum() * k)]
        yc = y[t == 0][:int((t == 0).sum() * k)]
    if len(yt) == 0 or len(yc) == 0:
        raise ValueError(f"the top {k:.0%} holds {len(yt)} treated and {len(yc)} control rows; "
                         "use a larger k or more data")
    value = float(yt.mean() - yc.mean())
    if not with_se:
        return value
    return value, float(np.sqrt(yt.var() / len(yt) + yc.var() / len(yc)))


class PolicyValue(NamedTuple):
    """An IPS estimate: ``value`` (mean outcome per user), its standard error ``se``, and
    ``matched`` (how many logged rows received the treatment the policy would choose)."""

    value: float
    se: float
    matched: float


def _weights(arm: Any, policy: Any, arms: Sequence[Any] | None,
             shares: Mapping[Any, float] | None) -> np.ndarray:
    arm = np.asarray(arm)
    names = list(np.unique(arm)) if arms is None else list(arms)
    index = {a: i for i, a in enumerate(names)}
    unknown = set(np.unique(arm).tolist()) - set(index)
    if unknown:
        raise ValueError(f"logged arms {sorted(unknown)} are not among arms {names}")
    col = np.array([index[a] for a in arm.tolist()], dtype=np.int64)
    if shares is None:
        p = np.bincount(col, minlength=len(names)) / len(col)
    else:
        missing = set(names) - set(shares)
        if missing:
            raise ValueError(f"shares has no propensity for arms {sorted(missing)}")
        p = np.array([float(shares[a]) for a in names])
    if (p[np.unique(col)] <= 0).any():
        raise ValueError(f"every logged arm needs a positive propensity; got {dict(zip(names, p))}")
    policy = np.asarray(policy)
    if policy.ndim == 1:
        if len(policy) != len(col):
            raise ValueError(f"policy has {len(policy)} choices for {len(col)} logged rows")
        bad = set(np.unique(policy).tolist()) - set(index)
        if bad:
            raise ValueError(f"policy chooses {sorted(bad)}, not among arms {names}")
        prob = (policy == arm).astype(float)
    else:
        if policy.shape != (len(col), len(names)):
            raise ValueError(f"a policy of probabilities must have shape {(len(col), len(names))}"
                             f" (rows x arms {names}); got {policy.shape}")
        if not np.allclose(policy.sum(axis=1), 1.0) or (policy < 0).any():
            raise ValueError("each row of a policy's probabilities must be >= 0 and sum to 1")
        prob = policy[np.arange(len(col)), col].astype(float)
    weight: np.ndarray = prob / p[col]
    return weight


def policy_value(y: Any, arm: Any, policy: Any, *, arms: Sequence[Any] | None = None,
                 shares: Mapping[Any, float] | None = None) -> PolicyValue:
    """IPS estimate of the mean outcome under ``policy`` from a randomised log.

    Args:
        y: logged outcomes, one per row (visits, spend, spend minus the arm's cost, ...).
        arm: the arm each row was randomised to.
        policy: the arm the policy picks per row (1-D, same labels as ``arm``), or an
            ``(n, len(arms))`` matrix of probabilities for a stochastic policy.
        arms: the arm labels, in the column order of a probability ``policy`` (default: the
            sorted distinct logged arms).
        shares: the randomisation propensities per arm (default: the logged arms' empirical
            shares, which also removes the chance imbalance of the split).
    """
    y = np.asarray(y, dtype=float)
    w = _weights(arm, policy, arms, shares)
    if len(y) != len(w) or len(y) < 2:
        raise ValueError(f"y has {len(y)} outcomes for {len(w)} logged rows (at least 2 needed)")
    terms = w * y
    return PolicyValue(float(terms.mean()), float(terms.std(ddof=1) / np.sqrt(len(terms))),
                       float((w > 0).sum()))


def policy_gain(y: Any, arm: Any, policy: Any, baseline: Any, *,
                arms: Sequence[Any] | None = None,
                shares: Mapping[Any, float] | None = None) -> PolicyValue:
    """IPS estimate of ``V(policy) - V(baseline)`` on the same log, with the paired standard
    error (``matched`` counts rows where the two policies' weights differ)."""
    y = np.asarray(y, dtype=float)
    w = _weights(arm, policy, arms, shares) - _weights(arm, baseline, arms, shares)
    if len(y) != len(w) or len(y) < 2:
        raise ValueError(f"y has {len(y)} outcomes for {len(w)} logged rows (at least 2 needed)")
    terms = w * y
    return PolicyValue(float(terms.mean()), float(terms.std(ddof=1) / np.sqrt(len(terms))),
                       float((w != 0).sum()))
