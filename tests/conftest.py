"""Shared fixtures: the real local graph server, a fresh database per test, shared data."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from shopgraph.graphdb.server import EmbeddedServer
from shopgraph.graphdb.store import GraphStore

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
_db_names = itertools.count()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared datasets folder; tests using it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared datasets not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def graph_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """One real embedded ArcadeDB server for the whole test session."""
    server = EmbeddedServer(tmp_path_factory.mktemp("graphdb"), heap="1g")
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def store(graph_server: EmbeddedServer) -> Iterator[GraphStore]:
    """A connected store on a database of its own, dropped after the test."""
    name = f"t{next(_db_names)}"
    graph_server.ensure_database(name)
    with GraphStore(graph_server.uri, graph_server.user, graph_server.password(), name) as s:
        yield s
    graph_server.drop_database(name)
