"""``GraphStore``: the one way shopgraph talks to a graph database, over Bolt with ``neo4j``.

It works against Neo4j 5 and against the embedded ArcadeDB server. What differs between them is
found out once, at connect time, into :class:`Capabilities`.

Several writers may share one database (two ``shopgraph ingest`` at once, say). A write that
collides with another one (a transient error, or a uniqueness conflict the caller knows to be a
race) is rolled back whole and can be run again: :meth:`GraphStore.write_retrying` does so a
few times after a short, jittered pause, then gives up with a one-line :class:`GraphStoreError`.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, TypeVar

import neo4j
from neo4j import GraphDatabase
from neo4j.exceptions import (
    AuthError,
    ClientError,
    ConstraintError,
    Neo4jError,
    ServiceUnavailable,
    SessionExpired,
    TransientError,
)

from shopgraph.errors import GraphStoreError, ServerError
from shopgraph.graphdb import cypher, schema

T = TypeVar("T")
UNREACHABLE = (ServiceUnavailable, SessionExpired, ConnectionError, OSError)

#: How long :meth:`GraphStore.write_retrying` keeps trying a write that collides with other
#: writers, and its pauses: ``RETRY_DELAY_S * 2**k``, at most ``RETRY_MAX_DELAY_S``, times a
#: random factor in [0.5, 1.5) so that two colliding writers do not meet again at once. On
#: ArcadeDB two writers collide often (inserts into the same pages, edges appended to the same
#: popular items), and the one that lost must outwait the other one's busy phase: hence a
#: budget in seconds rather than a small number of tries.
RETRY_PATIENCE_S = 120.0
RETRY_DELAY_S = 0.05
RETRY_MAX_DELAY_S = 1.0
_jitter = random.Random()

# The duplicate key in a uniqueness violation: ArcadeDB, then Neo4j 5.
_DUPLICATE = (
    re.compile(r"Duplicated key \[(?P<key>.*)\] found on index '(?P<owner>\w+)\[(?P<prop>\w+)\]'",
               re.DOTALL),
    re.compile(r"already exists with (?:label|type) `(?P<owner>\w+)` and property "
               r"`(?P<prop>\w+)` = '?(?P<key>.*?)'?$", re.DOTALL),
)


class WriteConflictError(GraphStoreError):
    """A write transaction collided with a concurrent one (the server reported a transient
    error) and was rolled back whole; running it again may succeed."""


@dataclass(frozen=True)
class DuplicateKey:
    """What a uniqueness violation was about.

    Args:
        owner: the node label or relationship type of the constraint.
        prop: the constrained property (``id`` or ``eid``).
        key: the value that was already taken.
    """

    owner: str
    prop: str
    key: str


def duplicate_key(exc: ConstraintError) -> DuplicateKey | None:
    """The label or type, property and value of a uniqueness violation; None when the server's
    message has a form this does not know."""
    for pattern in _DUPLICATE:
        match = pattern.search(exc.message or "")
        if match:
            return DuplicateKey(match["owner"], match["prop"], match["key"])
    return None


@dataclass(frozen=True)
class Capabilities:
    """What the connected server is and can do.

    Args:
        product: ``"neo4j"`` or ``"arcadedb"``.
        version: the server's version string.
        relationship_constraints: uniqueness constraints on relationship properties
            (ArcadeDB; Neo4j from 5.7).
    """

    product: str
    version: str
    relationship_constraints: bool


def _capabilities(agent: str) -> Capabilities:
    if "arcadedb" in agent.lower():
        version = re.search(r"ArcadeDB ([\w.\-]+)", agent)
        return Capabilities("arcadedb", version.group(1) if version else agent, True)
    match = re.search(r"Neo4j/(\d+)\.(\d+)", agent)
    major, minor = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
    if major < 5:
        raise GraphStoreError(f"server {agent!r} is not supported; shopgraph needs Neo4j 5 or "
                              "the embedded ArcadeDB server")
    return Capabilities("neo4j", f"{major}.{minor}", (major, minor) >= (5, 7))


class GraphStore:
    """A connection to one database of a Bolt server.

    Args:
        uri: the Bolt URI.
        user: the user name.
        password: the password (kept in memory only, never printed).
        database: the database to use.
        fetch_size: records pulled per round trip when streaming results.
        type_count: the number of records of a type, asked of the server another way than
            Cypher (the embedded server's :meth:`~shopgraph.graphdb.server.EmbeddedServer.
            type_count`: 0.5 s on 21M edges, where ArcadeDB's Cypher ``count(r)`` takes 7.5 s
            on any type); a :class:`~shopgraph.errors.ServerError` from it falls back to Cypher.
    """

    def __init__(self, uri: str, user: str, password: str, database: str,
                 fetch_size: int = 20_000,
                 type_count: Callable[[str], int] | None = None) -> None:
        self.uri, self.user, self.database = uri, user, database
        self.fetch_size = fetch_size
        self._type_count = type_count
        try:
            self._driver = GraphDatabase.driver(uri, auth=(user, password))
            self._driver.verify_connectivity()
            agent = self._driver.get_server_info().agent
        except AuthError as exc:
            raise GraphStoreError(f"authentication failed for user {user!r} at {uri}; check "
                                  "SHOPGRAPH_USER and SHOPGRAPH_PASSWORD") from exc
        except UNREACHABLE as exc:
            raise GraphStoreError(self._unreachable_message()) from exc
        self.capabilities = _capabilities(agent)

    def _unreachable_message(self) -> str:
        return (f"cannot reach the graph server at {self.uri}; start it with `shopgraph db "
                "start` (embedded) or check SHOPGRAPH_URI, then run the command again")

    def __enter__(self) -> GraphStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the driver and its connections."""
        self._driver.close()

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except UNREACHABLE as exc:
            raise GraphStoreError(self._unreachable_message() + f" (while {what})") from exc
        except ClientError as exc:
            if "ConstraintValidationFailed" in (exc.code or ""):
                raise
            raise GraphStoreError(f"the server rejected a query while {what}: {exc.message}") \
                from exc
        except TransientError as exc:
            raise WriteConflictError(f"another writer changed the same data while {what}: "
                                     f"{exc.message}") from exc
        except Neo4jError as exc:
            raise GraphStoreError(f"the server failed while {what}: {exc.message}") from exc

    def query(self, text: str, what: str = "reading", **params: Any) -> list[dict[str, Any]]:
        """Run a read query and return all records as dicts (for small results)."""
        with self._errors(what), self._driver.session(database=self.database) as session:
            return session.run(text, params).data()

    def stream(self, text: str, what: str = "exporting",
               **params: Any) -> Iterator[neo4j.Record]:
        """Yield records one at a time, pulled from the server ``fetch_size`` at a time."""
        with self._errors(what), self._driver.session(
                database=self.database, fetch_size=self.fetch_size) as session:
            yield from session.run(text, params)

    def write(self, work: Callable[[neo4j.Transaction], T], what: str = "writing") -> T:
        """Run ``work(tx)`` in one write transaction: all of it is committed, or none.

        Constraint violations propagate as :class:`neo4j.exceptions.ConstraintError` so that the
        caller can decide; a collision with another writer becomes a
        :class:`WriteConflictError`, every other failure a :class:`GraphStoreError`.
        """
        with self._errors(what), self._driver.session(database=self.database) as session:
            tx = session.begin_transaction()
            try:
                result = work(tx)
                tx.commit()
                return result
            finally:
                if not tx.closed():
                    tx.close()

    def write_retrying(self, work: Callable[[neo4j.Transaction], T], what: str = "writing", *,
                       retry_constraint: Callable[[ConstraintError], bool] | None = None,
                       on_retry: Callable[[Exception], None] | None = None,
                       patience: float = RETRY_PATIENCE_S) -> T:
        """:meth:`write`, run again when it collided with another writer.

        ``work`` must be safe to run again after a rollback (idempotent, as ``MERGE`` is). A
        transient error is always retried; a constraint violation only when
        ``retry_constraint(exc)`` says it was a race (it may also raise the error it stands for).
        ``on_retry(exc)`` is called before each new try.

        Raises:
            GraphStoreError: still colliding after ``patience`` seconds (the message says that
                another writer is busy and that running the command again resumes), or
                :meth:`write`'s errors.
            neo4j.exceptions.ConstraintError: a violation that is not a race.
        """
        return self._retrying(lambda: self.write(work, what), what, retry_constraint, on_retry,
                              patience)

    def _retrying(self, call: Callable[[], T], what: str,
                  retry_constraint: Callable[[ConstraintError], bool] | None = None,
                  on_retry: Callable[[Exception], None] | None = None,
                  patience: float = RETRY_PATIENCE_S) -> T:
        deadline = time.monotonic() + patience
        tries = 0
        while True:
            tries += 1
            try:
                return call()
            except WriteConflictError as exc:
                cause: Exception = exc
            except ConstraintError as exc:
                if retry_constraint is None or not retry_constraint(exc):
                    raise
                cause = exc
            pause = min(RETRY_MAX_DELAY_S, RETRY_DELAY_S * 2 ** (tries - 1))
            pause *= _jitter.uniform(0.5, 1.5)
            if time.monotonic() + pause > deadline:
                raise GraphStoreError(
                    f"another writer is busy with the same data in database {self.database!r} "
                    f"({what} collided with it {tries} times in {patience:.0f} s); let it "
                    "finish, then run the same command again: it resumes where this one "
                    "stopped") from cause
            if on_retry is not None:
                on_retry(cause)
            time.sleep(pause)

    def ensure_schema(self) -> None:
        """Create every uniqueness constraint of :mod:`shopgraph.graphdb.schema` (idempotent),
        then make sure the graph is at :data:`~shopgraph.graphdb.schema.SCHEMA_VERSION` (see
        :meth:`ensure_schema_version`)."""
        for constraint in schema.constraints():
            is_rel = constraint.name.endswith("_eid")
            if is_rel and not self.capabilities.relationship_constraints:
                continue  # Neo4j < 5.7: event ids are then guarded by the ingest ledger only
            self._create_constraint(constraint)
        self.ensure_schema_version()

    def _create_constraint(self, constraint: schema.Constraint) -> None:
        what = f"creating constraint {constraint.name}"
        self._retrying(lambda: self.query(constraint.cypher, what=what), what)

    def schema_version(self) -> int | None:
        """The schema version recorded in the graph; None when none is (an empty graph, or
        one written before versions were recorded, i.e. version 1)."""
        rows = self.query(cypher.META_READ, what="reading the schema version",
                          key=schema.META_SCHEMA_KEY)
        version = rows[0]["version"] if rows else None
        return None if version is None else int(version)

    def ensure_schema_version(self) -> None:
        """Record :data:`~shopgraph.graphdb.schema.SCHEMA_VERSION` in a graph that can take it.

        An empty graph is stamped. A graph of version 2 or later (but not newer than this
        shopgraph) is stamped as it is: the versions since 2 only add properties, so every
        stored value still means what it meant. A graph of version 1 (or with data but no
        version) is stamped if no node id contains ``':'`` or ``'%'``: only such ids get another
        event id from version 2 on, so every stored event id is still right.

        Raises:
            GraphStoreError: the graph has a newer version than this shopgraph knows, or it was
                written with event ids that version 2 and later write differently.
        """
        version = self.schema_version()
        if version == schema.SCHEMA_VERSION:
            return
        if version is not None and version > schema.SCHEMA_VERSION:
            raise GraphStoreError(
                f"database {self.database!r} has graph schema version {version}, newer than this "
                f"shopgraph knows ({schema.SCHEMA_VERSION}); upgrade shopgraph, or use another "
                "database")
        escaped = schema.ESCAPED_EVENT_IDS_VERSION
        if (version is not None and version < escaped) or (version is None and self._has_data()):
            for lab in schema.DATA_LABELS:
                rows = self.query(cypher.nodes(cypher.NODE_ID_CONTAINING, lab), a=":", b="%",
                                  what="checking the ids of an older graph")
                if rows:
                    raise GraphStoreError(
                        f"database {self.database!r} was written with ambiguous event ids (ids "
                        f"containing ':' or '%', such as {lab} id {str(rows[0]['id'])[:40]!r}) "
                        f"by a shopgraph older than schema version {escaped}; "
                        "re-ingest into a fresh database")

        def stamp(tx: neo4j.Transaction) -> None:
            tx.run(cypher.META_WRITE, key=schema.META_SCHEMA_KEY,
                   version=schema.SCHEMA_VERSION).consume()

        # Two first ingests at once both MERGE the one meta node: the loser runs again.
        self.write_retrying(stamp, "recording the schema version",
                            retry_constraint=lambda exc: True)

    def _has_data(self) -> bool:
        return any(self.query(cypher.nodes(cypher.ANY_NODE, lab), what="looking for data")
                   for lab in schema.DATA_LABELS)

    def is_empty(self) -> bool:
        """Whether the database holds no node but the schema version's (no data, no ledger,
        nothing of another application)."""
        return not self.query(cypher.ANY_BUT_META, what="checking that the database is empty")

    def count_nodes(self, label: str) -> int:
        """Number of nodes with ``label``."""
        return int(self.query(cypher.nodes(cypher.COUNT_NODES, label))[0]["n"])

    def count_rels(self, rel: str) -> int:
        """Number of relationships of type ``rel`` (from the store's ``type_count`` where it
        has one and it answers, else by Cypher)."""
        rel = schema.rel(rel)
        if self._type_count is not None:
            with suppress(ServerError):
                return self._type_count(rel)
        return int(self.query(cypher.edges(cypher.COUNT_RELS, rel))[0]["n"])

    def summary(self) -> dict[str, dict[str, int]]:
        """Counts of every node label and relationship type in the schema (zeros left out)."""
        nodes = {lab: self.count_nodes(lab) for lab in schema.DATA_LABELS}
        rels = {rel: self.count_rels(rel) for rel in schema.RELATIONSHIPS}
        return {"nodes": {k: v for k, v in nodes.items() if v},
                "relationships": {k: v for k, v in rels.items() if v}}
