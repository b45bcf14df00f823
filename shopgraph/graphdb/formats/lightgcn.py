"""LightGCN edge lists: one line per user, ``user item item ...`` (gowalla, lastfm).

Each (user, item) pair is one implicit-feedback event (``INTERACTED``); its event id is
``event_id(user, item)`` = ``"<user>:<item>"`` (see :mod:`~shopgraph.graphdb.formats.common`; ids
here are digits, so nothing is ever escaped), and the same pair read from any file is the same
event. Ids are non-negative integers written in ASCII digits, kept as written (``"007"`` stays);
any other token (``'١٢'``, ``'²'``, ``'-1'``) makes its line bad. A line with only a user is a
user without items in this split. The same pair twice is a bad row (the later one). A UTF-8 BOM
before the first id is dropped; a line that is not UTF-8 is a bad row (file, line, field and
the bad byte's column).

Memory: the events are streamed (:mod:`~shopgraph.graphdb.formats.useritem`): what stays in
memory is the distinct user and item ids plus one chunk of lines, whatever the number of events.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from shopgraph.graphdb.formats.common import (
    ASCII_INT,
    RowSink,
    event_ids,
    quote,
    require_file,
)
from shopgraph.graphdb.formats.useritem import user_item_source
from shopgraph.graphdb.frames import SourceData

#: a line of ASCII-digit tokens (``\s`` is the whitespace ``str.split`` splits on)
_ALL_INTS = re.compile(r"\s*[0-9]+(?:\s+[0-9]+)*\s*")


def _field(i: int) -> str:
    return "user" if i == 0 else f"item[{i}]"


def _chunk(first: int, lines: list[str], sink: RowSink) -> pd.DataFrame | None:
    """The (src, dst, _line) rows of one chunk of lines; bad lines go to ``sink``."""
    users: list[str] = []
    counts: list[int] = []
    linenos: list[int] = []
    items: list[str] = []
    bad: list[tuple[int, str, str]] = []
    for k, text in enumerate(lines):
        parts = text.split()
        if not parts:
            continue
        if not _ALL_INTS.fullmatch(text):
            i = next(i for i, tok in enumerate(parts) if not ASCII_INT.fullmatch(tok))
            bad.append((first + k, _field(i), "expected a non-negative integer id (ASCII digits "
                        f"0-9), got {quote(parts[i])}"))
            continue
        if len(parts) == 1:
            continue  # a user without items in this split
        users.append(parts[0])
        counts.append(len(parts) - 1)
        linenos.append(first + k)
        items.extend(parts[1:])
    sink.bad_rows(bad)
    if not items:
        return None
    n = np.asarray(counts, dtype=np.int64)
    src = pd.Series(np.repeat(np.asarray(users, dtype=object), n), dtype="str")
    dst = pd.Series(items, dtype="str")
    return pd.DataFrame({"src": src, "dst": dst, "eid": event_ids(src, dst),
                         "_line": np.repeat(np.asarray(linenos, dtype=np.int64), n)})


def load_lightgcn(path: str | Path, *, strict: bool = True, rel: str = "INTERACTED",
                  name: str | None = None) -> SourceData:
    """Parse a LightGCN ``user item item ...`` file, a chunk of lines at a time.

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
    return user_item_source(p, sink, _chunk, _field, fmt="lightgcn", rel=rel, name=name,
                            nothing="no interactions found in the file",
                            duplicate="the same item appears twice for this user")
