"""Helpers shared by the format loaders: bad-row handling, derived nodes and event ids."""

from __future__ import annotations

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


def require_columns(df: pd.DataFrame, columns: list[str] | tuple[str, ...], file: str) -> None:
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
