"""Features of (user, round) pairs for a campaign loop that learns from its own logs.

A round's features are known at its start: the user's properties, RFM features of purchases
strictly before the round (:func:`~shopgraph.strategies.features.rfm_features`), and what the
user did in earlier rounds under each action (:func:`offer_history`): how often they got it and
how often they converted then. The last is what lets a model learn, round after round, who
answers which offer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from shopgraph.strategies.features import rfm_features

#: user properties used as features (others, such as e-mails, are not)
PROPERTY_COLUMNS = ("recency", "history", "newbie", "zip_code", "channel", "age", "income")


def offer_history(pairs: pd.DataFrame, log: pd.DataFrame, actions: Sequence[str]) -> pd.DataFrame:
    """Each pair's earlier rounds, counted strictly before the pair's ``start_ts``.

    Args:
        pairs: ``user_id, start_ts`` to describe.
        log: earlier decisions with outcomes: ``user_id, start_ts, offer, converted``.
        actions: the action names, ``"none"`` included; other offers in ``log`` are ignored.

    Returns:
        A frame aligned with ``pairs``: ``hist_<action>_n`` (rounds the user got the action)
        and ``hist_<action>_conv`` (of those, rounds they converted in), plus ``hist_rounds``.
    """
    cols = [f"hist_{a}_{k}" for a in actions for k in ("n", "conv")] + ["hist_rounds"]
    out = pd.DataFrame(0.0, index=pairs.index, columns=cols)
    if log.empty or pairs.empty:
        return out
    known = log[log["offer"].isin(list(actions))]
    for start in np.unique(pairs["start_ts"].to_numpy()):
        rows = pairs.index[pairs["start_ts"].to_numpy() == start]
        past = known[known["start_ts"].to_numpy() < start]
        if past.empty:
            continue
        conv = (past["converted"].fillna(0).to_numpy(dtype=float) > 0).astype(float)
        g = past.assign(n=1.0, conv=conv).groupby(["user_id", "offer"])[["n", "conv"]].sum()
        wide = g.unstack("offer", fill_value=0.0)
        users = pairs.loc[rows, "user_id"].astype(str).to_numpy()
        for a in actions:
            for k in ("n", "conv"):
                if (k, a) in wide.columns:
                    out.loc[rows, f"hist_{a}_{k}"] = wide[(k, a)].reindex(users).fillna(
                        0.0).to_numpy()
        out.loc[rows, "hist_rounds"] = out.loc[rows, [f"hist_{a}_n" for a in actions]].sum(
            axis=1).to_numpy()
    return out


def round_features(pairs: pd.DataFrame, users: pd.DataFrame, purchases: pd.DataFrame,
                   log: pd.DataFrame, actions: Sequence[str]) -> pd.DataFrame:
    """Features of ``pairs`` (``user_id, start_ts``) as of each pair's start.

    Args:
        pairs: the (user, round start) pairs.
        users: user properties indexed by ``user_id`` (:data:`PROPERTY_COLUMNS` are used).
        purchases: ``user_id, ts, value`` (:func:`~shopgraph.graphdb.tables.purchases`).
        log: earlier decisions with outcomes (see :func:`offer_history`).
        actions: the action names.

    Returns:
        One row per pair (same index): properties, ``rfm_*`` columns and ``hist_*`` columns.
        Categorical properties stay strings.
    """
    ids = pairs["user_id"].astype(str).to_numpy()
    props = [c for c in PROPERTY_COLUMNS if c in users.columns]
    out = users[props].reindex(ids).set_axis(pairs.index)
    rfm = []
    for start in np.unique(pairs["start_ts"].to_numpy()):
        rows = pairs.index[pairs["start_ts"].to_numpy() == start]
        f = rfm_features(purchases, int(start)).add_prefix("rfm_")
        rfm.append(f.reindex(pairs.loc[rows, "user_id"].astype(str).to_numpy()).set_axis(rows))
    out = out.join(pd.concat(rfm).loc[pairs.index])
    return out.join(offer_history(pairs, log, actions))
