"""Per-customer RFM features at a cutoff, and churn labels over a horizon after it.

Features follow the recency / frequency / monetary tradition of customer-base analysis (Fader,
Hardie & Lee, "RFM and CLV: Using Iso-value Curves for Customer Base Analysis", JMR 2005), with
trends and inter-purchase times added. Everything is computed from purchases with
``ts < cutoff`` only, so a feature row never sees its own label window.

Time features are in days; a purchase *day* is its UTC calendar day (``ts // 86400``), so several
purchases on one day count once in ``active_days`` and the inter-purchase gaps.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from shopgraph.parallel import Engine

DAY = 86_400
USERS_PER_PART = 100_000
"""Users per partition when :func:`rfm_features` runs on an engine."""
#: Feature columns of :func:`rfm_features`, in order.
FEATURES = (
    "recency_days", "tenure_days", "frequency", "active_days", "monetary", "avg_value",
    "purchases_recent", "purchases_prior", "purchase_trend",
    "spend_recent", "spend_prior", "spend_trend",
    "ipt_mean_days", "ipt_std_days", "overdue", "purchase_rate",
)


def as_seconds(when: Any) -> int:
    """A cutoff as int epoch seconds (UTC), from seconds, a date string or a datetime."""
    if isinstance(when, bool):
        raise ValueError(f"expected a cutoff in epoch seconds or a date, got {when!r}")
    if isinstance(when, int | np.integer):
        return int(when)
    if isinstance(when, str | dt.date | pd.Timestamp):
        stamp = pd.Timestamp(when)
        stamp = stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp
        return int((stamp - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1))
    raise ValueError(f"expected a cutoff in epoch seconds or a date, got {when!r}")


def check_purchases(purchases: pd.DataFrame) -> None:
    """Raise ``ValueError`` unless ``purchases`` has ``user_id, ts, value`` columns."""
    missing = [c for c in ("user_id", "ts", "value") if c not in purchases]
    if missing:
        raise ValueError(f"purchases lacks the columns {missing}; build it with "
                         "shopgraph.graphdb.tables.purchases(source)")


def before(purchases: pd.DataFrame, cutoff: int) -> pd.DataFrame:
    """The purchases strictly before ``cutoff``."""
    check_purchases(purchases)
    return purchases[purchases["ts"].to_numpy() < cutoff]


def rfm_features(purchases: pd.DataFrame, cutoff: Any, extra: pd.DataFrame | None = None,
                 window_days: int = 90, engine: Engine | None = None) -> pd.DataFrame:
    """RFM features of every user with at least one purchase strictly before ``cutoff``.

    Columns (:data:`FEATURES`): ``recency_days`` (cutoff − last purchase), ``tenure_days``
    (cutoff − first purchase), ``frequency`` (purchases), ``active_days`` (distinct purchase
    days), ``monetary`` (spend) and ``avg_value`` (spend per purchase); purchases and spend in
    the last ``window_days`` before the cutoff (``*_recent``), in the ``window_days`` before those
    (``*_prior``) and their difference (``*_trend``); mean and standard deviation (ddof 0) of the
    gaps between purchase days (NaN with fewer than 1 resp. 2 gaps); ``overdue`` =
    recency / mean gap, the time since the last purchase in units of the user's own rhythm; and
    ``purchase_rate`` = active days per day of tenure (tenure floored at 1 day).

    Args:
        purchases: ``user_id, ts, value`` rows (:func:`shopgraph.graphdb.tables.purchases`).
        cutoff: epoch seconds (or a date); only ``ts < cutoff`` is read.
        extra: optional frame indexed by ``user_id`` (embedding components, graph degree, ...)
            left-joined onto the result; users it lacks get NaN.
        window_days: the length of the trend windows (default: ``90``).
        engine: where the features are built, :data:`USERS_PER_PART` users (in id order) to a
            partition (default: here, all at once). Every feature is one user's, so any engine
            gives the same frame.

    Returns:
        One row per user, indexed by ``user_id`` (sorted), float64 columns.
    """
    cutoff = as_seconds(cutoff)
    if window_days <= 0:
        raise ValueError(f"window_days must be positive, got {window_days}")
    p = before(purchases, cutoff)
    if engine is None:
        out = _rfm((cutoff, window_days), p)
    else:
        out = pd.concat(list(engine.map(_rfm, (cutoff, window_days), _user_parts(p))))
    return join_extra(out, extra)


def _user_parts(p: pd.DataFrame) -> list[pd.DataFrame]:
    """``p``'s rows split into ranges of :data:`USERS_PER_PART` users in id order (one part,
    maybe empty, at least)."""
    user = p["user_id"].astype(str).to_numpy()
    firsts = np.unique(user)[USERS_PER_PART::USERS_PER_PART]  # each later part's first user
    part = np.searchsorted(firsts, user, side="right")
    return [p[part == k] for k in range(len(firsts) + 1)]


def _rfm(settings: tuple[int, int], p: pd.DataFrame) -> pd.DataFrame:
    """The features of the users in ``p`` (purchases before the cutoff); ``settings``:
    ``(cutoff, window_days)``."""
    cutoff, window_days = settings
    user = p["user_id"].astype(str).to_numpy()
    ts = p["ts"].to_numpy(dtype=np.int64)
    value = np.nan_to_num(p["value"].to_numpy(dtype=float))
    age = (cutoff - ts) / DAY
    frame = pd.DataFrame({"user_id": user, "ts": ts, "value": value,
                          "recent": age <= window_days,
                          "prior": (age > window_days) & (age <= 2 * window_days)})
    frame["spend_recent"] = np.where(frame["recent"], value, 0.0)
    frame["spend_prior"] = np.where(frame["prior"], value, 0.0)
    g = frame.groupby("user_id", sort=True)
    out = pd.DataFrame({
        "recency_days": (cutoff - g["ts"].max()) / DAY,
        "tenure_days": (cutoff - g["ts"].min()) / DAY,
        "frequency": g.size().astype(float),
        "monetary": g["value"].sum(),
        "purchases_recent": g["recent"].sum().astype(float),
        "purchases_prior": g["prior"].sum().astype(float),
        "spend_recent": g["spend_recent"].sum(),
        "spend_prior": g["spend_prior"].sum(),
    })
    days = frame.assign(day=ts // DAY)[["user_id", "day"]].drop_duplicates()
    days = days.sort_values(["user_id", "day"], kind="stable")
    gap = days.groupby("user_id", sort=True)["day"].diff().astype(float)
    gaps = gap.groupby(days["user_id"])
    out["active_days"] = days.groupby("user_id", sort=True).size().astype(float)
    out["avg_value"] = out["monetary"] / out["frequency"]
    out["purchase_trend"] = out["purchases_recent"] - out["purchases_prior"]
    out["spend_trend"] = out["spend_recent"] - out["spend_prior"]
    out["ipt_mean_days"] = gaps.mean()
    n_gaps = gaps.count()
    out["ipt_std_days"] = gaps.std(ddof=0).where(n_gaps >= 2)
    out["overdue"] = out["recency_days"] / out["ipt_mean_days"].where(out["ipt_mean_days"] > 0)
    out["purchase_rate"] = out["active_days"] / out["tenure_days"].clip(lower=1.0)
    return out[list(FEATURES)].astype(float).rename_axis("user_id")


def join_extra(features: pd.DataFrame, extra: pd.DataFrame | None) -> pd.DataFrame:
    """Left-join ``extra`` (indexed by ``user_id``) onto ``features``; names must not clash."""
    if extra is None:
        return features
    clash = sorted(set(features.columns) & set(map(str, extra.columns)))
    if clash:
        raise ValueError(f"extra columns {clash} clash with the RFM features; rename them")
    extra = extra.copy()
    extra.index = extra.index.astype(str)
    extra.columns = [str(c) for c in extra.columns]
    if not extra.index.is_unique:
        raise ValueError("extra has repeated user_id index values; give one row per user")
    return features.join(extra.apply(pd.to_numeric, errors="coerce").astype(float), how="left")


def churn_labels(purchases: pd.DataFrame, cutoff: Any, horizon_days: float) -> pd.Series:
    """1 for each user who bought before ``cutoff`` and makes no purchase in
    ``[cutoff, cutoff + horizon_days)``, else 0.

    The data must cover the whole window: a log that ends before ``cutoff + horizon_days``
    counts the unseen tail as "no purchase".

    Returns:
        An int8 series named ``churned``, indexed by ``user_id`` like :func:`rfm_features`.
    """
    cutoff = as_seconds(cutoff)
    if not horizon_days > 0:
        raise ValueError(f"horizon_days must be positive, got {horizon_days}")
    check_purchases(purchases)
    ts = purchases["ts"].to_numpy(dtype=np.int64)
    user = purchases["user_id"].astype(str).to_numpy(dtype=object)
    at_risk = np.sort(pd.unique(user[ts < cutoff]))
    end = cutoff + int(round(horizon_days * DAY))
    back = user[(ts >= cutoff) & (ts < end)]
    # A hash lookup on objects: np.isin compares object (string) arrays element by element
    # (O(n x m)), and a pandas string index converts to Arrow first.
    churned = (~pd.Index(at_risk, dtype=object).isin(back)).astype(np.int8)
    return pd.Series(churned, index=pd.Index(at_risk, name="user_id"), name="churned")


def show_value(value: object) -> str:
    """A feature value as a reason shows it: ``missing`` for None or NaN, floats with ``:g``."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "missing"
    return f"{value:g}" if isinstance(value, float) else str(value)
