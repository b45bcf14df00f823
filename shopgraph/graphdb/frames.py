"""The tables a format loader hands to ingest: nodes and relationships as pandas frames.

Every loader in :mod:`shopgraph.graphdb.formats` parses its files into a :class:`SourceData`
and validates them on the way; ingest then writes the frames in batches. Columns:

* :class:`NodeFrame` ``data``: ``id`` (str) plus property columns named in
  :data:`shopgraph.graphdb.schema.NODE_PROPERTIES` for the label, and ``_line`` (int, the
  1-based line or row of the input file the node came from, 0 when derived).
* :class:`EdgeFrame` ``data``: ``src`` and ``dst`` (str ids of the end nodes), ``eid`` (str,
  a stable event id: the same real-world event always gets the same id), ``ts`` (pandas
  ``Int64``, seconds since the epoch, may be missing), ``value`` (float64, may be NaN),
  optional columns from :data:`shopgraph.graphdb.schema.REL_PROPERTIES`, and ``_line``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from shopgraph.errors import IngestError, quote
from shopgraph.graphdb import schema

EDGE_COLUMNS = ("src", "dst", "eid", "ts", "value")


@dataclass
class NodeFrame:
    """Nodes of one label."""

    label: str
    data: pd.DataFrame
    file: str = ""


#: produces a streamed frame's rows, a chunk at a time (a fresh pass over the file per call)
ChunkReader = Callable[[], Iterator[pd.DataFrame]]


class EdgeFrame:
    """Relationships of one type: held in memory (``data``), or streamed from a file.

    A streamed frame (``reader`` given) holds no rows: :meth:`chunks` reads them again, a chunk
    at a time, each time it is called, and ``rows`` says how many there are. Its loader has
    validated every chunk already, and every end id of a streamed frame is among the source's
    own nodes. Reading :attr:`data` of a streamed frame concatenates all its chunks (memory in
    proportion to the file: for tests and small files; ingest uses :meth:`chunks`).

    Args:
        rel: the relationship type.
        data: the rows (in-memory frames).
        file: the input file's name, for messages.
        reader: the streamed rows' chunk reader.
        rows: the number of rows ``reader`` yields in all.
    """

    def __init__(self, rel: str, data: pd.DataFrame | None = None, file: str = "", *,
                 reader: ChunkReader | None = None, rows: int = 0) -> None:
        if (data is None) == (reader is None):
            raise ValueError("an EdgeFrame takes either data or a reader")
        self.rel, self.file = rel, file
        self._data, self._reader, self._rows = data, reader, rows

    def __repr__(self) -> str:
        how = "streamed" if self.streamed else "in memory"
        return f"EdgeFrame({self.rel}, {self.rows} rows {how}, file={self.file!r})"

    @property
    def streamed(self) -> bool:
        """Whether the rows are read from the file on demand."""
        return self._reader is not None

    @property
    def rows(self) -> int:
        """Number of relationships."""
        return len(self._data) if self._data is not None else self._rows

    @property
    def data(self) -> pd.DataFrame:
        """All rows as one frame (a streamed frame reads and concatenates its chunks)."""
        if self._data is not None:
            return self._data
        parts = list(self.chunks())
        if not parts:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in (*EDGE_COLUMNS, "_line")})
        return pd.concat(parts, ignore_index=True)

    @data.setter
    def data(self, value: pd.DataFrame) -> None:
        self._data, self._reader = value, None

    def chunks(self) -> Iterator[pd.DataFrame]:
        """The rows, a chunk at a time (an in-memory frame is one chunk)."""
        if self._reader is None:
            assert self._data is not None
            yield self._data
        else:
            yield from self._reader()

    @property
    def src_label(self) -> str:
        """Label of the start nodes."""
        return schema.RELATIONSHIPS[self.rel][0]

    @property
    def dst_label(self) -> str:
        """Label of the end nodes."""
        return schema.RELATIONSHIPS[self.rel][1]


@dataclass
class Problem:
    """One rejected input row: where it was and why."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: field '{self.field}': {self.message}"


@dataclass
class SourceData:
    """Everything one loader parsed from its input files.

    Args:
        name: a short name for the source, e.g. ``"gowalla"``.
        files: the input files, hashed into the ingest fingerprint.
        nodes: node frames; nodes are written before relationships.
        edges: relationship frames.
        problems: rows rejected while parsing (only in skip mode; strict mode raises instead).
        options: loader options that change the result (hashed into the fingerprint).
    """

    name: str
    files: list[Path]
    nodes: list[NodeFrame] = field(default_factory=list)
    edges: list[EdgeFrame] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    options: dict[str, object] = field(default_factory=dict)

    def validate(self) -> None:
        """Check labels, types, columns and keys of every frame; raise :class:`IngestError`."""
        for nf in self.nodes:
            _check_node_frame(nf)
        for ef in self.edges:
            check_edge_frame(ef)


def _fail(frame_file: str, df: pd.DataFrame, mask: pd.Series, fieldname: str, msg: str) -> None:
    bad = df.loc[mask]
    line = int(bad["_line"].iloc[0]) if "_line" in bad and len(bad) else None
    raise IngestError(f"{msg} ({int(mask.sum())} row(s) in all)", file=frame_file or None,
                      line=line, field=fieldname)


def _check_node_frame(nf: NodeFrame) -> None:
    schema.label(nf.label)
    df = nf.data
    if "id" not in df or "_line" not in df:
        raise IngestError(f"{nf.label} frame lacks the 'id' or '_line' column", file=nf.file)
    allowed = schema.NODE_PROPERTIES[nf.label]
    extra = set(df.columns) - set(allowed) - {"id", "_line"}
    if extra:
        raise IngestError(f"{nf.label} has no properties {sorted(extra)}; allowed: "
                          f"{sorted(allowed)}", file=nf.file, field=sorted(extra)[0])
    ids = df["id"]
    empty = ids.isna() | (ids.astype(str).str.len() == 0)
    if empty.any():
        _fail(nf.file, df, empty, "id", f"empty {nf.label} id; every row needs one")
    dup = ids.duplicated(keep="first")
    if dup.any():
        _fail(nf.file, df, dup, "id", f"duplicate {nf.label} id {quote(ids[dup].iloc[0])}")


def check_edge_frame(ef: EdgeFrame) -> None:
    schema.rel(ef.rel)
    if ef.streamed:
        return  # its loader validated every chunk as it read the file
    df = ef.data
    missing = [c for c in (*EDGE_COLUMNS, "_line") if c not in df]
    if missing:
        raise IngestError(f"{ef.rel} frame lacks columns {missing}", file=ef.file)
    extra = set(df.columns) - set(EDGE_COLUMNS) - set(schema.REL_PROPERTIES) - {"_line"}
    if extra:
        raise IngestError(f"{ef.rel} relationships have no properties {sorted(extra)}",
                          file=ef.file, field=sorted(extra)[0])
    for col in ("src", "dst", "eid"):
        empty = df[col].isna() | (df[col].astype(str).str.len() == 0)
        if empty.any():
            _fail(ef.file, df, empty, col, f"empty {col} in a {ef.rel} row")
    dup = df["eid"].duplicated(keep="first")
    if dup.any():
        _fail(ef.file, df, dup, "eid",
              f"duplicate event {quote(df['eid'][dup].iloc[0])}: the same {ef.rel} event appears "
              "twice; remove the copy or ingest without --strict to skip it")
