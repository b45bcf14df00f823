"""Helpers shared by the format loaders: reading text safely, bad-row handling, derived nodes and
event ids.

Event ids
    :func:`event_id` and :func:`event_ids` (from :mod:`shopgraph.eventids`, which the simulator
    shares) escape each part's ``%`` and ``:`` and join the parts with ``:``.

Reading text
    Files are UTF-8; a byte-order mark at the start is dropped. A line that is not UTF-8 is a bad
    row named by file, line, field and column, the column counted in bytes from 1 (it is where
    the first undecodable byte sits). Values quoted in messages are cut by :func:`quote`.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shopgraph.errors import IngestError, quote, shorten
from shopgraph.eventids import escape_part as escape_part  # re-exported for the loaders
from shopgraph.eventids import event_id as event_id
from shopgraph.eventids import event_ids as event_ids
from shopgraph.graphdb.frames import (
    NodeFrame,
    Problem,
)

#: bytes of whole lines read at a time by the line-based readers (a longer line is read whole)
CHUNK_BYTES = 1 << 20
#: a non-negative integer id: ASCII digits only (``str.isdigit`` also takes ``'١٢'`` and ``'²'``)
ASCII_INT = re.compile(r"[0-9]+")


class RowSink:
    """Collects bad rows: raises on the first in strict mode, records them otherwise.

    Args:
        file: the input file's name, used in messages.
        strict: raise :class:`IngestError` on the first bad row instead of skipping it.
    """

    def __init__(self, file: str | Path, strict: bool) -> None:
        self.file = str(file)
        self.strict = strict
        self.problems: list[Problem] = []

    def bad(self, line: int, fieldname: str, message: str) -> None:
        """Report one bad row."""
        if self.strict:
            raise IngestError(message + "; fix the row, or ingest without --strict to skip it",
                              file=self.file, line=line, field=fieldname)
        self.problems.append(Problem(self.file, line, fieldname, message))

    def bad_rows(self, rows: Sequence[tuple[int, str, str]]) -> None:
        """Report several bad rows (line, field, message) in line order."""
        for line, fieldname, message in sorted(rows, key=lambda r: r[0]):
            self.bad(line, fieldname, message)

    def bad_mask(self, df: pd.DataFrame, mask: pd.Series, fieldname: str, message: str,
                 line_col: str = "_line") -> pd.DataFrame:
        """Report every row where ``mask`` is true and return the frame without them (``df``
        itself when no row is bad)."""
        mask = mask.fillna(True).astype(bool)
        if not mask.any():
            return df
        for line in df.loc[mask, line_col].to_numpy()[: 1 if self.strict else None]:
            self.bad(int(line), fieldname, message)
        return df.loc[~mask]


def require_file(path: str | Path) -> Path:
    """Return ``path`` as a Path if it is a non-empty file, else raise :class:`IngestError`."""
    p = Path(path)
    if not p.is_file():
        raise IngestError("no such file; check the path", file=str(p))
    if p.stat().st_size == 0:
        raise IngestError("the file is empty; nothing to ingest", file=str(p))
    return p


def require_columns(df: pd.DataFrame, columns: Sequence[str], file: str) -> None:
    """Raise :class:`IngestError` naming the first missing column."""
    for col in columns:
        if col not in df.columns:
            have = ", ".join(shorten(c) for c in df.columns)
            raise IngestError(f"missing column; the file has: {shorten(have, 200)}",
                              file=file, line=1, field=col)


def nodes_from_ids(label: str, ids: pd.Series | np.ndarray, file: str = "") -> NodeFrame:
    """A node frame holding just the distinct ids, in first-seen order (no properties).

    ``pd.unique`` builds a hash table of the distinct ids: memory in proportion to the node
    frame it returns (about 100 bytes per distinct id), not to the number of rows.
    """
    uniq = pd.unique(pd.Series(ids, dtype=str))
    return NodeFrame(label, pd.DataFrame({"id": uniq, "_line": np.zeros(len(uniq), np.int64)}),
                     file)


def missing_ts(n: int) -> pd.api.extensions.ExtensionArray:
    """``n`` missing timestamps as a pandas ``Int64`` array (no Python object per row)."""
    return pd.arrays.IntegerArray(np.zeros(n, np.int64), np.ones(n, bool))


def repeats(values: pd.Series, slice_rows: int = 1 << 18) -> np.ndarray:
    """Boolean mask of the rows that repeat an earlier row's value (``duplicated(keep="first")``).

    Rows are grouped by a uint64 hash (pandas' SipHash of the text, ``slice_rows`` at a time)
    with a stable sort; every row after the first of its group is then compared with that first
    row by value, a slice at a time, and a group whose hash two different values share is
    resolved exactly. About 25 bytes per row at the peak (plus some per repeated row) and no
    Python object per row beyond one slice (pandas' ``duplicated`` on Arrow strings builds a hash
    table of the values: over 100 bytes per row when most values differ).
    """
    n = len(values)
    h = np.empty(n, np.uint64)
    for i in range(0, n, slice_rows):
        part = values.iloc[i:i + slice_rows].to_numpy(dtype=object, na_value=None)
        h[i:i + slice_rows] = pd.util.hash_array(part, categorize=False)
    out = np.zeros(n, bool)
    if n < 2:
        return out
    order = np.argsort(h, kind="stable")  # equal hashes stay in file order
    sorted_h = h[order]
    del h
    later = np.flatnonzero(sorted_h[1:] == sorted_h[:-1]) + 1  # sorted positions, not 1st
    del sorted_h
    # a run of consecutive later positions belongs to the group that starts just before it
    run_start = np.concatenate([[True], later[1:] != later[:-1] + 1]) if later.size else later
    group_start = np.maximum.accumulate(np.where(run_start, later - 1, 0)) if later.size else later
    rows, firsts = order[later], order[group_start]
    del order
    values = values.reset_index(drop=True)
    unequal: list[np.ndarray] = []
    for i in range(0, len(rows), slice_rows):
        r, f = rows[i:i + slice_rows], firsts[i:i + slice_rows]
        same = (values.iloc[r].reset_index(drop=True)
                == values.iloc[f].reset_index(drop=True)).to_numpy(dtype=bool, na_value=False)
        out[r[same]] = True
        unequal.append(f[~same])
    clash = np.unique(np.concatenate(unequal)) if unequal else np.zeros(0, np.int64)
    if clash.size:  # a hash shared by different values (rare): decide those groups by value
        group = np.flatnonzero(np.isin(firsts, clash))
        idx = np.sort(np.concatenate([clash, rows[group]]))
        out[idx] = values.iloc[idx].duplicated(keep="first").to_numpy()
    return out


def numeric_column(df: pd.DataFrame, col: str, sink: RowSink, kind: str = "float",
                   required: bool = True) -> pd.DataFrame:
    """Convert ``col`` to numbers; rows that do not parse (or are empty when required) are bad.

    Only ASCII digits count (``pd.to_numeric`` rejects ``'١٢'`` and ``'²'``).
    """
    raw = df[col]
    num = pd.to_numeric(raw, errors="coerce")
    bad = num.isna() & (raw.notna() if not required else True)
    if kind == "int":
        bad = bad | (num.notna() & (num != np.floor(num.fillna(0))))
    bad = pd.Series(bad, index=df.index).fillna(True).astype(bool)
    what = "an integer" if kind == "int" else "a number"
    for line, value in df.loc[bad, ["_line", col]].to_numpy()[: 1 if sink.strict else None]:
        sink.bad(int(line), col, f"expected {what}, got {quote(value)}")
    df = df.loc[~bad].copy()
    num = num.loc[df.index]
    df[col] = num.astype("Int64") if kind == "int" else num.astype("float64")
    return df


# --- reading text ---------------------------------------------------------------------------

def _open_binary(p: Path) -> io.BufferedIOBase:
    return gzip.open(p, "rb") if p.name.lower().endswith(".gz") else open(p, "rb")


def utf8_error(raw: bytes, skipped: int = 0) -> tuple[int, str, str] | None:
    """Where ``raw`` (one line) is not UTF-8: ``(byte offset, text before it, description)``,
    or None when it decodes. ``skipped``: bytes dropped from the line's start (a BOM)."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start].decode("utf-8")
        col = skipped + exc.start + 1
        return exc.start, before, (f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at column {col} "
                                   f"(counted in bytes from 1) is {exc.reason}; save the file "
                                   "as UTF-8")
    return None


def field_index(before: str) -> int:
    """The 0-based whitespace-separated field that starts or continues after ``before``."""
    n = len(before.split())
    return n if n == 0 or before[-1].isspace() else n - 1


def iter_text_chunks(p: Path, sink: RowSink, field_name: Callable[[int], str],
                     chunk_bytes: int | None = None) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(number of the first line, decoded lines)`` for successive chunks of whole lines.

    Each chunk holds about ``chunk_bytes`` bytes (default: :data:`CHUNK_BYTES` at the time of
    the call; a longer line is read whole). A leading UTF-8
    BOM is dropped. A line that is not UTF-8 is reported to ``sink`` (field: ``field_name`` of
    the whitespace-separated field holding the bad byte) and yielded as an empty line. Line
    numbers count ``\\n``-terminated physical lines from 1; lines keep no ``\\n``.
    """
    lineno, bom = 1, 0
    with open(p, "rb") as fh:
        while raw := fh.readlines(chunk_bytes or CHUNK_BYTES):
            if lineno == 1 and raw[0].startswith(codecs.BOM_UTF8):
                raw[0], bom = raw[0][len(codecs.BOM_UTF8):], len(codecs.BOM_UTF8)
            try:
                lines = b"".join(raw).decode("utf-8").split("\n")[: len(raw)]
            except UnicodeDecodeError:
                lines, bad = [], []
                for k, line in enumerate(raw):
                    err = utf8_error(line, bom if lineno + k == 1 else 0)
                    if err is None:
                        lines.append(line.decode("utf-8").rstrip("\n"))
                        continue
                    bad.append((lineno + k, field_name(field_index(err[1])), err[2]))
                    lines.append("")
                sink.bad_rows(bad)
            yield lineno, lines
            lineno += len(raw)


def read_fields(p: Path, sink: RowSink, names: Sequence[str]) -> pd.DataFrame:
    """Split a whitespace-separated text file into string fields, a chunk of lines at a time.

    Returns one row per non-blank line: columns ``0 .. k-1`` (``None`` past the end of a short
    line), ``_line`` (1-based physical line) and ``_n`` (number of fields on the line). A line
    that is not UTF-8 is reported to ``sink`` (its field named from ``names``) and left out.
    """
    def name(i: int) -> str:
        return names[min(i, len(names) - 1)]

    parts = []
    for first, lines in iter_text_chunks(p, sink, name):
        fields = pd.Series(lines, dtype=object).str.split(expand=True)
        if fields.shape[1] == 0:
            fields = pd.DataFrame(index=range(len(lines)))
        fields["_n"] = fields.notna().sum(axis=1).astype(np.int64)
        fields["_line"] = np.arange(first, first + len(lines), dtype=np.int64)
        parts.append(fields.loc[fields["_n"] > 0])
    if not parts:
        return pd.DataFrame({"_n": np.zeros(0, np.int64), "_line": np.zeros(0, np.int64)})
    out = pd.concat(parts, ignore_index=True)
    fixed = [c for c in out.columns if c not in ("_n", "_line")]
    return out[[*fixed, "_n", "_line"]]


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


def _csv_field(before: str, header: list[str]) -> str:
    """The header's column of the field that ``before`` (a record's text so far) ends in."""
    try:
        idx = len(next(csv.reader([before]), [""])) - 1 if before else 0
    except csv.Error:
        idx = before.count(",")
    return header[min(idx, len(header) - 1)].strip() if header else str(idx)


def csv_utf8_errors(p: Path, sink: RowSink, stop: int | None = None) -> set[int]:
    """Report every line of the CSV ``p`` that is not UTF-8 and return their numbers.

    The field is the header's column holding the bad byte: the record's text before it is
    parsed as CSV, from the record's first line when a quoted field spans lines (told by an odd
    number of ``"`` so far). A bad header raises in any mode. Memory: one record at a time.
    ``stop``: look at the first ``stop`` lines only.
    """
    bad: dict[int, tuple[str, str]] = {}
    header: list[str] = []
    record = ""  # the text of a record still open (inside quotes) at the end of the last line
    with _open_binary(p) as fh:
        for lineno, raw in enumerate(fh, start=1):
            if stop is not None and lineno > stop:
                break
            skipped = 0
            if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
                raw, skipped = raw[len(codecs.BOM_UTF8):], len(codecs.BOM_UTF8)
            err = utf8_error(raw, skipped)
            if lineno == 1:
                if err is not None:
                    raise IngestError(err[2] + " (in the header line)", file=str(p), line=1)
                header = next(csv.reader([raw.decode("utf-8")]), [])
                continue
            if err is not None:
                bad[lineno] = (_csv_field(record + err[1], header), err[2])
            record += raw.decode("utf-8", errors="replace")
            if record.count('"') % 2 == 0:
                record = ""
    sink.bad_rows([(line, name, msg) for line, (name, msg) in bad.items()])
    return set(bad)


def read_csv_text(p: Path, sink: RowSink, **kwargs: Any) -> tuple[pd.DataFrame, set[int]]:
    """``pd.read_csv(p, encoding="utf-8-sig", **kwargs)``, and the lines that are not UTF-8.

    A file that is not all UTF-8 is scanned for its bad lines (reported to ``sink``: strict mode
    raises on the first), then read again with those bytes replaced; the caller drops the rows
    on the returned lines.
    """
    try:
        return pd.read_csv(p, encoding="utf-8-sig", **kwargs), set()
    except UnicodeDecodeError:
        bad = csv_utf8_errors(p, sink)
    return pd.read_csv(p, encoding="utf-8-sig", encoding_errors="replace", **kwargs), bad


_SKIPPED = re.compile(r"Skipping line (\d+): expected \d+ fields, saw (\d+)")


def read_csv_rows(p: Path, columns: Sequence[str], sink: RowSink) -> pd.DataFrame:
    """Read a CSV with a header as stripped strings, check ``columns``, add ``_line``.

    ``_line`` is the physical line (header = 1). A line with too many fields, or one that is not
    UTF-8, is a bad row (blamed on the last column, or the column holding the bad byte); blank
    lines are dropped. Other columns are ignored. A BOM before the header is dropped.
    """
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            df, not_utf8 = read_csv_text(p, sink, dtype=str, keep_default_na=False,
                                         skip_blank_lines=False, on_bad_lines="warn")
    except pd.errors.ParserError as exc:
        raise IngestError(f"cannot parse as CSV: {shorten(exc, 200)}", file=str(p)) from exc
    except pd.errors.EmptyDataError as exc:
        raise IngestError("no header line; nothing to ingest", file=str(p)) from exc
    df.columns = [str(c).strip() for c in df.columns]
    require_columns(df, columns, str(p))
    skipped = [(int(m[1]), m[2]) for w in caught for m in _SKIPPED.finditer(str(w.message))]
    sink.bad_rows([(line, df.columns[-1], f"expected {len(df.columns)} fields, got {saw}")
                   for line, saw in skipped if line not in not_utf8])
    lines = np.arange(2, len(df) + len(skipped) + 2, dtype=np.int64)
    df = df[list(columns)].apply(lambda col: col.str.strip())
    df["_line"] = lines[~np.isin(lines, [line for line, _ in skipped])]
    blank = (df[list(columns)] == "").all(axis=1) | df["_line"].isin(list(not_utf8))
    return df.loc[~blank]


# --- ids ------------------------------------------------------------------------------------

#: what no id may hold: the C0 control characters U+0000-U+001F (U+001E and U+001F separate
#: fields inside derived keys; the others are invisible, or break lines in files and messages)
ID_CONTROL = re.compile(r"[\x00-\x1f]")


def control_char_ids(ids: pd.Series) -> pd.Series:
    """Boolean mask of the ``ids`` (text; NA is False) that hold a character of
    :data:`ID_CONTROL`."""
    found = ids.astype("string").str.contains(ID_CONTROL.pattern, regex=True)
    return found.fillna(False).astype(bool)


def control_char_error(what: str, value: object) -> str:
    """The bad-row message for ``value``, a ``what`` (an id) holding a control character: the
    first one, as U+XXXX, and its position (in characters, from 1)."""
    s = str(value)
    m = ID_CONTROL.search(s)
    at = f"U+{ord(m[0]):04X} at character {m.start() + 1}" if m else "a control character"
    return (f"{what} {quote(s)} holds {at}; ids may not hold control characters "
            "(U+0000-U+001F)")
