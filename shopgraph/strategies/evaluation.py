"""Evaluation of the heads for ``shopgraph run`` and its report: numbers and curves.

* :func:`evaluate_churn` — out of time: the last ``horizon`` days of purchases are the test;
  the head is trained on everything before ``t = last - horizon`` (its own training snapshot
  is ``t - horizon``), scores every customer at ``t``, and is judged on who bought in
  ``[t, last]``; the RFM logistic baseline is fitted and judged the same way.
* :func:`evaluate_response` — on logged exposures: a time split when campaigns have start days
  and there are several, else a seeded 70/30 split of the exposed users; the head beside the
  logistic baseline, with the lift curve (response rate of the top share over the base rate).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from shopgraph.errors import InsufficientDataError
from shopgraph.parallel import Engine

DAY = 86_400


def _curves(y: np.ndarray, p: np.ndarray, bins: int = 10) -> dict[str, Any]:
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(y, p)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), 200)).astype(int))
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
    predicted, observed, count = [], [], []
    for b in range(bins):
        rows = which == b
        if rows.any():
            predicted.append(round(float(p[rows].mean()), 4))
            observed.append(round(float(y[rows].mean()), 4))
            count.append(int(rows.sum()))
    return {"roc_auc": round(float(roc_auc_score(y, p)), 4),
            "pr_auc": round(float(average_precision_score(y, p)), 4),
            "brier": round(float(brier_score_loss(y, p)), 4),
            "roc": {"fpr": fpr[keep].round(4).tolist(), "tpr": tpr[keep].round(4).tolist()},
            "calibration": {"predicted": predicted, "observed": observed, "count": count}}


def evaluate_churn(purchases: pd.DataFrame, horizon_days: float = 90.0,
                   engine: Engine | None = None) -> dict[str, Any]:
    """Head and baseline scored on the last ``horizon_days``, their features built on
    ``engine`` (default here; the same scores on any); ``{"skipped": why}`` when the purchases
    cannot support it."""
    from shopgraph.strategies.churn import ChurnHead
    from shopgraph.strategies.features import churn_labels

    if purchases.empty:
        return {"skipped": "no timestamped purchases"}
    at = int(purchases["ts"].max()) + 1 - int(horizon_days * DAY)
    seen = purchases[purchases["ts"] < at]
    out: dict[str, Any] = {"horizon_days": horizon_days,
                           "cutoff": pd.Timestamp(at, unit="s").date().isoformat()}
    try:
        labels = churn_labels(purchases, at, horizon_days)
        for name, kind in (("head", "lightgbm"), ("baseline", "logistic")):
            head = ChurnHead(kind).fit(seen, at, horizon_days, engine=engine)
            pred = head.predict(seen, at, engine=engine)
            prob = pred["churn_probability"]
            y = labels.reindex(prob.index).to_numpy(dtype=float)
            out[name] = _curves(y, prob.to_numpy(dtype=float))
            if name == "head":
                out["bands"] = (pd.DataFrame({"band": pred["risk_band"], "churned": y})
                                .groupby("band", observed=False)["churned"]
                                .agg(["size", "mean"]).round(4)
                                .rename(columns={"size": "users", "mean": "churn_rate"})
                                .to_dict("index"))
    except InsufficientDataError as exc:
        return {"skipped": str(exc)}
    out.update({"roc_auc": out["head"]["roc_auc"], "baseline_roc_auc":
                out["baseline"]["roc_auc"], "brier": out["head"]["brier"],
                "roc": out["head"]["roc"], "calibration": out["head"]["calibration"],
                "churn_rate": round(float(labels.mean()), 4), "customers": int(len(labels))})
    return out


def response_label(log: pd.DataFrame) -> str | None:
    """The outcome a response head learns: the first of converted, redeemed, visited that the
    log has both values of."""
    return next((c for c in ("converted", "redeemed", "visited")
                 if log[c].gt(0).any() and log[c].eq(0).any()), None)


def _lift(y: np.ndarray, p: np.ndarray, points: int = 20) -> dict[str, list[float]]:
    order = np.argsort(-p, kind="stable")
    hits = np.cumsum(y[order])
    base = max(y.mean(), 1e-12)
    shares = np.linspace(1 / points, 1, points)
    idx = np.maximum((shares * len(y)).astype(int) - 1, 0)
    return {"share": shares.round(4).tolist(),
            "lift": (hits[idx] / (idx + 1) / base).round(4).tolist()}


def evaluate_response(log: pd.DataFrame, users: pd.DataFrame, campaigns: pd.DataFrame,
                      seed: int = 0) -> dict[str, Any]:
    """Response head and baseline on held-out exposures; ``{"skipped": why}`` without data."""
    from shopgraph.strategies import response

    treated = log[log["treated"].astype(bool)]
    label = response_label(treated)
    if label is None:
        return {"skipped": "no logged campaign outcomes"}

    def both(part: pd.DataFrame) -> bool:
        mixed: bool = part[label].gt(0).any() and part[label].eq(0).any()
        return mixed

    starts = campaigns["start_day"].dropna() if "start_day" in campaigns else pd.Series()
    train = test = treated.iloc[:0]
    if treated["campaign_id"].nunique() > 1 and len(starts) > 1:
        cut = float(np.median(starts))
        train, test = response.time_split(treated, campaigns, cut)
        split = f"time: campaigns starting on/after day {cut:g}"
    if not (both(train) and both(test)):  # one campaign, or outcomes on one side only
        rng = np.random.default_rng(seed)
        held = rng.random(len(treated)) < 0.3
        train, test = treated[~held], treated[held]
        split = "random 70/30 of exposed users"
    out: dict[str, Any] = {"label": label, "split": split, "train": len(train),
                           "test": len(test)}
    try:
        for name, kind in (("head", "lightgbm"), ("baseline", "logistic")):
            head = response.fit(train, users, campaigns, label=label, kind=kind, seed=seed)
            p = head.predict_proba(test, users, campaigns)
            y = (pd.to_numeric(test[label]).to_numpy() > 0).astype(float)
            if y.min() == y.max():
                return {"skipped": f"the test part has only one {label} outcome"}
            curves = _curves(y, p)
            out[name] = {**curves, "lift": _lift(y, p)}
    except InsufficientDataError as exc:
        return {"skipped": str(exc)}
    out.update({"roc_auc": out["head"]["roc_auc"], "baseline_roc_auc":
                out["baseline"]["roc_auc"], "pr_auc": out["head"]["pr_auc"],
                "lift": out["head"]["lift"], "roc": out["head"]["roc"],
                "base_rate": round(float(pd.to_numeric(test[label]).gt(0).mean()), 4)})
    return out
