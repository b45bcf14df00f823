"""``GraphStore``: the one way shopgraph talks to a graph database, over Bolt with ``neo4j``.

It works against Neo4j 5 and against the embedded ArcadeDB server. What differs between them is
found out once, at connect time, into :class:`Capabilities`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import neo4j
from neo4j import GraphDatabase
from neo4j.exceptions import AuthError, ClientError, Neo4jError, ServiceUnavailable, SessionExpired

from shopgraph.errors import GraphStoreError
from shopgraph.graphdb import cypher, schema

T = TypeVar("T")
UNREACHABLE = (ServiceUnavailable, SessionExpired, ConnectionError, OSError)


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
    """

    def __init__(self, uri: str, user: str, password: str, database: str,
                 fetch_size: int = 20_000) -> None:
        self.uri, self.user, self.database = uri, user, database
        self.fetch_size = fetch_size
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
        caller can decide; every other failure becomes a :class:`GraphStoreError`.
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

    def ensure_schema(self) -> None:
        """Create every uniqueness constraint of :mod:`shopgraph.graphdb.schema` (idempotent)."""
        for constraint in schema.constraints():
            is_rel = constraint.name.endswith("_eid")
            if is_rel and not self.capabilities.relationship_constraints:
                continue  # Neo4j < 5.7: event ids are then guarded by the ingest ledger only
            self.query(constraint.cypher, what=f"creating constraint {constraint.name}")

    def count_nodes(self, label: str) -> int:
        """Number of nodes with ``label``."""
        return int(self.query(cypher.nodes(cypher.COUNT_NODES, label))[0]["n"])

    def count_rels(self, rel: str) -> int:
        """Number of relationships of type ``rel``."""
        return int(self.query(cypher.edges(cypher.COUNT_RELS, rel))[0]["n"])

    def summary(self) -> dict[str, dict[str, int]]:
        """Counts of every node label and relationship type in the schema (zeros left out)."""
        nodes = {lab: self.count_nodes(lab) for lab in schema.NODE_PROPERTIES
                 if lab != "IngestLog"}
        rels = {rel: self.count_rels(rel) for rel in schema.RELATIONSHIPS}
        return {"nodes": {k: v for k, v in nodes.items() if v},
                "relationships": {k: v for k, v in rels.items() if v}}
