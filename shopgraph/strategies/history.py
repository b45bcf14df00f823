"""A user's campaign history before a campaign starts: :func:`history_features` describes
(user, campaign) pairs by what happened strictly before the campaign's ``start_day``, so a
model trained on it never sees the future. Its inputs are the frames of
:mod:`shopgraph.graphdb.tables` (campaign log, campaign features, redemptions).

Days are the unit of ``start_day`` / ``end_day``; a relationship's ``ts`` (seconds) is placed on
the same axis as ``ts // 86400`` (the dunnhumby loader writes ``ts = day * 86400``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

HISTORY_COLUMNS = ("hist_campaigns", "hist_same_type", "hist_active", "hist_redemptions",
                   "hist_redeemed_campaigns", "hist_redeem_rate", "days_since_redemption",
                   "days_since_campaign")


def history_features(pairs: pd.DataFrame, log: pd.DataFrame, campaigns: pd.DataFrame,
                     events: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each pair's campaign history, counted strictly before the campaign's ``start_day``.

    Columns: ``hist_campaigns`` (campaigns received that started earlier), ``hist_same_type``
    (of those, of the same type), ``hist_active`` (of those, still running at the start),
    ``hist_redemptions`` (redemptions before the start), ``hist_redeemed_campaigns`` (distinct
    campaigns redeemed before the start), ``hist_redeem_rate`` (the two before, divided),
    ``days_since_redemption`` and ``days_since_campaign`` (NaN when there is none).

    Args:
        pairs: ``user_id, campaign_id`` to describe (e.g. a campaign log or candidates).
        log: past campaign participation (:func:`~shopgraph.graphdb.tables.campaign_log`);
            only treated rows count.
        campaigns: :func:`~shopgraph.graphdb.tables.campaign_features` (needs ``start_day``;
            ``end_day`` and ``type`` are used when present).
        events: :func:`~shopgraph.graphdb.tables.redemptions`; without it (or for events
            without a day) a redemption counts as known from the day after its campaign ended.

    Returns:
        A frame aligned with ``pairs`` (same index), one column per feature above.

    Raises:
        ValueError: ``pairs`` or ``log`` lack ``user_id`` / ``campaign_id``, or a pair's
            campaign has no ``start_day``.
    """
    for name, frame in (("pairs", pairs), ("log", log)):
        missing = {"user_id", "campaign_id"} - set(frame.columns)
        if missing:
            raise ValueError(f"{name} lacks columns {sorted(missing)}")
    start = campaigns["start_day"].astype(float)
    end = campaigns["end_day"].astype(float) if "end_day" in campaigns else start
    ctype = campaigns["type"] if "type" in campaigns else pd.Series(None, campaigns.index)
    target = pd.DataFrame({"user_id": pairs["user_id"].astype(str).to_numpy(),
                           "campaign_id": pairs["campaign_id"].astype(str).to_numpy()})
    target["start"] = target["campaign_id"].map(start)
    if target["start"].isna().any():
        bad = target.loc[target["start"].isna(), "campaign_id"].iloc[0]
        raise ValueError(f"campaign {bad!r} has no start_day; history features need one per "
                         "campaign (drop them with history=None)")
    target["type"] = target["campaign_id"].map(ctype)
    target["row"] = np.arange(len(target))

    past = log.loc[log["treated"].astype(bool)] if "treated" in log else log
    past = pd.DataFrame({"user_id": past["user_id"].astype(str).to_numpy(),
                         "campaign_id": past["campaign_id"].astype(str).to_numpy()})
    past["p_start"] = past["campaign_id"].map(start)
    past["p_end"] = past["campaign_id"].map(end)
    past["p_type"] = past["campaign_id"].map(ctype)
    joined = target.merge(past.drop(columns="campaign_id"), on="user_id")
    joined = joined[joined["p_start"] < joined["start"]]
    n = len(target)
    grouped = joined.groupby("row")
    out = pd.DataFrame(index=pairs.index)
    out["hist_campaigns"] = _per_row(grouped.size(), n, 0)
    same = joined[joined["p_type"].notna() & (joined["p_type"] == joined["type"])]
    out["hist_same_type"] = _per_row(same.groupby("row").size(), n, 0)
    active = joined[joined["p_end"] >= joined["start"]]
    out["hist_active"] = _per_row(active.groupby("row").size(), n, 0)
    out["days_since_campaign"] = _per_row(
        (joined["start"] - joined["p_start"]).groupby(joined["row"]).min(), n, np.nan)

    red = _known_redemptions(log, events, end)
    rj = target.merge(red, on="user_id")
    rj = rj[rj["day"] < rj["start"]]
    rgrouped = rj.groupby("row")
    out["hist_redemptions"] = _per_row(rgrouped.size(), n, 0)
    out["hist_redeemed_campaigns"] = _per_row(rgrouped["r_campaign"].nunique(), n, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = out["hist_redeemed_campaigns"] / out["hist_campaigns"]
    out["hist_redeem_rate"] = rate.where(out["hist_campaigns"] > 0)
    out["days_since_redemption"] = _per_row(
        (rj["start"] - rj["day"]).groupby(rj["row"]).min(), n, np.nan)
    return out[list(HISTORY_COLUMNS)]


def _per_row(values: pd.Series, n: int, fill: float) -> np.ndarray:
    filled: np.ndarray = values.reindex(np.arange(n)).fillna(fill).to_numpy(dtype=float)
    return filled


def _known_redemptions(log: pd.DataFrame, events: pd.DataFrame | None, end: pd.Series
                       ) -> pd.DataFrame:
    """Redemptions with the day they became known: their own day, else the campaign's end + 1."""
    if events is None:
        if "redeemed" not in log:
            return pd.DataFrame({"user_id": [], "r_campaign": [], "day": []})
        hit = log.loc[log["redeemed"].astype(bool)]
        events = pd.DataFrame({"user_id": hit["user_id"], "campaign_id": hit["campaign_id"],
                               "day": np.nan})
    out = pd.DataFrame({"user_id": events["user_id"].astype(str).to_numpy(),
                        "r_campaign": events["campaign_id"].astype(str).to_numpy(),
                        "day": pd.to_numeric(events["day"], errors="coerce").to_numpy(float)})
    fallback = out["r_campaign"].map(end) + 1
    out["day"] = out["day"].where(out["day"].notna(), fallback)
    return out.dropna(subset=["day"])
