"""Shared fixtures: the real local graph server, a fresh database per test, shared data."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from shopgraph.graphdb.server import EmbeddedServer
from shopgraph.graphdb.store import GraphStore
from shopgraph.workspace import Workspace

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


@contextmanager
def workspace_on(server: EmbeddedServer, folder: Path, database: str) -> Iterator[Workspace]:
    """A workspace at ``folder/ws`` whose graph is ``database`` on the test server (through the
    ``SHOPGRAPH_*`` variables, as a user would set them); the database is dropped afterwards."""
    server.ensure_database(database)
    mp = pytest.MonkeyPatch()
    for key, value in {"SHOPGRAPH_URI": server.uri, "SHOPGRAPH_USER": server.user,
                       "SHOPGRAPH_PASSWORD": server.password(),
                       "SHOPGRAPH_DATABASE": database}.items():
        mp.setenv(key, value)
    ws = Workspace(folder / "ws")
    try:
        yield ws
    finally:
        ws.close()
        mp.undo()
        server.drop_database(database)


@pytest.fixture(scope="session")
def dask_cluster() -> Iterator[str]:
    """A real local Dask cluster of two single-threaded worker processes; its address (skips
    where Dask is not installed)."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster:
        yield cluster.scheduler_address
