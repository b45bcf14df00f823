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

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from shopgraph.errors import IngestError
from shopgraph.graphdb import schema

EDGE_COLUMNS = ("src", "dst", "eid", "ts", "value")


@dataclass
class NodeFrame:
    """Nodes of one label."""

    label: str
    data: pd.DataFrame
    file: str = ""


@dataclass
class EdgeFrame:
    """Relationships of one type."""

    rel: str
    data: pd.DataFrame
    file: str = ""

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
            _check_edge_frame(ef)


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
        _fail(nf.file, df, dup, "id", f"duplicate {nf.label} id {ids[dup].iloc[0]!r}")


def _check_edge_frame(ef: EdgeFrame) -> None:
    schema.rel(ef.rel)
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
              f"duplicate event {df['eid'][dup].iloc[0]!r}: the same {ef.rel} event appears "
              "twice; remove the copy or ingest without --strict to skip it")
