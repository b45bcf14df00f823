"""LightGCN edge lists: one line per user, ``user item item ...`` (gowalla, lastfm).

Each (user, item) pair is one implicit-feedback event (``INTERACTED``); its event id is
``"<user>:<item>"``, so the same pair read from any file is the same event.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from shopgraph.graphdb.formats.common import RowSink, nodes_from_ids, require_file
from shopgraph.graphdb.frames import EdgeFrame, SourceData


def load_lightgcn(path: str | Path, *, strict: bool = True, rel: str = "INTERACTED",
                  name: str | None = None) -> SourceData:
    """Parse a LightGCN ``user item item ...`` file.

    Args:
        path: the file.
        strict: raise on the first malformed line instead of skipping it.
        rel: the relationship type to write (default: ``INTERACTED``).
        name: the source's name (default: the parent folder's name).

    Returns:
        Users, items and one relationship per (user, item) pair.
    """
    p = require_file(path)
    sink = RowSink(p, strict)
    users: list[np.ndarray] = []
    items: list[np.ndarray] = []
    lines: list[np.ndarray] = []
    with open(p, encoding="utf-8") as fh:
        for lineno, text in enumerate(fh, start=1):
            parts = text.split()
            if not parts:
                continue
            if not all(tok.isdigit() for tok in parts):
                bad = next(i for i, tok in enumerate(parts) if not tok.isdigit())
                sink.bad(lineno, "user" if bad == 0 else f"item[{bad}]",
                         f"expected a non-negative integer id, got {parts[bad]!r}")
                continue
            if len(parts) == 1:
                continue  # a user without items in this split
            ids = np.asarray(parts[1:])
            items.append(ids)
            users.append(np.full(len(ids), parts[0], dtype=object))
            lines.append(np.full(len(ids), lineno, dtype=np.int64))
    if not items:
        sink.bad(1, "user", "no interactions found in the file")
        return SourceData(name or p.parent.name, [p], problems=sink.problems)
    df = pd.DataFrame({"src": np.concatenate(users).astype(str),
                       "dst": np.concatenate(items).astype(str),
                       "_line": np.concatenate(lines)})
    dup = df.duplicated(["src", "dst"], keep="first")
    df = sink.bad_mask(df, dup, "item", "the same item appears twice for this user")
    df["eid"] = df["src"] + ":" + df["dst"]
    df["ts"] = pd.array([pd.NA] * len(df), dtype="Int64")
    df["value"] = np.nan
    data = SourceData(name or p.parent.name, [p], problems=sink.problems,
                      options={"format": "lightgcn", "rel": rel})
    data.nodes = [nodes_from_ids("User", df["src"], str(p)),
                  nodes_from_ids("Item", df["dst"], str(p))]
    data.edges = [EdgeFrame(rel, df.reset_index(drop=True), str(p))]
    data.validate()
    return data
