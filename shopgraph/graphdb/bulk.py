"""Bulk first load: an empty database filled by the database's own offline loader, not by
row-by-row Bolt transactions (:mod:`~shopgraph.graphdb.ingest`).

The result is the graph :func:`~shopgraph.graphdb.ingest.ingest` would have written: the same
nodes, relationships and properties (``eid`` included; a missing value is no property, a type is
the one the row-by-row path sends), the same uniqueness constraints and schema version, and the
same ledger entry (every batch of the source marked done), so that running the same ingest again
writes nothing and a new file is appended by the normal ingest. It only loads an **empty**
database (no node but the schema version's) and needs it to itself while it runs; anything else
is refused before anything is written, as is input the normal ingest would reject (same checks:
:func:`~shopgraph.graphdb.ingest.check_source`, then every end id). The backend is told by the
store's capability check:

* **ArcadeDB** (the embedded server): the rows are written as JSON lines and ArcadeDB's
  ``GraphImporter`` builds the database from them offline (:meth:`EmbeddedServer.import_graph
  <shopgraph.graphdb.server.EmbeddedServer.import_graph>`); then the constraints are created
  (indexes built over the loaded data), the ledger written and, where given, one journal entry
  with every user that got user->item edges. The importer stores a missing number as 0, so rows
  are grouped by which numbers they carry (one edge source per group), and a node property that
  some rows lack (or whose values mix types) is set afterwards by the normal ``MERGE`` batches.
* **Neo4j**: ``neo4j-admin database import full`` must run on the database's host with the
  database stopped, which shopgraph cannot do; :func:`write_neo4j_import` writes its CSV files
  (one per label and per type, an id space per label) and the Cypher of the step after it
  (constraints, schema version, ledger), and :func:`bulk_load` raises
  :class:`BulkImportPending` naming them. See ``docs/bulk-load.md``.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import neo4j
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shopgraph.errors import GraphStoreError, IngestError, quote
from shopgraph.graphdb import cypher, schema
from shopgraph.graphdb.frames import EdgeFrame, NodeFrame, SourceData
from shopgraph.graphdb.ingest import (
    IngestSummary,
    Progress,
    check_references,
    check_source,
    ledger_keys,
    node_rows,
    source_fingerprint,
)
from shopgraph.graphdb.journal import start_journal, write_journal_entry
from shopgraph.graphdb.server import EmbeddedServer
from shopgraph.graphdb.store import GraphStore

#: Rows turned into text at a time (memory: a few hundred MB of Arrow strings at most).
CHUNK_ROWS = 500_000
#: Node rows per ``MERGE`` transaction when properties are set after the import.
MERGE_BATCH = 10_000
#: The importer's prefix of each kind of value (a string has none).
_SPEC = {"long": "long:", "double": "double:", "bool": "bool:", "str": ""}
#: The ``neo4j-admin import`` header type of each kind.
_NEO4J_TYPE = {"long": "long", "double": "double", "bool": "boolean", "str": "string"}
_CONTROL = r"[\x00-\x1f]"
#: Told the number of rows just written out.
Step = Callable[[int], None]


class BulkImportPending(GraphStoreError):
    """The bulk load's files are written but must be imported by a tool shopgraph cannot run
    (``neo4j-admin``); the message says how.

    Args:
        folder: where the files are.
    """

    def __init__(self, message: str, folder: Path) -> None:
        super().__init__(message)
        self.folder = folder


# -- values as the row-by-row path sends them ------------------------------------------------

def value_kind(values: pd.Series) -> str | None:
    """``"long"``, ``"double"``, ``"bool"`` or ``"str"``: the type ingest sends the column's
    values as (by its dtype, or by its values' Python types in an object column); None when the
    values mix types."""
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "long"
    if pd.api.types.is_float_dtype(dtype):
        return "double"
    if pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
        return "str"
    kinds = {_python_kind(v) for v in values.dropna()}
    return kinds.pop() if len(kinds) == 1 else ("str" if not kinds else None)


def _python_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "str"
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, int) or pd.api.types.is_integer(value):
        return "long"
    if isinstance(value, float) or pd.api.types.is_float(value):
        return "double"
    return None


def _arrow(values: pd.Series, kind: str) -> pa.Array:
    """The column as an Arrow array of the kind's type (missing values null)."""
    target = {"long": pa.int64(), "double": pa.float64(), "bool": pa.bool_(),
              "str": pa.large_string()}[kind]
    array = pa.array(values.astype(object) if values.dtype == object else values,
                     from_pandas=True)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array.cast(target)


def _json(values: pd.Series, kind: str, what: str) -> pa.Array:
    """Each value as JSON text (``null`` when missing), without a Python loop (but for strings
    holding control characters)."""
    array = _arrow(values, kind)
    if kind == "str":
        if pc.any(pc.match_substring_regex(array, _CONTROL)).as_py():
            return pa.array([json.dumps(v) if v is not None else "null"
                             for v in array.to_pylist()], pa.large_string())
        quote_mark = pa.scalar('"', pa.large_string())
        escaped = pc.replace_substring(pc.replace_substring(array, "\\", "\\\\"), '"', '\\"')
        text = pc.binary_join_element_wise(quote_mark, escaped, quote_mark, _text(""))
    elif kind == "bool":
        text = pc.if_else(array, _text("true"), _text("false"))
    else:
        if kind == "double" and pc.any(pc.is_inf(array)).as_py():
            raise IngestError(f"{what} holds an infinite value, which the bulk load cannot "
                              "write; use the normal ingest (without --bulk)")
        text = array.cast(pa.large_string())
    return pc.fill_null(text, _text("null"))


def _text(value: str) -> pa.Scalar:
    return pa.scalar(value, pa.large_string())


def _write_lines(fh: IO[bytes], lines: pa.Array) -> None:
    """Write an Arrow array of whole lines as they lie in its data buffer (no Python loop)."""
    if len(lines) == 0:
        return
    lines = lines.cast(pa.large_string())
    offsets = pa.Array.from_buffers(pa.int64(), len(lines) + 1, [None, lines.buffers()[1]],
                                    offset=lines.offset)
    start, end = offsets[0].as_py(), offsets[-1].as_py()
    data = lines.buffers()[2]
    assert data is not None
    fh.write(memoryview(data)[start:end])


def _json_lines(columns: dict[str, pa.Array]) -> pa.Array:
    """One JSON object per row (with a newline) from JSON-text columns named by key."""
    parts: list[pa.Array | pa.Scalar] = []
    for k, (key, values) in enumerate(columns.items()):
        parts += [_text(("{" if k == 0 else ",") + json.dumps(key) + ":"), values]
    parts.append(_text("}\n"))
    return pc.binary_join_element_wise(*parts, _text(""))


def _chunks(frame: NodeFrame | EdgeFrame) -> Iterator[pd.DataFrame]:
    """The frame's rows, at most :data:`CHUNK_ROWS` at a time."""
    for chunk in ([frame.data] if isinstance(frame, NodeFrame) else frame.chunks()):
        for start in range(0, len(chunk), CHUNK_ROWS):
            yield chunk.iloc[start:start + CHUNK_ROWS]


def _edge_props(frame: EdgeFrame, chunk: pd.DataFrame) -> dict[str, str]:
    """Property -> kind of an edge chunk: ``eid``, ``ts`` and ``value`` as ingest casts them,
    the other properties by their values."""
    kinds = {"eid": "str", "ts": "long", "value": "double"}
    for col in chunk.columns:
        if col in schema.REL_PROPERTIES and col not in kinds:
            kind = value_kind(chunk[col])
            if kind is None:
                raise IngestError(f"{frame.rel} property {col!r} mixes value types, which the "
                                  "bulk load cannot write; use the normal ingest (without --bulk)",
                                  file=frame.file or None, field=col)
            kinds[col] = kind
    return kinds


# -- the plan: what each label and type becomes ----------------------------------------------

@dataclass
class _LabelPlan:
    """The rows of one label: first occurrences go to the loader with the ``direct``
    properties; the rest is set afterwards, in input order (``SET n += p`` as ingest does)."""

    label: str
    parts: list[pd.DataFrame] = field(default_factory=list)  # first occurrences, per frame
    direct: dict[str, str] = field(default_factory=dict)      # property -> kind
    later: list[pd.DataFrame] = field(default_factory=list)   # id + properties set afterwards

    @property
    def rows(self) -> int:
        return sum(len(p) for p in self.parts)


def _plan_labels(data: SourceData) -> list[_LabelPlan]:
    """Group the node frames by label: a later frame's row for an id seen before is set
    afterwards, as is a property the loader cannot write for every row (see
    :func:`_loader_kind`)."""
    plans: dict[str, _LabelPlan] = {}
    seen: dict[str, pd.Index] = {}  # ids written so far, per label
    for nf in data.nodes:
        plan = plans.setdefault(nf.label, _LabelPlan(nf.label))
        df = nf.data.drop(columns="_line").assign(id=nf.data["id"].astype(str))
        before = seen.get(nf.label, pd.Index([], dtype=object))
        again = df["id"].isin(before)
        if again.any():
            plan.later.append(df.loc[again])
        plan.parts.append(df.loc[~again])
        seen[nf.label] = before.append(pd.Index(plan.parts[-1]["id"]))
    for plan in plans.values():
        columns = dict.fromkeys(c for p in plan.parts for c in p.columns if c != "id")
        for col in columns:
            kind = _loader_kind([p[col] if col in p.columns else None for p in plan.parts])
            if kind is not None:
                plan.direct[col] = kind
        deferred = [c for c in columns if c not in plan.direct]
        if deferred:  # set afterwards, before the rows of later frames
            plan.later[:0] = [p[["id", *[c for c in deferred if c in p.columns]]]
                              for p in plan.parts]
    return list(plans.values())


def _loader_kind(columns: list[pd.Series | None]) -> str | None:
    """The kind of a property the loader writes as ingest would for every row (``None``: a
    frame without the column): one kind throughout; for a number or boolean a value in every
    row (the loader writes a missing one as 0 or false); for a string no empty one (the loader
    drops it). None otherwise: the property is set afterwards."""
    present = [c for c in columns if c is not None]
    kinds = {value_kind(c) for c in present}
    kind = kinds.pop() if len(kinds) == 1 else None
    if kind == "str":
        return None if any((c == "").any() for c in present) else kind
    complete = len(present) == len(columns) and not any(c.isna().any() for c in present)
    return kind if complete else None


def _check_unique_events(data: SourceData) -> None:
    """An event id given by two frames of one type would break the ``eid`` constraint (the
    normal ingest keeps the first); refuse it."""
    frames: dict[str, list[EdgeFrame]] = {}
    for ef in data.edges:
        frames.setdefault(ef.rel, []).append(ef)
    for rel, group in frames.items():
        if len(group) < 2:
            continue
        eids = pd.concat([c["eid"].astype(str) for ef in group for c in ef.chunks()],
                         ignore_index=True)
        dup = eids.duplicated()
        if dup.any():
            raise IngestError(f"event {quote(eids[dup].iloc[0])} of {rel} is given by two "
                              "inputs; the bulk load takes each event once: remove the copy, or "
                              "use the normal ingest (without --bulk), which keeps the first",
                              field="eid")


# -- ArcadeDB --------------------------------------------------------------------------------

@dataclass
class _Files:
    """The importer's input: JSON-lines files and its configuration."""

    folder: Path
    vertices: list[dict[str, Any]] = field(default_factory=list)
    edge_sources: list[dict[str, Any]] = field(default_factory=list)
    handles: dict[str, IO[bytes]] = field(default_factory=dict)
    edges: int = 0
    empty_strings: list[tuple[EdgeFrame, pd.DataFrame]] = field(default_factory=list)
    users: dict[str, set[str]] = field(default_factory=dict)

    def open(self, name: str) -> IO[bytes]:
        if name not in self.handles:
            self.handles[name] = (self.folder / name).open("wb")
        return self.handles[name]

    def close(self) -> Path:
        for fh in self.handles.values():
            fh.close()
        config = self.folder / "import.json"
        config.write_text(json.dumps({"vertices": self.vertices,
                                      "edgeSources": self.edge_sources,
                                      "postImportCommands": _index_commands()}, indent=1))
        return config


def _index_commands() -> list[dict[str, str]]:
    """SQL that creates every type and uniqueness constraint of the schema in the importer's
    JVM (whose page cache the heap sizes), the indexes built over the loaded data; the same
    indexes as the Cypher constraints, which then find them (``IF NOT EXISTS``). They are built
    sorted (``buildMode SORTED``: keys sorted in runs and merged, duplicates refused at the
    merge) instead of one key at a time with a uniqueness lookup each, which took most of a
    200k-user load (``docs/benchmarks.md``)."""
    out = []
    for name, kind, key in ([(lab, "VERTEX", "id") for lab in schema.NODE_PROPERTIES]
                            + [(t, "EDGE", "eid") for t in schema.RELATIONSHIPS]):
        out += [f"CREATE {kind} TYPE {name} IF NOT EXISTS",
                f"CREATE PROPERTY {name}.{key} IF NOT EXISTS STRING",
                f"CREATE INDEX IF NOT EXISTS ON {name} ({key}) UNIQUE "
                'METADATA {"buildMode": "SORTED"}']
    return [{"language": "sql", "command": c} for c in out]


def _write_vertices(files: _Files, plan: _LabelPlan, progress: Step) -> None:
    name = f"nodes-{plan.label}.jsonl"
    fh = files.open(name)
    for part in plan.parts:
        for start in range(0, len(part), CHUNK_ROWS):
            rows = part.iloc[start:start + CHUNK_ROWS]
            columns = {"id": _json(rows["id"], "str", f"{plan.label} id")}
            columns |= {c: _json(rows[c], k, f"{plan.label} property {c!r}")
                        for c, k in plan.direct.items() if c in rows.columns}
            _write_lines(fh, _json_lines(columns))
            progress(len(rows))
    files.vertices.append({"type": plan.label, "file": name, "id": "id",
                           "properties": {"id": "id"} | {
                               c: _SPEC[k] + c for c, k in plan.direct.items()}})


def _write_meta(files: _Files) -> None:
    """The schema version's node (so that :meth:`GraphStore.ensure_schema` finds a graph of
    this version, not an unversioned one with data)."""
    name = "meta.jsonl"
    files.open(name).write(json.dumps({"id": schema.META_SCHEMA_KEY,
                                       "version": schema.SCHEMA_VERSION}).encode() + b"\n")
    files.vertices.append({"type": "ShopgraphMeta", "file": name, "id": "id",
                           "properties": {"id": "id", "version": "long:version"}})


def _write_edges(files: _Files, fi: int, frame: EdgeFrame, progress: Step) -> None:
    """Write one edge frame, one file per set of numeric properties its rows carry."""
    groups: dict[int, dict[str, str]] = {}
    for chunk in _chunks(frame):
        kinds = _edge_props(frame, chunk)
        empty = [c for c, k in kinds.items() if k == "str" and (chunk[c] == "").any()]
        if empty:  # the loader drops an empty string: set afterwards
            rows = chunk.loc[(chunk[empty] == "").any(axis=1), ["src", "dst", "eid", *empty]]
            files.empty_strings.append((frame, rows))
        numeric = [c for c, k in kinds.items() if k != "str"]
        code = pd.Series(0, index=chunk.index)
        for bit, col in enumerate(numeric):
            code += chunk[col].notna().astype(int) * (1 << bit)
        for value in code.unique():
            rows = chunk.loc[code == value]
            props = {c: k for c, k in kinds.items()
                     if k == "str" or (int(value) >> numeric.index(c)) & 1}
            if groups.setdefault(int(value), props) != props:
                raise IngestError(f"{frame.rel} properties change type within the input, which "
                                  "the bulk load cannot write; use the normal ingest",
                                  file=frame.file or None)
            columns = {"_s": _json(rows["src"], "str", "src"),
                       "_d": _json(rows["dst"], "str", "dst")}
            columns |= {c: _json(rows[c], k, f"{frame.rel} property {c!r}")
                        for c, k in props.items()}
            _write_lines(files.open(f"edges-{fi}-{int(value)}.jsonl"), _json_lines(columns))
        if frame.rel in schema.USER_ITEM_TYPES:
            files.users.setdefault(frame.rel, set()).update(chunk["src"].astype(str).unique())
        files.edges += len(chunk)
        progress(len(chunk))
    for value, props in groups.items():
        files.edge_sources.append({
            "edge": frame.rel, "file": f"edges-{fi}-{value}.jsonl",
            "from": f"_s:{frame.src_label}", "to": f"_d:{frame.dst_label}",
            "properties": {c: _SPEC[k] + c for c, k in props.items()}})


_COUNTS = re.compile(r"Vertices:\s*([\d,]+)\s+Edges\s*:\s*([\d,]+)")


def _load_arcadedb(store: GraphStore, server: EmbeddedServer, data: SourceData,
                   labels: list[_LabelPlan], progress: Step, heap: str | None,
                   ) -> dict[str, set[str]]:
    """Write the importer's files, run it, check its counts, create the constraints and set
    the deferred node properties; returns the users with user->item edges, per type."""
    folder = Path(tempfile.mkdtemp(prefix="bulk-", dir=server.root))
    try:
        files = _Files(folder)
        try:
            _write_meta(files)
            for plan in labels:
                _write_vertices(files, plan, progress)
            for fi, ef in enumerate(data.edges):
                _write_edges(files, fi, ef, progress)
        finally:
            config = files.close()
        vertices = 1 + sum(p.rows for p in labels)
        output = server.import_graph(store.database, config,
                                     heap=heap or _importer_heap(vertices, files.edges))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    counts = _COUNTS.search(output)
    got = tuple(int(c.replace(",", "")) for c in counts.groups()) if counts else None
    if got != (vertices, files.edges):
        server.drop_database(store.database)
        server.ensure_database(store.database)
        raise GraphStoreError(f"ArcadeDB's importer wrote {got} (vertices, edges) instead of "
                              f"{(vertices, files.edges)}; the database is empty again: use the "
                              "normal ingest (without --bulk). Importer output ends: "
                              + output[-500:])
    store.ensure_schema()
    for plan in labels:
        for later in plan.later:
            _merge_nodes(store, plan.label, later)
    for frame, rows in files.empty_strings:
        _set_empty_strings(store, frame, rows)
    return files.users


def _importer_heap(vertices: int, edges: int) -> str:
    """The importer JVM's heap: room for its id maps and every edge's properties until it
    writes them (about 150 bytes an edge, measured), at least 1 GB."""
    megabytes = 1024 + (edges * 150 + vertices * 200) // 2**20
    return f"{megabytes}m"


def _merge_nodes(store: GraphStore, label: str, rows: pd.DataFrame) -> None:
    """Set node properties as ingest does (``MERGE`` by id, ``SET n += p``), in batches."""
    query = cypher.nodes(cypher.MERGE_NODES, label)
    for start in range(0, len(rows), MERGE_BATCH):
        batch = [r for r in node_rows(rows.iloc[start:start + MERGE_BATCH]) if r["p"]]
        if batch:
            _write_rows(store, query, batch, f"setting {label} properties")


def _set_empty_strings(store: GraphStore, frame: EdgeFrame, rows: pd.DataFrame) -> None:
    """Set the empty-string properties of ``rows`` (ends, eid, the string columns) on their
    events, in batches."""
    query = cypher.edges(cypher.SET_EDGE_PROPS, frame.rel)
    cols = [c for c in rows.columns if c not in ("src", "dst", "eid")]
    params = [{"s": str(r[0]), "d": str(r[1]), "e": str(r[2]),
               "p": {c: "" for c, v in zip(cols, r[3:]) if v == ""}}
              for r in rows.itertuples(index=False)]
    for start in range(0, len(params), MERGE_BATCH):
        _write_rows(store, query, params[start:start + MERGE_BATCH],
                    f"setting {frame.rel} properties")


def _write_rows(store: GraphStore, query: str, rows: list[dict[str, Any]], what: str) -> None:
    """Run ``query`` with ``rows`` in one write transaction (retried after a collision)."""

    def work(tx: neo4j.Transaction) -> None:
        tx.run(query, rows=rows).consume()

    store.write_retrying(work, what)


# -- Neo4j -----------------------------------------------------------------------------------

def write_neo4j_import(data: SourceData, folder: str | Path, *, batch_size: int = 10_000,
                       database: str = "neo4j") -> Path:
    """Write the files of a first load into an empty Neo4j database with ``neo4j-admin
    database import full``: ``nodes-<Label>.csv`` (``id:ID(<Label>)``, typed properties,
    ``:LABEL``; one row per id, later inputs' values taking over as in ingest), and
    ``relationships-<TYPE>.csv`` (``:START_ID(<Label>)``, ``:END_ID(<Label>)``, ``:TYPE``,
    ``eid`` and the other properties), ``post-import.cypher`` (constraints, schema version and
    ledger, to run once the database is started) and ``import.sh`` (both commands). A missing
    value is an empty field (no property); an empty string is ``""``. ``data`` must have passed
    the checks of :func:`bulk_load` (it is not checked again). Returns the folder.
    """
    import pyarrow.csv as pcsv

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows_only = pcsv.WriteOptions(include_header=False)
    nodes_args, rel_args = [], []
    for plan in _plan_labels(data):
        merged = _merged(plan)
        kinds = {c: value_kind(merged[c]) or "str" for c in merged.columns if c != "id"}
        header = [f"id:ID({plan.label})", *(f"{c}:{_NEO4J_TYPE[k]}" for c, k in kinds.items()),
                  ":LABEL"]
        table = pa.table([_arrow(merged["id"], "str"),
                          *(_arrow(merged[c], k) for c, k in kinds.items()),
                          pa.array([plan.label] * len(merged))], names=header)
        name = f"nodes-{plan.label}.csv"
        with (folder / name).open("wb") as fh:
            fh.write((",".join(header) + "\n").encode())
            pcsv.write_csv(table, fh, rows_only)
        nodes_args.append(f"--nodes={name}")
    for rel in dict.fromkeys(ef.rel for ef in data.edges):
        name = f"relationships-{rel}.csv"
        with (folder / name).open("wb") as fh:
            writer: pcsv.CSVWriter | None = None
            first: pa.Schema | None = None
            for ef in (e for e in data.edges if e.rel == rel):
                for chunk in _chunks(ef):
                    kinds = _edge_props(ef, chunk)
                    header = [f":START_ID({ef.src_label})", f":END_ID({ef.dst_label})", ":TYPE",
                              *(f"{c}:{_NEO4J_TYPE[k]}" for c, k in kinds.items())]
                    table = pa.table([_arrow(chunk["src"], "str"), _arrow(chunk["dst"], "str"),
                                      pa.array([rel] * len(chunk)),
                                      *(_arrow(chunk[c], k) for c, k in kinds.items())],
                                     names=header)
                    if writer is None:
                        fh.write((",".join(header) + "\n").encode())
                        writer = pcsv.CSVWriter(fh, table.schema, write_options=rows_only)
                        first = table.schema
                    elif table.schema != first:
                        raise IngestError(f"the inputs of {rel} differ in their properties; "
                                          "the import takes one header per type: use the "
                                          "normal ingest (without --bulk)")
                    writer.write_table(table)
            if writer is not None:
                writer.close()
        rel_args.append(f"--relationships={name}")
    (folder / "post-import.cypher").write_text(_post_import(data, batch_size))
    (folder / "import.sh").write_text(
        "#!/bin/sh\n# Run on the Neo4j host, the database stopped (see docs/bulk-load.md).\n"
        "set -e\ncd \"$(dirname \"$0\")\"\n"
        f"neo4j-admin database import full {database} --overwrite-destination "
        "--multiline-fields=true --id-type=string " + " ".join(nodes_args + rel_args) + "\n"
        f"# then start the database and run:\n# cypher-shell -d {database} "
        "-f post-import.cypher\n")
    return folder


def _merged(plan: _LabelPlan) -> pd.DataFrame:
    """One row per id: first occurrences, then each later value set over them in order."""
    frame = pd.concat(plan.parts, ignore_index=True) if len(plan.parts) > 1 else plan.parts[0]
    if not plan.later:
        return frame.reset_index(drop=True)
    frame = frame.set_index("id")
    for later in plan.later:
        update = later.set_index("id")
        for col in update.columns:
            values = update[col].dropna()
            if col not in frame.columns:
                frame[col] = pd.Series(pd.NA, index=frame.index, dtype=update[col].dtype)
            frame.loc[values.index, col] = values
    return frame.reset_index()


def _post_import(data: SourceData, batch_size: int) -> str:
    """The Cypher after ``neo4j-admin import``: constraints, schema version, ledger."""
    lines = [c.cypher + ";" for c in schema.constraints()]
    lines.append(cypher.META_WRITE.replace("$key", json.dumps(schema.META_SCHEMA_KEY))
                 .replace("$version", str(schema.SCHEMA_VERSION)) + ";")
    lines.append(cypher.LEDGER_WRITE
                 .replace("$source", json.dumps(source_fingerprint(data, batch_size)))
                 .replace("$done", json.dumps(ledger_keys(data, batch_size))) + ";")
    return "\n".join(lines) + "\n"


# -- the entry point -------------------------------------------------------------------------

def bulk_load(store: GraphStore, data: SourceData, *, server: EmbeddedServer | None = None,
              batch_size: int = 10_000, strict: bool = True,
              on_progress: Progress | None = None, journal: str | Path | None = None,
              neo4j_folder: str | Path | None = None, heap: str | None = None) -> IngestSummary:
    """Load ``data`` into the empty database of ``store`` the fast way; see the module
    docstring.

    Args:
        store: the target graph (its database must be empty).
        server: the embedded ArcadeDB server holding that database (needed on ArcadeDB).
        batch_size: the batch size whose ledger is written (that of the normal ingest the
            same source would be run with later).
        strict: raise on an unknown end id instead of skipping its rows (as ingest does).
        on_progress: called with (rows written out, rows in all) while the files are written.
        journal: the folder of the ingest journal, or ``None``.
        neo4j_folder: where the ``neo4j-admin`` files go when the server is Neo4j.
        heap: the ArcadeDB importer's heap (default: sized to the input).

    Returns:
        What was written, as :func:`~shopgraph.graphdb.ingest.ingest` reports it.

    Raises:
        IngestError: invalid input, or the database is not empty; nothing was written.
        BulkImportPending: Neo4j: the import files are written; the message says what to run.
        GraphStoreError: ArcadeDB without its embedded server, or the load failed (the
            database is then empty again).
    """
    started = time.perf_counter()
    check_source(data)
    product = store.capabilities.product
    if product == "arcadedb" and server is None:
        raise GraphStoreError("a bulk load into ArcadeDB runs its importer on the database's "
                              "files: it needs the workspace's embedded server, not a remote "
                              "one; use the normal ingest (without --bulk)")
    if not store.is_empty():
        raise IngestError(f"database {store.database!r} is not empty; a bulk load only fills an "
                          "empty database: use the normal ingest (without --bulk) to add to it")
    check_references(store, data, strict)
    _check_unique_events(data)
    source = source_fingerprint(data, batch_size)
    keys = ledger_keys(data, batch_size)
    if product != "arcadedb":
        folder = write_neo4j_import(data, neo4j_folder or Path("neo4j-import"),
                                    batch_size=batch_size, database=store.database)
        raise BulkImportPending(
            f"the files for neo4j-admin are in {folder}: shopgraph cannot run it (it needs "
            f"the database stopped, on its host); run {folder / 'import.sh'} there, start the "
            f"database, then `cypher-shell -d {store.database} -f post-import.cypher` "
            "(docs/bulk-load.md)", folder)
    assert server is not None
    summary = IngestSummary(data.name, source, problems=list(data.problems), batches=len(keys))
    for nf in data.nodes:
        summary.nodes[nf.label] = summary.nodes.get(nf.label, 0) + len(nf.data)
    for ef in data.edges:
        summary.relationships[ef.rel] = summary.relationships.get(ef.rel, 0) + ef.rows
    total = sum(summary.nodes.values()) + sum(summary.relationships.values())
    done = 0

    def progress(rows: int) -> None:
        nonlocal done
        done += rows
        if on_progress:
            on_progress(done, total)

    if journal is not None:
        journal = Path(journal)
        start_journal(journal)
    users = _load_arcadedb(store, server, data, _plan_labels(data), progress, heap)
    store.write_retrying(lambda tx: tx.run(cypher.LEDGER_WRITE, source=source,
                                           done=keys).consume(), "writing the ingest ledger")
    if journal is not None and users:
        write_journal_entry(journal, source, "bulk", {rel: sorted(ids)
                                                      for rel, ids in users.items()})
    summary.seconds = time.perf_counter() - started
    return summary
