"""Calibrating predicted uplift on the randomised log, so a plan does not chase noise.

Choosing the best of several noisy uplift estimates per user, and sending whenever the estimate
beats a small cost, selects exactly the users whose estimates are too high (the winner's curse).
On randomised data the *transformed outcome* is an unbiased signal of each user's uplift: for an
arm ``a`` against control, with ``p`` the share of arm ``a`` among the two,

.. math::
    Y^* = Y \\left(\\frac{T}{p} - \\frac{1 - T}{1 - p}\\right), \\qquad
    \\mathbb{E}[Y^* \\mid x] = \\tau_a(x)

(Athey & Imbens, "Recursive partitioning for heterogeneous causal effects", PNAS 2016). So the
least-squares line of :math:`Y^*` on *out-of-fold* predictions :math:`\\hat\\tau_a` (cross-fitted:
each row predicted by a model that did not see it) says how much of the predicted variation is
real: :math:`\\tau_a^{cal}(x) = \\alpha_a + \\beta_a \\hat\\tau_a(x)`, with :math:`\\beta_a`
clipped to [0, 1] (0: the model's ranking carries nothing, every user gets the arm's average
effect; 1: trust it). A linear version of the calibration-by-bins used for uplift models
(e.g. Guelman et al., 2015).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd


def out_of_fold_uplift(make: Callable[[], Any], features: pd.DataFrame, arm: np.ndarray,
                       y: np.ndarray, control: str, folds: int = 5, seed: int = 0
                       ) -> tuple[list[str], np.ndarray]:
    """Cross-fitted uplift predictions ``(treatments, n x treatments)`` for the log's rows."""
    from sklearn.model_selection import StratifiedKFold

    strata = pd.Series(arm).astype(str) + ":" + pd.Series(np.asarray(y) > 0).astype(str)
    split = StratifiedKFold(folds, shuffle=True, random_state=seed)
    out: np.ndarray | None = None
    names: list[str] = []
    for train, held in split.split(features, strata):
        model = make().fit(features.iloc[train], arm[train], y[train], control=control)
        pred = model.predict(features.iloc[held])
        if out is None:
            names = pred.treatments
            out = np.zeros((len(features), len(names)))
        out[held] = pred.uplift
    assert out is not None
    return names, out


def calibration_lines(treatments: list[str], oof: np.ndarray, arm: np.ndarray, y: np.ndarray,
                      control: str) -> dict[str, tuple[float, float]]:
    """Per treatment, ``(alpha, beta)`` of the line of the transformed outcome on ``oof``."""
    lines = {}
    for j, name in enumerate(treatments):
        rows = (arm == name) | (arm == control)
        t = (arm[rows] == name).astype(float)
        p = t.mean()
        target = y[rows] * (t / p - (1 - t) / (1 - p))
        x = oof[rows, j]
        var = x.var()
        beta = 0.0 if var <= 0 else float(np.cov(x, target, bias=True)[0, 1] / var)
        beta = float(np.clip(beta, 0.0, 1.0))
        alpha = float(target.mean() - beta * x.mean())
        lines[name] = (alpha, beta)
    return lines


def calibrate(uplift: np.ndarray, treatments: list[str],
              lines: dict[str, tuple[float, float]]) -> np.ndarray:
    """Apply :func:`calibration_lines` to predictions (columns in ``treatments`` order)."""
    out = np.empty_like(uplift, dtype=float)
    for j, name in enumerate(treatments):
        alpha, beta = lines[name]
        out[:, j] = alpha + beta * uplift[:, j]
    return out


def logged_calibration_lines(q_oof: np.ndarray, action: np.ndarray, reward: np.ndarray,
                             propensity: np.ndarray, max_weight: float = 20.0
                             ) -> list[tuple[float, float, float]]:
    """:func:`calibration_lines` for a log of any policies with known propensities: per action
    ``a >= 1``, ``(alpha, beta)`` of the line of the doubly robust uplift pseudo-outcome on the
    out-of-fold predicted uplift ``q_oof[:, a] - q_oof[:, 0]``.

    The pseudo-outcome :math:`\\Gamma_a - \\Gamma_0`, with :math:`\\Gamma_a = \\hat q_a +
    1[A = a] (R - \\hat q_a) / p` (Dudík et al., 2014; Kennedy, 2023, "Towards optimal doubly
    robust estimation of heterogeneous causal effects"), has conditional mean the true uplift
    whatever policy logged the row, so the line says, as above, how much of the predicted
    variation is real. ``beta`` is clipped to [0, 1]. The third number is the standard error of
    the line's level (of the offer's average uplift): the pseudo-outcome's residual standard
    deviation over :math:`\\sqrt n`.

    Weights :math:`1/p` are clipped at ``max_weight`` (default 20) and self-normalised within
    each action (they sum to the number of rows, as :math:`1/p` does in expectation): a log of
    exploring rounds holds rows of propensity 0.002, whose raw weights of 500 made the
    20,000-user shop's line levels four times as uncertain after a few rounds as before them.
    The clip trades that variance for a bias toward the reward model's own prediction.
    """
    n, k = q_oof.shape
    rows = np.arange(n)
    w = np.minimum(1.0 / propensity, max_weight)
    for a in range(k):  # Hajek: the action's weights sum to n, as 1/p's do in expectation
        at = action == a
        if at.any():
            w[at] *= n / w[at].sum()
    resid = (reward - q_oof[rows, action]) * w
    gamma0 = q_oof[:, 0] + np.where(action == 0, resid, 0.0)
    lines = []
    for a in range(1, k):
        target = q_oof[:, a] + np.where(action == a, resid, 0.0) - gamma0
        x = q_oof[:, a] - q_oof[:, 0]
        var = x.var()
        beta = 0.0 if var <= 0 else float(np.cov(x, target, bias=True)[0, 1] / var)
        beta = float(np.clip(beta, 0.0, 1.0))
        alpha = float(target.mean() - beta * x.mean())
        se = float(np.std(target - beta * x) / np.sqrt(n))
        lines.append((alpha, beta, se))
    return lines
