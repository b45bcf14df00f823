"""dunnhumby "The Complete Journey": the direct-marketing tables (campaigns, coupons, redemptions)
and household demographics.

Graph mapping:

* ``campaign_desc.csv``: one ``Campaign`` per row, id = campaign number, ``type`` = description
  (TypeA/B/C), ``start_day`` / ``end_day``.
* ``hh_demographic.csv``: ``User`` nodes (id = household_key) with ``age``, ``marital_status``,
  ``income``, ``homeowner``, ``household_comp``, ``household_size`` and ``kids``; households
  that only appear in the campaign or redemption tables get a second, id-only ``User`` frame.
* ``coupon.csv``: one ``Offer`` per (campaign, coupon_upc), id ``"<campaign>:<upc>"``, ``type``
  ``coupon``, ``upc``; ``INCLUDES`` Campaign -> Offer (eid = the offer id); one ``Item`` per
  product_id; ``APPLIES_TO`` Offer -> Item (eid ``"<campaign>:<upc>:<product>"``). The file repeats
  some rows verbatim; a repeated structural fact is written once.
* ``campaign_table.csv``: ``EXPOSED`` User -> Campaign, eid ``"<campaign>:<household>:exposed"``.
* ``coupon_redempt.csv``: ``COMPLETED`` User -> Offer, eid
  ``"<campaign>:<household>:<upc>:<day>:<n>"`` (``n``: 0-based repeat of that tuple in file
  order). Days are integer indices since an arbitrary origin (the release has no calendar dates),
  so ``ts = day * 86400`` orders events but is not a real date.

A campaign or (coupon, campaign) that is not defined in ``campaign_desc.csv`` / ``coupon.csv`` is
an unknown id: a bad row. Campaign exposures have no time (``ts`` missing). Every id column holds
ASCII digits only (``'١٢'`` is a bad row), so the ids above are built by
:func:`~shopgraph.graphdb.formats.common.event_id` without ever needing its escapes. A UTF-8 BOM
before a header is dropped; a line that is not UTF-8 is a bad row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from shopgraph.errors import IngestError
from shopgraph.graphdb.formats.common import (
    RowSink,
    event_ids,
    missing_ts,
    nodes_from_ids,
    numeric_column,
    read_csv_rows,
    require_file,
)
from shopgraph.graphdb.frames import EdgeFrame, NodeFrame, SourceData

FILES = {
    "campaign_desc.csv": ("description", "campaign", "start_day", "end_day"),
    "campaign_table.csv": ("description", "household_key", "campaign"),
    "coupon.csv": ("coupon_upc", "product_id", "campaign"),
    "coupon_redempt.csv": ("household_key", "day", "coupon_upc", "campaign"),
    "hh_demographic.csv": ("household_key", "age_desc", "marital_status_code", "income_desc",
                           "homeowner_desc", "hh_comp_desc", "household_size_desc",
                           "kid_category_desc"),
}
DEMOGRAPHICS = {"age_desc": "age", "marital_status_code": "marital_status",
                "income_desc": "income", "homeowner_desc": "homeowner",
                "hh_comp_desc": "household_comp", "household_size_desc": "household_size",
                "kid_category_desc": "kids"}
ID_COLUMNS = ("campaign", "household_key", "coupon_upc", "product_id")
DAY = 86_400


def _read(folder: Path, name: str, sink: RowSink) -> pd.DataFrame:
    """Read one table; every id column must be a non-negative integer (kept as written)."""
    df = read_csv_rows(folder / name, FILES[name], sink)
    for col in ID_COLUMNS:
        if col in df:
            df = sink.bad_mask(df, ~df[col].str.fullmatch(r"[0-9]+"), col,
                               "expected a non-negative integer id (ASCII digits 0-9)")
    return df


def _unknown(df: pd.DataFrame, mask: pd.Series, col: str, what: str, sink: RowSink
             ) -> pd.DataFrame:
    return sink.bad_mask(df, mask, col, f"unknown id: {what}")


def _edges(src: pd.Series, dst: pd.Series, eid: pd.Series, lines: pd.Series,
           ts: pd.Series | None = None) -> pd.DataFrame:
    out = pd.DataFrame({"src": src.to_numpy(), "dst": dst.to_numpy(), "eid": eid.to_numpy()})
    out["ts"] = missing_ts(len(out)) if ts is None else pd.array(ts.to_numpy(), dtype="Int64")
    out["value"] = np.nan
    out["_line"] = lines.to_numpy(dtype=np.int64)
    return out


def load_dunnhumby(folder: str | Path, *, strict: bool = True) -> SourceData:
    """Parse the campaign, coupon, redemption and demographic tables of The Complete Journey.

    Args:
        folder: the folder holding the five CSV files.
        strict: raise on the first bad row instead of skipping it.

    Returns:
        Campaigns, offers, items, households and their exposures and redemptions.
    """
    d = Path(folder)
    if not d.is_dir():
        raise IngestError("no such folder; check the path", file=str(d))
    for name in FILES:  # every file must be there before any is parsed
        if not (d / name).is_file():
            raise IngestError(f"missing file {name} in {d}; the folder needs "
                              f"{', '.join(FILES)}", file=str(d / name))
        require_file(d / name)
    files = {name: str(d / name) for name in FILES}
    sinks = {name: RowSink(path, strict) for name, path in files.items()}

    sink = sinks["campaign_desc.csv"]
    camp = _read(d, "campaign_desc.csv", sink)
    for col in ("start_day", "end_day"):
        camp = numeric_column(camp, col, sink, kind="int")
    camp = sink.bad_mask(camp, camp["campaign"].duplicated(), "campaign",
                         "the campaign is described twice")
    camp_type = camp.set_index("campaign")["description"]

    sink = sinks["coupon.csv"]
    coupon = _read(d, "coupon.csv", sink)
    coupon = _unknown(coupon, ~coupon["campaign"].isin(camp_type.index), "campaign",
                      "the campaign is not in campaign_desc.csv", sink)
    coupon = coupon.drop_duplicates(["campaign", "coupon_upc", "product_id"])
    coupon["offer"] = event_ids(coupon["campaign"], coupon["coupon_upc"])

    sink = sinks["campaign_table.csv"]
    table = _read(d, "campaign_table.csv", sink)
    table = _unknown(table, ~table["campaign"].isin(camp_type.index), "campaign",
                     "the campaign is not in campaign_desc.csv", sink)
    table = sink.bad_mask(table, table["description"] != table["campaign"].map(camp_type),
                          "description", "differs from the campaign's type in campaign_desc.csv")
    table["eid"] = event_ids(table["campaign"], table["household_key"], "exposed")
    table = sink.bad_mask(table, table["eid"].duplicated(), "household_key",
                          "the household is listed twice for this campaign")

    sink = sinks["coupon_redempt.csv"]
    red = _read(d, "coupon_redempt.csv", sink)
    # the repeat index is taken before any row is dropped, so skipping one shifts no event id
    key = event_ids(red["campaign"], red["household_key"], red["coupon_upc"], red["day"])
    red["eid"] = event_ids(red["campaign"], red["household_key"], red["coupon_upc"], red["day"],
                           key.groupby(key, sort=False).cumcount())
    red = numeric_column(red, "day", sink, kind="int")
    red = _unknown(red, ~red["campaign"].isin(camp_type.index), "campaign",
                   "the campaign is not in campaign_desc.csv", sink)
    red["offer"] = event_ids(red["campaign"], red["coupon_upc"])
    red = _unknown(red, ~red["offer"].isin(coupon["offer"]), "coupon_upc",
                   "this coupon is not in coupon.csv for this campaign", sink)

    sink = sinks["hh_demographic.csv"]
    demo = _read(d, "hh_demographic.csv", sink)
    demo = sink.bad_mask(demo, demo["household_key"].duplicated(), "household_key",
                         "the household has two demographic rows")

    campaigns = pd.DataFrame({"id": camp["campaign"].to_numpy(),
                              "type": camp["description"].to_numpy(),
                              "start_day": camp["start_day"].to_numpy(dtype=np.int64),
                              "end_day": camp["end_day"].to_numpy(dtype=np.int64),
                              "_line": camp["_line"].to_numpy()})
    first = coupon.drop_duplicates("offer")
    offers = pd.DataFrame({"id": first["offer"].to_numpy(), "type": "coupon",
                           "upc": first["coupon_upc"].to_numpy(),
                           "_line": first["_line"].to_numpy()})
    users = demo.rename(columns={"household_key": "id", **DEMOGRAPHICS})
    users = users[["id", *DEMOGRAPHICS.values(), "_line"]].reset_index(drop=True)
    others = pd.concat([table["household_key"], red["household_key"]])
    others = others[~others.isin(users["id"])]

    problems = [pr for each in sinks.values() for pr in each.problems]
    data = SourceData("dunnhumby", [d / name for name in FILES], problems=problems,
                      options={"format": "dunnhumby"})
    data.nodes = [NodeFrame("Campaign", campaigns, files["campaign_desc.csv"]),
                  NodeFrame("Offer", offers, files["coupon.csv"]),
                  nodes_from_ids("Item", coupon["product_id"], files["coupon.csv"]),
                  NodeFrame("User", users, files["hh_demographic.csv"]),
                  nodes_from_ids("User", others, files["campaign_table.csv"])]
    data.edges = [
        EdgeFrame("INCLUDES", _edges(first["campaign"], first["offer"], first["offer"],
                                     first["_line"]), files["coupon.csv"]),
        EdgeFrame("APPLIES_TO", _edges(coupon["offer"], coupon["product_id"],
                                       event_ids(coupon["campaign"], coupon["coupon_upc"],
                                                 coupon["product_id"]),
                                       coupon["_line"]), files["coupon.csv"]),
        EdgeFrame("EXPOSED", _edges(table["household_key"], table["campaign"], table["eid"],
                                    table["_line"]), files["campaign_table.csv"]),
        EdgeFrame("COMPLETED", _edges(red["household_key"], red["offer"], red["eid"],
                                      red["_line"], red["day"] * DAY),
                  files["coupon_redempt.csv"]),
    ]
    data.validate()
    return data
