"""CDNOW purchase log (1997-1998): whitespace-separated ``customer date cds dollars`` rows.

Two layouts are accepted, told apart by the number of fields:

* ``CDNOW_master.txt``: ``customer_id date number_of_cds dollar_value`` (4 fields; the header
  line is optional);
* ``CDNOW_sample.txt``: ``master_id sample_id date number_of_cds dollar_value`` (5 fields, no
  header); ``sample_id`` is dropped, so a sampled row maps to the same event as in the master file.

Graph mapping: the log has no item ids, so every row is one ``PURCHASED`` relationship from the
``User`` (id = the zero-padded customer id as written, e.g. ``"00001"``) to the single catalogue
``Item`` ``"cdnow:any"`` ("any CD"), with ``value`` = dollar value, ``quantity`` = number of CDs
and ``ts`` = the date's UTC midnight in epoch seconds. Several rows can share a customer and date,
so the event id is ``event_id(customer, yyyymmdd, n)`` = ``"<customer>:<yyyymmdd>:<n>"`` (a
``%`` or ``:`` inside the customer id escaped as ``%25`` / ``%3A``; see
:mod:`~shopgraph.graphdb.formats.common`), ``n`` being the 0-based occurrence index of the row
within its (customer, date) in file order. Dates are eight ASCII digits. A UTF-8 BOM before the
first field is dropped; a line that is not UTF-8 is a bad row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from shopgraph.errors import IngestError
from shopgraph.graphdb.formats.common import (
    RowSink,
    check_width,
    event_ids,
    nodes_from_ids,
    numeric_column,
    read_fields,
    require_columns,
    require_file,
    shorten,
)
from shopgraph.graphdb.frames import EdgeFrame, NodeFrame, SourceData

MASTER = ("customer_id", "date", "number_of_cds", "dollar_value")
SAMPLE = ("master_id", "sample_id", "date", "number_of_cds", "dollar_value")
ITEM_ID = "cdnow:any"
_EPOCH = pd.Timestamp("1970-01-01")


def _layout(fields: pd.DataFrame, f: str) -> tuple[tuple[str, ...], pd.DataFrame]:
    """Pick the column names from the first line; drop the header line if there is one."""
    first = fields.iloc[0]
    n = int(first["_n"])
    if str(first[0]).lower() == "customer_id":
        header = pd.DataFrame(columns=[str(v) for v in first.iloc[:n]])
        require_columns(header, MASTER, f)
        if n != len(MASTER):
            raise IngestError(f"expected the header {' '.join(MASTER)}", file=f,
                              line=int(first["_line"]), field=shorten(first[n - 1]))
        return MASTER, fields.iloc[1:]
    if n == len(MASTER):
        return MASTER, fields
    if n == len(SAMPLE):
        return SAMPLE, fields
    raise IngestError(f"expected {len(MASTER)} fields ({' '.join(MASTER)}) or {len(SAMPLE)} "
                      f"({' '.join(SAMPLE)}), got {n}", file=f, line=int(first["_line"]))


def load_cdnow(path: str | Path, *, strict: bool = True) -> SourceData:
    """Parse ``CDNOW_master.txt`` or ``CDNOW_sample.txt``.

    Args:
        path: the file.
        strict: raise on the first bad row instead of skipping it.

    Returns:
        The customers, the one catalogue item and one ``PURCHASED`` relationship per row.
    """
    p = require_file(path)
    f = str(p)
    sink = RowSink(p, strict)
    fields = read_fields(p, sink, MASTER)
    data = SourceData("cdnow", [p], options={"format": "cdnow"})
    if fields.empty:
        sink.bad(1, "customer_id", "no purchases found in the file")
        data.problems = sink.problems
        return data
    names, fields = _layout(fields, f)
    df = check_width(fields, names, sink)
    user_col = names[0]
    # occurrence index before any row is dropped, so a skipped bad row shifts no event id
    df["_nth"] = df.groupby([user_col, "date"], sort=False).cumcount().to_numpy()
    df = sink.bad_mask(df, ~df["date"].str.fullmatch(r"[0-9]{8}"), "date",
                       "expected a date written YYYYMMDD")
    day = pd.to_datetime(df["date"], format="%Y%m%d", errors="coerce")
    df = sink.bad_mask(df, day.isna(), "date", "not a calendar date")
    df = numeric_column(df, "number_of_cds", sink, kind="int")
    df = sink.bad_mask(df, df["number_of_cds"] < 0, "number_of_cds", "expected a count >= 0")
    df = numeric_column(df, "dollar_value", sink)
    df = sink.bad_mask(df, ~np.isfinite(df["dollar_value"]), "dollar_value",
                       "expected a finite number")
    if df.empty:
        sink.bad(1, user_col, "no valid purchases found in the file")
        data.problems = sink.problems
        return data
    data.problems = sink.problems
    day = day.loc[df.index]
    out = pd.DataFrame({"src": df[user_col].astype(str).to_numpy(), "dst": ITEM_ID})
    out["eid"] = event_ids(out["src"], pd.Series(df["date"].to_numpy()),
                           pd.Series(df["_nth"].to_numpy()))
    out["ts"] = pd.array(((day - _EPOCH) // pd.Timedelta(seconds=1)).to_numpy(), dtype="Int64")
    out["value"] = df["dollar_value"].to_numpy(dtype=np.float64)
    out["quantity"] = df["number_of_cds"].to_numpy(dtype=np.int64)
    out["_line"] = df["_line"].to_numpy(dtype=np.int64)
    item = pd.DataFrame({"id": [ITEM_ID], "name": ["any CD"], "_line": [0]})
    data.nodes = [nodes_from_ids("User", out["src"], f), NodeFrame("Item", item, f)]
    data.edges = [EdgeFrame("PURCHASED", out, f)]
    data.validate()
    return data
