"""Explicit ratings: one ``user item rating`` triple per line, whitespace separated
(amazon-sports, SELFRec-style splits).

Graph mapping: every line is one ``RATED`` relationship (or the type given as ``rel``) from a
``User`` to an ``Item``, both created from their ids alone; ``value`` is the rating as a float and
``ts`` is missing (the format has no time). Ids are any text without whitespace. The event id is
``event_id(user, item)``: ``"<user>:<item>"`` with ``%`` and ``:`` inside an id escaped as ``%25``
and ``%3A`` (see :mod:`~shopgraph.graphdb.formats.common`), so the same pair read from any split
(train, valid, test) is the same event and no two pairs share one; a pair seen twice in one file is
a bad row. Blank lines are ignored; line numbers in problems are the file's physical lines. A
UTF-8 BOM before the first id is dropped; a line that is not UTF-8 is a bad row.

Memory: the events are streamed (:mod:`~shopgraph.graphdb.formats.useritem`): what stays in
memory is the distinct user and item ids plus one chunk of lines, whatever the number of events.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from shopgraph.graphdb import schema
from shopgraph.graphdb.formats.common import (
    RowSink,
    event_ids,
    quote,
    require_file,
)
from shopgraph.graphdb.formats.useritem import user_item_source
from shopgraph.graphdb.frames import SourceData

FIELDS = ("user", "item", "rating")


def _field(i: int) -> str:
    return FIELDS[min(i, len(FIELDS) - 1)]


def _chunk(first: int, lines: list[str], sink: RowSink) -> pd.DataFrame | None:
    """The (src, dst, eid, value, _line) rows of one chunk of lines; bad lines go to ``sink``."""
    users: list[str] = []
    items: list[str] = []
    ratings: list[str] = []
    linenos: list[int] = []
    bad: list[tuple[int, str, str]] = []
    k = len(FIELDS)
    for i, text in enumerate(lines):
        parts = text.split()
        if len(parts) == k:
            users.append(parts[0])
            items.append(parts[1])
            ratings.append(parts[2])
            linenos.append(first + i)
        elif parts:
            bad.append((first + i, _field(len(parts)),
                        f"expected {k} fields ({' '.join(FIELDS)}), got {len(parts)}"))
    value = pd.to_numeric(np.asarray(ratings, dtype=object), errors="coerce").astype(np.float64)
    ok = np.isfinite(value)
    for j in np.flatnonzero(~ok):
        what = "a number" if np.isnan(value[j]) else "a finite number"
        bad.append((linenos[j], "rating", f"expected {what}, got {quote(ratings[j])}"))
    sink.bad_rows(bad)
    if not ok.any():
        return None
    keep = np.flatnonzero(ok)
    src = pd.Series(np.asarray(users, dtype=object)[keep], dtype="str")
    dst = pd.Series(np.asarray(items, dtype=object)[keep], dtype="str")
    return pd.DataFrame({"src": src, "dst": dst, "eid": event_ids(src, dst),
                         "value": value[keep],
                         "_line": np.asarray(linenos, dtype=np.int64)[keep]})


def load_ratings(path: str | Path, *, strict: bool = True, rel: str = "RATED",
                 name: str | None = None) -> SourceData:
    """Parse a ``user item rating`` file, a chunk of lines at a time.

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
    return user_item_source(p, sink, _chunk, _field, fmt="ratings", rel=rel, name=name,
                            nothing="no ratings found in the file",
                            duplicate="the same (user, item) pair appears twice")
