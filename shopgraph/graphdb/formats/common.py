"""Helpers shared by the format loaders: bad-row handling, derived nodes and event ids."""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from shopgraph.errors import IngestError
from shopgraph.graphdb.frames import NodeFrame, Problem


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

    def bad_mask(self, df: pd.DataFrame, mask: pd.Series, fieldname: str, message: str,
                 line_col: str = "_line") -> pd.DataFrame:
        """Report every row where ``mask`` is true and return the frame without them."""
        mask = mask.fillna(True).astype(bool)
        if mask.any():
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
            raise IngestError(f"missing column; the file has {list(df.columns)}",
                              file=file, line=1, field=col)


def nodes_from_ids(label: str, ids: pd.Series | np.ndarray, file: str = "") -> NodeFrame:
    """A node frame holding just the distinct ids, in first-seen order (no properties)."""
    uniq = pd.unique(pd.Series(ids, dtype=str))
    return NodeFrame(label, pd.DataFrame({"id": uniq, "_line": np.zeros(len(uniq), np.int64)}),
                     file)


def numeric_column(df: pd.DataFrame, col: str, sink: RowSink, kind: str = "float",
                   required: bool = True) -> pd.DataFrame:
    """Convert ``col`` to numbers; rows that do not parse (or are empty when required) are bad."""
    raw = df[col]
    num = pd.to_numeric(raw, errors="coerce")
    bad = num.isna() & (raw.notna() if not required else True)
    if kind == "int":
        bad = bad | (num.notna() & (num != np.floor(num.fillna(0))))
    df = sink.bad_mask(df, pd.Series(bad, index=df.index),
                       col, f"expected {'an integer' if kind == 'int' else 'a number'}")
    num = num.loc[df.index]
    df = df.copy()
    df[col] = num.astype("Int64") if kind == "int" else num.astype("float64")
    return df


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


_SKIPPED = re.compile(r"Skipping line (\d+): expected \d+ fields, saw (\d+)")


def read_csv_rows(p: Path, columns: Sequence[str], sink: RowSink) -> pd.DataFrame:
    """Read a CSV with a header as stripped strings, check ``columns``, add ``_line``.

    ``_line`` is the physical line (header = 1). A line with too many fields is a bad row (blamed
    on the last column); blank lines are dropped. Other columns are ignored.
    """
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            df = pd.read_csv(p, dtype=str, keep_default_na=False, skip_blank_lines=False,
                             encoding="utf-8", on_bad_lines="warn")
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise IngestError(f"cannot parse as CSV: {exc}", file=str(p)) from exc
    except pd.errors.EmptyDataError as exc:
        raise IngestError("no header line; nothing to ingest", file=str(p)) from exc
    df.columns = [str(c).strip() for c in df.columns]
    require_columns(df, columns, str(p))
    skipped = [(int(m[1]), m[2]) for w in caught for m in _SKIPPED.finditer(str(w.message))]
    for line, saw in skipped:
        sink.bad(line, df.columns[-1], f"expected {len(df.columns)} fields, got {saw}")
    lines = np.arange(2, len(df) + len(skipped) + 2, dtype=np.int64)
    df = df[list(columns)].apply(lambda col: col.str.strip())
    df["_line"] = lines[~np.isin(lines, [line for line, _ in skipped])]
    blank = (df[list(columns)] == "").all(axis=1)
    return df.loc[~blank]
