"""Explicit ratings: one ``user item rating`` triple per line, whitespace separated
(amazon-sports, SELFRec-style splits).

Graph mapping: every line is one ``RATED`` relationship (or the type given as ``rel``) from a
``User`` to an ``Item``, both created from their ids alone; ``value`` is the rating as a float and
``ts`` is missing (the format has no time). The event id is ``"<user>:<item>"``, so the same pair
read from any split (train, valid, test) is the same event; a pair seen twice in one file is a
bad row. Blank lines are ignored; line numbers in problems are the file's physical lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from shopgraph.errors import IngestError
from shopgraph.graphdb import schema
from shopgraph.graphdb.formats.common import (
    RowSink,
    nodes_from_ids,
    numeric_column,
    require_file,
)
from shopgraph.graphdb.frames import EdgeFrame, SourceData

FIELDS = ("user", "item", "rating")


def read_fields(p: Path) -> pd.DataFrame:
    """Split a whitespace-separated text file into string fields, without per-line Python.

    Returns one row per non-blank line: columns ``0 .. k-1`` (``None`` past the end of a short
    line), ``_line`` (1-based physical line) and ``_n`` (number of fields on the line).
    """
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise IngestError(f"not UTF-8 text ({exc.reason} at byte {exc.start})",
                          file=str(p)) from exc
    lines = pd.Series(text.split("\n"), dtype=object)
    fields = lines.str.split(expand=True)
    if fields.shape[1] == 0:
        fields = pd.DataFrame(index=lines.index)
    fields["_n"] = fields.notna().sum(axis=1).astype(np.int64)
    fields["_line"] = np.arange(1, len(lines) + 1, dtype=np.int64)
    return fields.loc[fields["_n"] > 0]


def check_width(df: pd.DataFrame, names: Sequence[str], sink: RowSink) -> pd.DataFrame:
    """Report lines whose field count is not ``len(names)``; return the rest, columns named.

    A short line is blamed on its first missing field, a long one on the last expected field.
    """
    k = len(names)
    bad = df["_n"] != k
    if bad.any():
        rows = df.loc[bad, ["_line", "_n"]].to_numpy()
        for line, n in rows[: 1 if sink.strict else None]:
            sink.bad(int(line), names[n] if n < k else names[-1],
                     f"expected {k} fields ({' '.join(names)}), got {n}")
        df = df.loc[~bad]
    out = df.reindex(columns=list(range(k)))
    out.columns = list(names)
    out["_line"] = df["_line"].to_numpy()
    return out


def load_ratings(path: str | Path, *, strict: bool = True, rel: str = "RATED",
                 name: str | None = None) -> SourceData:
    """Parse a ``user item rating`` file.

    Args:
        path: the file.
        strict: raise on the first malformed line instead of skipping it.
        rel: the user-item relationship type to write (default: ``RATED``).
        name: the source's name (default: the parent folder's name).

    Returns:
        Users, items and one relationship per (user, item) pair, ``value`` = rating.
    """
    if schema.rel(rel) not in schema.USER_ITEM_TYPES:
        raise ValueError(f"{rel} does not link a User to an Item; use one of "
                         f"{', '.join(schema.USER_ITEM_TYPES)}")
    p = require_file(path)
    sink = RowSink(p, strict)
    df = check_width(read_fields(p), FIELDS, sink)
    df = numeric_column(df, "rating", sink)
    df = sink.bad_mask(df, ~np.isfinite(df["rating"]), "rating", "expected a finite number")
    dup = df.duplicated(["user", "item"], keep="first")
    df = sink.bad_mask(df, dup, "item", "the same (user, item) pair appears twice")
    data = SourceData(name or p.parent.name, [p], options={"format": "ratings", "rel": rel})
    if df.empty:
        sink.bad(1, "user", "no ratings found in the file")
        data.problems = sink.problems
        return data
    out = pd.DataFrame({"src": df["user"].astype(str).to_numpy(),
                        "dst": df["item"].astype(str).to_numpy()})
    out["eid"] = out["src"] + ":" + out["dst"]
    out["ts"] = pd.array([pd.NA] * len(out), dtype="Int64")
    out["value"] = df["rating"].to_numpy(dtype=np.float64)
    out["_line"] = df["_line"].to_numpy(dtype=np.int64)
    data.problems = sink.problems
    data.nodes = [nodes_from_ids("User", out["src"], str(p)),
                  nodes_from_ids("Item", out["dst"], str(p))]
    data.edges = [EdgeFrame(rel, out, str(p))]
    data.validate()
    return data
