"""Hillstrom's MineThatData e-mail challenge (2008): one randomised campaign, two e-mail arms and
a control group, one CSV row per customer.

Graph mapping:

* one ``Campaign`` (id ``campaign_id``, channel ``email``) that ``INCLUDES`` two ``Offer`` nodes,
  ``"<campaign_id>:mens"`` and ``"<campaign_id>:womens"`` (type ``informational``);
* one ``User`` per row, id ``"h<n>"`` where ``n`` is the 1-based data row (the line number minus
  one; the header is line 1), with the file's customer features as properties;
* treated rows: ``RECEIVED`` (User -> Offer of their arm); control rows (``No E-Mail``):
  ``HELD_OUT`` (User -> Campaign); ``visit == 1``: ``VISITED``; ``conversion == 1``: ``CONVERTED``
  (User -> Campaign, ``value`` = spend). Every relationship carries ``arm`` = the segment text.

Event ids are ``event_id(campaign_id, user, kind)`` = ``"<campaign_id>:<user>:<kind>"`` with kind
``received``, ``held_out``, ``visited`` or ``converted`` (``"<campaign_id>:<arm>:includes"`` for
``INCLUDES``); a ``%`` or ``:`` inside the campaign id is escaped as ``%25`` / ``%3A`` (see
:mod:`~shopgraph.graphdb.formats.common`). The file has no times, so ``ts`` is missing. A UTF-8
BOM before the header is dropped; a line that is not UTF-8 is a bad row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from shopgraph.graphdb.formats.common import (
    RowSink,
    event_id,
    event_ids,
    missing_ts,
    numeric_column,
    read_csv_rows,
    require_file,
)
from shopgraph.graphdb.frames import EdgeFrame, NodeFrame, SourceData

COLUMNS = ("recency", "history_segment", "history", "mens", "womens", "zip_code", "newbie",
           "channel", "segment", "visit", "conversion", "spend")
ARMS = {"Mens E-Mail": "mens", "Womens E-Mail": "womens"}
CONTROL = "No E-Mail"
FLAGS = ("mens", "womens", "newbie", "visit", "conversion")


def _edges(df: pd.DataFrame, mask: pd.Series, dst: pd.Series | str, kind: str, cid: str,
           value: pd.Series | None = None) -> pd.DataFrame:
    sub = df.loc[mask]
    out = pd.DataFrame({"src": sub["id"].to_numpy()})
    out["dst"] = dst if isinstance(dst, str) else dst.loc[mask].to_numpy()
    out["eid"] = event_ids(cid, out["src"], kind)
    out["ts"] = missing_ts(len(out))
    out["value"] = np.nan if value is None else value.loc[mask].to_numpy(dtype=np.float64)
    out["arm"] = sub["segment"].to_numpy()
    out["_line"] = sub["_line"].to_numpy()
    return out


def load_hillstrom(path: str | Path, *, strict: bool = True,
                   campaign_id: str = "hillstrom-2008") -> SourceData:
    """Parse the Hillstrom e-mail challenge CSV.

    Args:
        path: ``hillstrom.csv``.
        strict: raise on the first bad row instead of skipping it.
        campaign_id: id of the campaign node; prefixes offer ids and every event id.

    Returns:
        The campaign, its two offers, one user per customer and their outcome relationships.
    """
    p = require_file(path)
    f = str(p)
    sink = RowSink(p, strict)
    df = read_csv_rows(p, COLUMNS, sink)
    df = sink.bad_mask(df, ~df["segment"].isin([*ARMS, CONTROL]), "segment",
                       f"unknown segment; expected one of {[*ARMS, CONTROL]}")
    for col in FLAGS:
        df = sink.bad_mask(df, ~df[col].isin(["0", "1"]), col, "expected 0 or 1")
    for col in ("recency", "history", "spend"):
        df = numeric_column(df, col, sink)
    for col in ("zip_code", "channel"):
        df = sink.bad_mask(df, df[col] == "", col, "empty value")
    data = SourceData("hillstrom", [p], options={"format": "hillstrom",
                                                 "campaign_id": campaign_id})
    if df.empty:
        sink.bad(1, "segment", "no customer rows found in the file")
        data.problems = sink.problems
        return data
    data.problems = sink.problems
    df = df.copy()
    df["id"] = "h" + (df["_line"] - 1).astype(str)
    for col in FLAGS:
        df[col] = df[col].astype(np.int64)
    users = df[["id", "recency", "history", "mens", "womens", "zip_code", "newbie", "channel",
                "_line"]].reset_index(drop=True)
    offer_ids = {arm: f"{campaign_id}:{key}" for arm, key in ARMS.items()}
    campaign = pd.DataFrame({"id": [campaign_id], "name": ["MineThatData E-Mail Challenge 2008"],
                             "channel": ["email"], "_line": [0]})
    offers = pd.DataFrame({"id": list(offer_ids.values()), "name": list(offer_ids),
                           "type": "informational", "channels": "email", "_line": 0})
    includes = pd.DataFrame({"src": campaign_id, "dst": offers["id"],
                             "eid": [event_id(campaign_id, key, "includes")
                                     for key in ARMS.values()],
                             "ts": missing_ts(2), "value": np.nan,
                             "_line": 0})
    treated = df["segment"].isin(list(ARMS))
    data.nodes = [NodeFrame("Campaign", campaign, f), NodeFrame("Offer", offers, f),
                  NodeFrame("User", users, f)]
    data.edges = [
        EdgeFrame("INCLUDES", includes, f),
        EdgeFrame("RECEIVED", _edges(df, treated, df["segment"].map(offer_ids), "received",
                                     campaign_id), f),
        EdgeFrame("HELD_OUT", _edges(df, ~treated, campaign_id, "held_out", campaign_id), f),
        EdgeFrame("VISITED", _edges(df, df["visit"] == 1, campaign_id, "visited", campaign_id), f),
        EdgeFrame("CONVERTED", _edges(df, df["conversion"] == 1, campaign_id, "converted",
                                      campaign_id, df["spend"]), f),
    ]
    data.validate()
    return data
