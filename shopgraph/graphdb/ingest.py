"""Write a parsed :class:`SourceData` into the graph: validated first, then batched, idempotent
and resumable.

* Validation happens before the first write: frame checks, then every relationship end id is
  looked up (in the source's own nodes, then in the graph). An unknown id raises in strict mode
  and is skipped and reported otherwise.
* Writes are ``UNWIND`` batches, one transaction each. Every transaction also appends its batch
  key to an ``IngestLog`` node named after the source's fingerprint (file hashes, options,
  batch size), so batch and ledger entry commit together or not at all. A re-run skips the
  batches in the ledger: running the same file twice leaves the graph unchanged, and an
  interrupted run resumes where it stopped.
* Relationships are created with ``CREATE`` under a uniqueness constraint on ``eid``. A batch that
  hits the constraint (its events came in before, say from another file) is written again with a
  guarded statement that creates only the events not already there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import neo4j
import numpy as np
import pandas as pd
from neo4j.exceptions import ConstraintError

from shopgraph.artifacts import file_sha256, fingerprint
from shopgraph.errors import GraphStoreError, IngestError
from shopgraph.graphdb import cypher, schema
from shopgraph.graphdb.frames import EdgeFrame, NodeFrame, Problem, SourceData
from shopgraph.graphdb.store import GraphStore

Progress = Callable[[int, int], None]
LOOKUP_CHUNK = 50_000


@dataclass
class IngestSummary:
    """What one ingest did."""

    source: str
    fingerprint: str
    nodes: dict[str, int] = field(default_factory=dict)
    relationships: dict[str, int] = field(default_factory=dict)
    already_present: int = 0
    batches: int = 0
    batches_already_done: int = 0
    problems: list[Problem] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def relationships_written(self) -> int:
        """Relationships created by this run."""
        return sum(self.relationships.values())

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly form, problems cut to the first 20."""
        return {"source": self.source, "fingerprint": self.fingerprint, "nodes": self.nodes,
                "relationships": self.relationships, "already_present": self.already_present,
                "batches": self.batches, "batches_already_done": self.batches_already_done,
                "problems": len(self.problems),
                "first_problems": [str(p) for p in self.problems[:20]],
                "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class _Batch:
    key: str
    frame: NodeFrame | EdgeFrame
    start: int
    stop: int


def source_fingerprint(data: SourceData, batch_size: int) -> str:
    """Fingerprint of what an ingest writes: input bytes, loader options, schema, batching and
    the rows left out as bad (so that a run which skips other rows gets other batches)."""
    skipped = [(p.file, p.line, p.field) for p in data.problems]
    return fingerprint(data.name, [file_sha256(f) for f in data.files], data.options,
                       schema.SCHEMA_VERSION, batch_size, skipped)


def _unique_ids(series: pd.Series) -> set[str]:
    return set(pd.unique(series.astype(str)))


def _existing_ids(store: GraphStore, label: str, ids: set[str]) -> set[str]:
    found: set[str] = set()
    todo = sorted(ids)
    query = cypher.nodes(cypher.EXISTING_IDS, label)
    for i in range(0, len(todo), LOOKUP_CHUNK):
        rows = store.query(query, what=f"looking up {label} ids", ids=todo[i:i + LOOKUP_CHUNK])
        found.update(r["id"] for r in rows)
    return found


def check_references(store: GraphStore, data: SourceData, strict: bool) -> None:
    """Make sure every relationship's end nodes exist in the source or the graph.

    Raises :class:`IngestError` in strict mode; otherwise drops the rows and records problems.
    """
    own: dict[str, set[str]] = {}
    for nf in data.nodes:
        own.setdefault(nf.label, set()).update(_unique_ids(nf.data["id"]))
    for ef in data.edges:
        for col, lab in (("src", ef.src_label), ("dst", ef.dst_label)):
            outside = _unique_ids(ef.data[col]) - own.get(lab, set())
            if not outside:
                continue
            missing = outside - _existing_ids(store, lab, outside)
            if not missing:
                continue
            bad = ef.data[col].astype(str).isin(missing)
            first = ef.data.loc[bad].iloc[0]
            message = (f"unknown {lab} id {first[col]!r} ({int(bad.sum())} row(s) refer to "
                       f"{len(missing)} unknown {lab} id(s)); ingest the {lab} nodes first")
            if strict:
                raise IngestError(message + ", or ingest without --strict to skip these rows",
                                  file=ef.file or None, line=int(first["_line"]), field=col)
            data.problems.extend(
                Problem(ef.file, int(line), col, f"unknown {lab} id {value!r}")
                for line, value in zip(ef.data.loc[bad, "_line"], ef.data.loc[bad, col]))
            ef.data = ef.data.loc[~bad]


def _plan(data: SourceData, batch_size: int) -> list[_Batch]:
    plan: list[_Batch] = []
    groups: tuple[tuple[str, Sequence[NodeFrame | EdgeFrame]], ...] = (
        ("n", data.nodes), ("e", data.edges))
    for tag, frames in groups:
        for fi, frame in enumerate(frames):
            for start in range(0, len(frame.data), batch_size):
                stop = min(start + batch_size, len(frame.data))
                plan.append(_Batch(f"{tag}{fi}:{start}", frame, start, stop))
    return plan


def node_rows(frame: NodeFrame, start: int, stop: int) -> list[dict[str, Any]]:
    """Parameter rows ``{id, p}`` for a slice of a node frame; missing properties left out."""
    part = frame.data.iloc[start:stop]
    props = [c for c in part.columns if c not in ("id", "_line")]
    ids = part["id"].astype(str).tolist()
    if not props:
        return [{"id": i, "p": {}} for i in ids]
    records = part[props].astype(object).where(part[props].notna(), None).to_dict("records")
    return [{"id": i, "p": {k: _plain(v) for k, v in r.items() if v is not None}}
            for i, r in zip(ids, records)]


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def edge_rows(frame: EdgeFrame, start: int, stop: int) -> list[dict[str, Any]]:
    """Parameter rows ``{s, d, e, t, v[, p]}`` for a slice of an edge frame."""
    part = frame.data.iloc[start:stop]
    ts = part["ts"].astype("Int64")
    t = [None if m else int(x) for x, m in zip(ts.to_numpy(dtype="int64", na_value=0),
                                                ts.isna().to_numpy())]
    value = part["value"].astype("float64").to_numpy()
    v = [None if np.isnan(x) else x for x in value.tolist()]
    cols = {"s": part["src"].astype(str).tolist(), "d": part["dst"].astype(str).tolist(),
            "e": part["eid"].astype(str).tolist(), "t": t, "v": v}
    extra = _extra_edge_props(frame)
    if extra:
        records = part[extra].astype(object).where(part[extra].notna(), None).to_dict("records")
        cols["p"] = [{k: _plain(x) for k, x in r.items() if x is not None} for r in records]
    keys = list(cols)
    return [dict(zip(keys, row)) for row in zip(*cols.values())]


def _extra_edge_props(frame: EdgeFrame) -> list[str]:
    return [c for c in frame.data.columns if c in schema.REL_PROPERTIES and c not in ("ts",
                                                                                       "value")]


class _Writer:
    """Writes one batch in one transaction together with its ledger entry."""

    def __init__(self, store: GraphStore, source: str, summary: IngestSummary) -> None:
        self.store, self.source, self.summary = store, source, summary
        self.guarded_only = not store.capabilities.relationship_constraints

    def _mark(self, tx: neo4j.Transaction, key: str) -> None:
        tx.run(cypher.LEDGER_MARK, source=self.source, batch=key).consume()

    def nodes(self, batch: _Batch) -> None:
        frame = batch.frame
        assert isinstance(frame, NodeFrame)
        rows = node_rows(frame, batch.start, batch.stop)
        query = cypher.nodes(cypher.MERGE_NODES, frame.label)

        def work(tx: neo4j.Transaction) -> None:
            tx.run(query, rows=rows).consume()
            self._mark(tx, batch.key)

        self.store.write(work, what=f"writing {frame.label} nodes")
        self.summary.nodes[frame.label] = self.summary.nodes.get(frame.label, 0) + len(rows)

    def edges(self, batch: _Batch) -> None:
        frame = batch.frame
        assert isinstance(frame, EdgeFrame)
        rows = edge_rows(frame, batch.start, batch.stop)
        extra = bool(_extra_edge_props(frame))
        fast = cypher.edges(cypher.CREATE_EDGES, frame.rel, extra)

        def work(tx: neo4j.Transaction) -> int:
            record = tx.run(fast, rows=rows).single()
            assert record is not None  # count() returns exactly one row
            n = record["n"]
            if n != len(rows):  # an end node vanished since the check: write nothing
                raise GraphStoreError(f"only {n} of {len(rows)} {frame.rel} relationships found "
                                      "both end nodes; the graph changed during ingest, re-run")
            self._mark(tx, batch.key)
            return int(n)

        created: int | None = None
        if not self.guarded_only:
            try:
                created = self.store.write(work, f"writing {frame.rel}")
            except ConstraintError:
                created = None  # some events are in the graph already: write only the others
        if created is None:
            created = self._guarded(batch, frame, rows, extra)
        self.summary.relationships[frame.rel] = self.summary.relationships.get(frame.rel, 0) \
            + created

    def _guarded(self, batch: _Batch, frame: EdgeFrame, rows: list[dict[str, Any]],
                 extra: bool) -> int:
        query = cypher.edges(cypher.CREATE_NEW_EDGES, frame.rel, extra)

        def work(tx: neo4j.Transaction) -> int:
            created = len(tx.run(query, rows=rows).data())
            self._mark(tx, batch.key)
            return created

        try:
            created = self.store.write(work, f"writing {frame.rel}")
        except ConstraintError as exc:
            lines = frame.data["_line"].iloc[[batch.start, batch.stop - 1]].tolist()
            raise IngestError(
                f"an event id of this batch already belongs to a {frame.rel} relationship "
                "between other nodes; event ids must be unique per relationship type",
                file=frame.file or None, line=int(lines[0]), field="eid") from exc
        self.summary.already_present += len(rows) - created
        return created


def ingest(store: GraphStore, data: SourceData, *, batch_size: int = 10_000,
           strict: bool = True, on_progress: Progress | None = None) -> IngestSummary:
    """Validate ``data``, then write it in batches; see the module docstring.

    Args:
        store: the target graph.
        data: what a loader parsed.
        batch_size: rows per transaction.
        strict: raise on an unknown end id instead of skipping its rows.
        on_progress: called with (rows done, rows in all) after every batch.

    Returns:
        What was written, skipped and resumed.

    Raises:
        IngestError: invalid input; nothing was written.
        GraphStoreError: the server failed; batches committed so far stay, and re-running the
            same command resumes after them.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    started = time.perf_counter()
    data.validate()
    if not data.edges and not data.nodes:
        raise IngestError("nothing to ingest: the source has no rows",
                          file=str(data.files[0]) if data.files else None)
    store.ensure_schema()
    check_references(store, data, strict)
    source = source_fingerprint(data, batch_size)
    summary = IngestSummary(data.name, source, problems=list(data.problems))
    done = store.query(cypher.LEDGER_READ, source=source)
    done_keys = set(done[0]["done"] or []) if done else set()
    plan = _plan(data, batch_size)
    summary.batches = len(plan)
    total = sum(b.stop - b.start for b in plan)
    writer = _Writer(store, source, summary)
    rows_done = 0
    for index, batch in enumerate(plan):
        if batch.key in done_keys:
            summary.batches_already_done += 1
        else:
            try:
                if isinstance(batch.frame, NodeFrame):
                    writer.nodes(batch)
                else:
                    writer.edges(batch)
            except GraphStoreError as exc:
                raise GraphStoreError(f"{exc} -- {index} of {len(plan)} batches are committed; "
                                      "run the same ingest again to resume") from exc
        rows_done += batch.stop - batch.start
        if on_progress:
            on_progress(rows_done, total)
    summary.seconds = time.perf_counter() - started
    return summary
