"""Write a parsed :class:`SourceData` into the graph: validated first, then batched, idempotent
and resumable.

* Validation happens before the first write: frame checks, then every relationship end id is
  looked up (in the source's own nodes, then in the graph). An unknown id raises in strict mode
  and is skipped and reported otherwise. The graph's schema version is checked (and recorded in
  a new graph) by :meth:`GraphStore.ensure_schema`.
* A streamed relationship frame (the line loaders') is read from its file a chunk at a time
  and cut into the same batches as if it were in memory; only one batch is held.
* Writes are ``UNWIND`` batches, one transaction each. Every transaction also appends its batch
  key to an ``IngestLog`` node named after the source's fingerprint (file hashes, options,
  batch size), so batch and ledger entry commit together or not at all. A re-run skips the
  batches in the ledger: running the same file twice leaves the graph unchanged, and an
  interrupted run resumes where it stopped.
* Relationships are created with ``CREATE`` under a uniqueness constraint on ``eid``. A batch that
  hits the constraint (its events came in before, say from another file) is written again with a
  guarded transaction that reads which of its events are there already and creates only the
  others.
* **The first write wins.** An event already present keeps its stored ``ts`` and ``value``; when
  the incoming ones differ (a corrected rating, say) the event is reported as a
  :class:`ValueConflict` in :attr:`IngestSummary.conflicts`, never silently taken as written. To
  correct a value, delete the relationship first, or re-ingest into a fresh database.
* **Several writers.** Ingests into one database may run at the same time. A batch whose
  transaction collides with another writer's (both ``MERGE`` the same new item, or both create
  the same event, or the server reports a transient conflict) is rolled back whole and run again
  after a short jittered pause (:meth:`GraphStore.write_retrying`); being idempotent, the retry
  writes only what is still missing. An event id that really belongs to a relationship between
  other nodes is no race: it stays an :class:`IngestError`.
* **Journal.** Given a ``journal`` folder (the workspace's ``exports/changes``), every committed
  batch that created user->item edges is recorded there, after its transaction, in a small file
  of its own (written atomically): per type, the users it wrote edges for. ``shopgraph update``
  reads only those users' edges (:mod:`shopgraph.graphdb.journal`). A batch that created
  nothing writes nothing; a batch written again by a resume is skipped by the ledger, so it is
  recorded once (and an entry twice would be harmless: it only makes the update read those
  users again).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import neo4j
import numpy as np
import pandas as pd
from neo4j.exceptions import ConstraintError

from shopgraph.artifacts import file_sha256, fingerprint
from shopgraph.errors import GraphStoreError, IngestError, quote
from shopgraph.graphdb import cypher, schema
from shopgraph.graphdb.frames import EdgeFrame, NodeFrame, Problem, SourceData
from shopgraph.graphdb.journal import start_journal, write_journal_entry
from shopgraph.graphdb.store import GraphStore, duplicate_key

Progress = Callable[[int, int], None]
LOOKUP_CHUNK = 50_000
#: Conflicting events kept as examples in an :class:`IngestSummary` (all are counted).
CONFLICT_EXAMPLES = 20


@dataclass(frozen=True)
class ValueConflict:
    """An event sent again (same ``eid``) with another ``ts`` or ``value`` than the stored one.

    The stored values are kept (the first write wins); missing values are None.
    """

    rel: str
    eid: str
    stored_ts: int | None
    stored_value: float | None
    given_ts: int | None
    given_value: float | None

    def __str__(self) -> str:
        return (f"{self.rel} {quote(self.eid)}: stored ts {self.stored_ts}, value "
                f"{self.stored_value}; given ts {self.given_ts}, value {self.given_value}")

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return asdict(self)


@dataclass
class IngestSummary:
    """What one ingest did.

    Attributes:
        nodes: node rows written (merged) per label.
        relationships: relationships created per type.
        already_present: events of the source found in the graph already, left as stored.
        conflicts: how many of those were given with another ``ts`` or ``value`` (the stored
            ones were kept: the first write wins).
        first_conflicts: the first :data:`CONFLICT_EXAMPLES` of them.
        batches: batches planned; ``batches_already_done`` of them were in the ledger.
        retries: transactions run again after colliding with another writer.
        problems: bad rows skipped (``--skip-bad``).
    """

    source: str
    fingerprint: str
    nodes: dict[str, int] = field(default_factory=dict)
    relationships: dict[str, int] = field(default_factory=dict)
    already_present: int = 0
    conflicts: int = 0
    first_conflicts: list[ValueConflict] = field(default_factory=list)
    batches: int = 0
    batches_already_done: int = 0
    retries: int = 0
    problems: list[Problem] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def relationships_written(self) -> int:
        """Relationships created by this run."""
        return sum(self.relationships.values())

    def add_conflicts(self, conflicts: list[ValueConflict]) -> None:
        """Count ``conflicts`` and keep the first few as examples."""
        self.conflicts += len(conflicts)
        room = CONFLICT_EXAMPLES - len(self.first_conflicts)
        self.first_conflicts.extend(conflicts[:max(room, 0)])

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly form, problems cut to the first 20."""
        return {"source": self.source, "fingerprint": self.fingerprint, "nodes": self.nodes,
                "relationships": self.relationships, "already_present": self.already_present,
                "conflicts": self.conflicts,
                "first_conflicts": [c.as_dict() for c in self.first_conflicts],
                "batches": self.batches, "batches_already_done": self.batches_already_done,
                "retries": self.retries,
                "problems": len(self.problems),
                "first_problems": [str(p) for p in self.problems[:20]],
                "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class _Batch:
    key: str
    frame: NodeFrame | EdgeFrame
    rows: pd.DataFrame  # the batch's slice of the frame


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
        if ef.streamed:
            continue  # its ends are the source's own nodes (see EdgeFrame)
        for col, lab in (("src", ef.src_label), ("dst", ef.dst_label)):
            outside = _unique_ids(ef.data[col]) - own.get(lab, set())
            if not outside:
                continue
            missing = outside - _existing_ids(store, lab, outside)
            if not missing:
                continue
            bad = ef.data[col].astype(str).isin(missing)
            first = ef.data.loc[bad].iloc[0]
            message = (f"unknown {lab} id {quote(first[col])} ({int(bad.sum())} row(s) refer to "
                       f"{len(missing)} unknown {lab} id(s)); ingest the {lab} nodes first")
            if strict:
                raise IngestError(message + ", or ingest without --strict to skip these rows",
                                  file=ef.file or None, line=int(first["_line"]), field=col)
            data.problems.extend(
                Problem(ef.file, int(line), col, f"unknown {lab} id {quote(value)}")
                for line, value in zip(ef.data.loc[bad, "_line"], ef.data.loc[bad, col]))
            ef.data = ef.data.loc[~bad]


def _slices(frame: NodeFrame | EdgeFrame, batch_size: int) -> Iterator[tuple[int, pd.DataFrame]]:
    """``(first row, rows)`` of each batch of ``frame``; a streamed frame is read a chunk at a
    time and cut at the same row numbers as if it were in memory."""
    if isinstance(frame, NodeFrame) or not frame.streamed:
        df = frame.data
        for start in range(0, len(df), batch_size):
            yield start, df.iloc[start:start + batch_size]
        return
    start, waiting = 0, []
    held = 0
    for chunk in frame.chunks():
        waiting.append(chunk)
        held += len(chunk)
        if held < batch_size:
            continue
        buf = pd.concat(waiting, ignore_index=True) if len(waiting) > 1 else waiting[0]
        cut = held - held % batch_size
        for k in range(0, cut, batch_size):
            yield start + k, buf.iloc[k:k + batch_size]
        start += cut
        waiting = [buf.iloc[cut:]] if cut < held else []
        held -= cut
    if held:
        yield start, pd.concat(waiting, ignore_index=True) if len(waiting) > 1 else waiting[0]


def _plan(data: SourceData, batch_size: int) -> Iterator[_Batch]:
    """The batches of ``data`` in write order: nodes first; keys name frame and first row."""
    groups: tuple[tuple[str, Sequence[NodeFrame | EdgeFrame]], ...] = (
        ("n", data.nodes), ("e", data.edges))
    for tag, frames in groups:
        for fi, frame in enumerate(frames):
            for start, rows in _slices(frame, batch_size):
                yield _Batch(f"{tag}{fi}:{start}", frame, rows)


def _rows(frame: NodeFrame | EdgeFrame) -> int:
    return len(frame.data) if isinstance(frame, NodeFrame) else frame.rows


def node_rows(part: pd.DataFrame) -> list[dict[str, Any]]:
    """Parameter rows ``{id, p}`` for a slice of a node frame; missing properties left out."""
    props = [c for c in part.columns if c not in ("id", "_line")]
    ids = part["id"].astype(str).tolist()
    if not props:
        return [{"id": i, "p": {}} for i in ids]
    records = part[props].astype(object).where(part[props].notna(), None).to_dict("records")
    return [{"id": i, "p": {k: _plain(v) for k, v in r.items() if v is not None}}
            for i, r in zip(ids, records)]


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def edge_rows(part: pd.DataFrame) -> list[dict[str, Any]]:
    """Parameter rows ``{s, d, e, t, v[, p]}`` for a slice of an edge frame."""
    ts = part["ts"].astype("Int64")
    t = [None if m else int(x) for x, m in zip(ts.to_numpy(dtype="int64", na_value=0),
                                                ts.isna().to_numpy())]
    value = part["value"].astype("float64").to_numpy()
    v = [None if np.isnan(x) else x for x in value.tolist()]
    cols = {"s": part["src"].astype(str).tolist(), "d": part["dst"].astype(str).tolist(),
            "e": part["eid"].astype(str).tolist(), "t": t, "v": v}
    extra = _extra_edge_props(part)
    if extra:
        records = part[extra].astype(object).where(part[extra].notna(), None).to_dict("records")
        cols["p"] = [{k: _plain(x) for k, x in r.items() if x is not None} for r in records]
    keys = list(cols)
    return [dict(zip(keys, row)) for row in zip(*cols.values())]


def _extra_edge_props(part: pd.DataFrame) -> list[str]:
    return [c for c in part.columns if c in schema.REL_PROPERTIES and c not in ("ts", "value")]


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _same(stored: Any, given: Any) -> bool:
    """Whether a stored property equals the given one (None and NaN both mean missing)."""
    if _missing(stored) or _missing(given):
        return _missing(stored) and _missing(given)
    return bool(stored == given)


def value_conflicts(rel: str, rows: list[dict[str, Any]],
                    present: list[dict[str, Any]]) -> list[ValueConflict]:
    """The events of ``present`` (``{eid, t, v}`` as stored) whose ``ts`` or ``value`` differ
    from those of the same ``eid`` in ``rows`` (``{e, t, v}`` as given), in row order."""
    stored = {p["eid"]: p for p in present}
    out = []
    for row in rows:
        p = stored.get(row["e"])
        if p is not None and not (_same(p["t"], row["t"]) and _same(p["v"], row["v"])):
            out.append(ValueConflict(rel, row["e"], None if _missing(p["t"]) else p["t"],
                                     None if _missing(p["v"]) else p["v"], row["t"], row["v"]))
    return out


def _on_node(exc: ConstraintError) -> bool:
    """Whether a uniqueness violation was on a node id: two writers ``MERGE`` the same new
    node (an item, the ledger), a race that a retry resolves."""
    key = duplicate_key(exc)
    return key is not None and key.owner in schema.NODE_PROPERTIES


class _Writer:
    """Writes one batch in one transaction together with its ledger entry."""

    def __init__(self, store: GraphStore, source: str, summary: IngestSummary,
                 journal: Path | None = None) -> None:
        self.store, self.source, self.summary = store, source, summary
        self.guarded_only = not store.capabilities.relationship_constraints
        self.journal = journal

    def _retried(self, exc: Exception) -> None:
        self.summary.retries += 1

    def _mark(self, tx: neo4j.Transaction, key: str) -> None:
        tx.run(cypher.LEDGER_MARK, source=self.source, batch=key).consume()

    def nodes(self, batch: _Batch) -> None:
        frame = batch.frame
        assert isinstance(frame, NodeFrame)
        rows = node_rows(batch.rows)
        with_props = any(row["p"] for row in rows)
        query = cypher.nodes(cypher.MERGE_NODES if with_props else cypher.MERGE_NODE_IDS,
                             frame.label)

        def work(tx: neo4j.Transaction) -> None:
            tx.run(query, rows=rows).consume()
            self._mark(tx, batch.key)

        # A node batch only MERGEs (nodes and the ledger): any id conflict is a race.
        self.store.write_retrying(work, f"writing {frame.label} nodes",
                                  retry_constraint=lambda exc: True, on_retry=self._retried)
        self.summary.nodes[frame.label] = self.summary.nodes.get(frame.label, 0) + len(rows)

    def edges(self, batch: _Batch) -> None:
        frame = batch.frame
        assert isinstance(frame, EdgeFrame)
        rows = edge_rows(batch.rows)
        extra = bool(_extra_edge_props(batch.rows))
        fast = cypher.edges(cypher.CREATE_EDGES, frame.rel, extra)

        def work(tx: neo4j.Transaction) -> int:
            self._create(tx, fast, frame.rel, rows)
            self._mark(tx, batch.key)
            return len(rows)

        created: int | None = None
        written = rows
        if not self.guarded_only:
            try:
                created = self.store.write_retrying(work, f"writing {frame.rel}",
                                                    retry_constraint=_on_node,
                                                    on_retry=self._retried)
            except ConstraintError:
                created = None  # some events are in the graph already: write only the others
        if created is None:
            written = self._guarded(batch, frame, rows, extra)
            created = len(written)
        self.summary.relationships[frame.rel] = self.summary.relationships.get(frame.rel, 0) \
            + created
        if self.journal is not None and written and frame.rel in schema.USER_ITEM_TYPES:
            write_journal_entry(self.journal, self.source, batch.key,
                                {frame.rel: sorted({row["s"] for row in written})})

    @staticmethod
    def _create(tx: neo4j.Transaction, query: str, rel: str, rows: list[dict[str, Any]]) -> None:
        record = tx.run(query, rows=rows).single()
        assert record is not None  # count() returns exactly one row
        if record["n"] != len(rows):  # an end node vanished since the check: write nothing
            raise GraphStoreError(f"only {record['n']} of {len(rows)} {rel} relationships found "
                                  "both end nodes; the graph changed during ingest, re-run")

    def _guarded(self, batch: _Batch, frame: EdgeFrame, rows: list[dict[str, Any]],
                 extra: bool) -> list[dict[str, Any]]:
        """Write the rows of ``batch`` not in the graph yet; returns those it created."""
        present_query = cypher.edges(cypher.PRESENT_EDGES, frame.rel)
        create_query = cypher.edges(cypher.CREATE_EDGES, frame.rel, extra)

        def work(tx: neo4j.Transaction) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            present = tx.run(present_query, rows=rows).data()
            known = {p["eid"] for p in present}
            new = [row for row in rows if row["e"] not in known]
            if new:
                self._create(tx, create_query, frame.rel, new)
            self._mark(tx, batch.key)
            return new, present

        def race(exc: ConstraintError) -> bool:
            return _on_node(exc) or self._eid_race(batch, frame, rows, exc)

        new, present = self.store.write_retrying(work, f"writing {frame.rel}",
                                                 retry_constraint=race,
                                                 on_retry=self._retried)
        self.summary.already_present += len(present)
        self.summary.add_conflicts(value_conflicts(frame.rel, rows, present))
        return new

    def _eid_race(self, batch: _Batch, frame: EdgeFrame, rows: list[dict[str, Any]],
                  exc: ConstraintError) -> bool:
        """After an eid conflict in a guarded write: True if it was a race (another writer
        created the same event meanwhile, between the same nodes); raise :class:`IngestError`
        if an event id of the batch belongs to a relationship between other nodes."""
        key = duplicate_key(exc)
        index = {row["e"]: k for k, row in enumerate(rows)}
        if key is not None and key.key in index:
            suspects = [key.key]
        else:  # the server's message names no event of the batch: check those not present
            present = self.store.query(cypher.edges(cypher.PRESENT_EDGES, frame.rel),
                                       what=f"checking {frame.rel} event ids", rows=rows)
            known = {p["eid"] for p in present}
            suspects = [row["e"] for row in rows if row["e"] not in known]
        query = cypher.edges(cypher.EDGE_BY_EID, frame.rel)
        for eid in suspects:
            row = rows[index[eid]]
            for found in self.store.query(query, what=f"checking {frame.rel} event ids",
                                          eid=eid):
                if (found["s"], found["d"]) != (row["s"], row["d"]):
                    line = batch.rows["_line"].iloc[index[eid]]
                    raise IngestError(
                        f"event id {quote(eid)} already belongs to a {frame.rel} relationship "
                        f"between other nodes ({quote(found['s'])} -> "
                        f"{quote(found['d'])}); event ids must be unique per relationship "
                        "type", file=frame.file or None, line=int(line), field="eid") from exc
        return True


def check_source(data: SourceData) -> None:
    """The checks on ``data`` that need no graph: frames, no internal labels, not empty.

    Raises:
        IngestError: what is wrong, and where.
    """
    data.validate()
    internal = [nf for nf in data.nodes if nf.label in schema.INTERNAL_LABELS]
    if internal:
        raise IngestError(f"{internal[0].label} nodes are shopgraph's own bookkeeping; a source "
                          "may not write them", file=internal[0].file or None)
    if not data.edges and not data.nodes:
        raise IngestError("nothing to ingest: the source has no rows",
                          file=str(data.files[0]) if data.files else None)


def ledger_keys(data: SourceData, batch_size: int) -> list[str]:
    """The keys of every batch :func:`ingest` plans for ``data``, in write order (as
    :func:`_plan` names them, without reading a streamed frame)."""
    groups: tuple[tuple[str, Sequence[NodeFrame | EdgeFrame]], ...] = (
        ("n", data.nodes), ("e", data.edges))
    return [f"{tag}{fi}:{start}" for tag, frames in groups for fi, frame in enumerate(frames)
            for start in range(0, _rows(frame), batch_size)]


def ingest(store: GraphStore, data: SourceData, *, batch_size: int = 10_000,
           strict: bool = True, on_progress: Progress | None = None,
           journal: str | Path | None = None) -> IngestSummary:
    """Validate ``data``, then write it in batches; see the module docstring.

    Args:
        store: the target graph.
        data: what a loader parsed.
        batch_size: rows per transaction.
        strict: raise on an unknown end id instead of skipping its rows.
        on_progress: called with (rows done, rows in all) after every batch.
        journal: the folder of the ingest journal (see the module docstring), or ``None``.

    Returns:
        What was written, skipped and resumed, and the events already present with other
        values (kept as they were).

    Raises:
        IngestError: invalid input; nothing was written (or, for an event id that belongs to
            a relationship between other nodes, nothing from that batch on).
        GraphStoreError: the server failed, another writer kept colliding with this one, or
            the graph's schema version does not fit; batches committed so far stay, and
            re-running the same command resumes after them.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    started = time.perf_counter()
    check_source(data)
    store.ensure_schema()
    check_references(store, data, strict)
    source = source_fingerprint(data, batch_size)
    summary = IngestSummary(data.name, source, problems=list(data.problems))
    done = store.query(cypher.LEDGER_READ, source=source)
    done_keys = set(done[0]["done"] or []) if done else set()
    frames: list[NodeFrame | EdgeFrame] = [*data.nodes, *data.edges]
    total = sum(_rows(f) for f in frames)
    summary.batches = sum(-(-_rows(f) // batch_size) for f in frames)
    if journal is not None:
        journal = Path(journal)
        start_journal(journal)
    writer = _Writer(store, source, summary, journal)
    rows_done = 0
    for index, batch in enumerate(_plan(data, batch_size)):
        if batch.key in done_keys:
            summary.batches_already_done += 1
        else:
            try:
                if isinstance(batch.frame, NodeFrame):
                    writer.nodes(batch)
                else:
                    writer.edges(batch)
            except GraphStoreError as exc:
                raise GraphStoreError(f"{exc} -- {index} of {summary.batches} batches are "
                                      "committed; run the same ingest again to resume") from exc
        rows_done += len(batch.rows)
        if on_progress:
            on_progress(rows_done, total)
    summary.seconds = time.perf_counter() - started
    return summary
