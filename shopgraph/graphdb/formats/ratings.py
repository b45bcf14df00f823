"""Explicit ratings: one ``user item rating`` triple per line, whitespace separated
(amazon-sports, SELFRec-style splits).

Graph mapping: every line is one ``RATED`` relationship (or the type given as ``rel``) from a
``User`` to an ``Item``, both created from their ids alone; ``value`` is the rating as a float and
``ts`` is missing (the format has no time). The event id is ``"<user>:<item>"``, so the same pair
read from any split (train, valid, test) is the same event; a pair seen twice in one file is a
bad row. Blank lines are ignored; line numbers in problems are the file's physical lines.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from shopgraph.graphdb import schema
from shopgraph.graphdb.formats.common import (
    RowSink,
    check_width,
    nodes_from_ids,
    numeric_column,
    read_fields,
    require_file,
)
from shopgraph.graphdb.frames import EdgeFrame, SourceData

FIELDS = ("user", "item", "rating")


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
