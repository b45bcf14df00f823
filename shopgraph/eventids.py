"""Event ids: one unambiguous text per event, built from its parts.

An event id joins its parts with ``:``. Each part is escaped first, ``%`` as ``%25`` and ``:`` as
``%3A`` (in that order), so ``("a:b", "c")`` and ``("a", "b:c")`` get different ids (``a%3Ab:c``
and ``a:b%3Ac``) and an id splits back into its parts unambiguously. A part with neither ``%``
nor ``:`` is kept as it is. The ingest layer (:mod:`shopgraph.graphdb.formats`) and the simulator
both build their ids here, so a simulated shop's ids are the ingest layer's by construction.
"""

from __future__ import annotations

import re

import pandas as pd

_NEEDS_ESCAPE = re.compile(r"[%:]")


def escape_part(part: object) -> str:
    """One event-id part as text with ``%`` written ``%25`` and ``:`` written ``%3A``."""
    s = str(part)
    return s.replace("%", "%25").replace(":", "%3A") if _NEEDS_ESCAPE.search(s) else s


def event_id(*parts: object) -> str:
    """The event id of ``parts``: each escaped by :func:`escape_part`, joined with ``:``.

    >>> event_id("a:b", "c"), event_id("a", "b:c"), event_id("u1", 7)
    ('a%3Ab:c', 'a:b%3Ac', 'u1:7')
    """
    return ":".join(escape_part(p) for p in parts)


def event_ids(*parts: pd.Series | str) -> pd.Series:
    """:func:`event_id` row by row: Series parts aligned by position, a str part repeated.

    At least one part must be a Series; the result has its index and the ``str`` dtype.
    """
    series = [p for p in parts if isinstance(p, pd.Series)]
    if not series:
        raise ValueError("event_ids needs at least one pandas Series part")
    index = series[0].index
    out: pd.Series | None = None
    for part in parts:
        if isinstance(part, pd.Series):
            s = pd.Series(part.array, index=index).astype("str")
            if s.str.contains("%", regex=False).any() or s.str.contains(":", regex=False).any():
                s = s.str.replace("%", "%25", regex=False).str.replace(":", "%3A", regex=False)
        else:
            s = pd.Series(escape_part(part), index=index, dtype="str")
        out = s if out is None else out + ":" + s
    assert out is not None
    return out
