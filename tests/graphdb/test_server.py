"""Tests of the embedded ArcadeDB server manager against a real server (no mocks)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from shopgraph.errors import ServerError
from shopgraph.graphdb.server import EmbeddedServer, free_port

neo4j = pytest.importorskip("neo4j")
if importlib.util.find_spec("arcadedb_embedded") is None:  # not imported: that starts a JVM
    pytest.skip("arcadedb-embedded is not installed", allow_module_level=True)


def _pids_under(path: Path) -> list[int]:
    """Pids of live processes whose command line mentions ``path``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(path).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


@pytest.fixture
def make_server(tmp_path):
    """Build EmbeddedServer objects under tmp_path; stop them (and any stray JVM) afterwards."""
    servers: list[EmbeddedServer] = []

    def make(**kwargs) -> EmbeddedServer:
        server = EmbeddedServer(tmp_path / "graphdb", heap="512m", **kwargs)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop(timeout=10)
    for pid in _pids_under(tmp_path):
        if pid != os.getpid():
            os.kill(pid, signal.SIGKILL)


def _run(server: EmbeddedServer, database: str, query: str):
    with neo4j.GraphDatabase.driver(server.uri, auth=(server.user, server.password())) as driver:
        with driver.session(database=database) as session:
            return session.run(query).single()


def test_lifecycle(make_server):
    server = make_server()
    assert not server.status().running
    status = server.start()
    assert status.running and status.pid and status.bolt_port and status.http_port
    assert server.status() == status
    assert status.uri == server.uri == f"bolt://127.0.0.1:{status.bolt_port}"
    assert server.ensure_database("shop") is True
    assert server.ensure_database("shop") is False
    assert _run(server, "shop", "RETURN 1 AS x")["x"] == 1
    with pytest.raises(ValueError):
        server.ensure_database("1bad; drop")
    with pytest.raises(ServerError, match="already running"):
        server.start()
    # A second manager for the same root sees the same server.
    assert EmbeddedServer(server.root).status().pid == status.pid
    server.drop_database("shop")
    assert server.ensure_database("shop") is True
    assert server.stop() is True
    assert not server.status().running
    assert not server.pid_file.exists()
    assert server.stop() is False


def test_password_and_data_survive_restart(make_server):
    server = make_server()
    server.start()
    mode = stat.S_IMODE(server.password_file.stat().st_mode)
    assert mode == 0o600
    password = server.password()
    assert password and password not in server.log_file.read_text()
    first = server.status()
    server.ensure_database("keep")
    _run(server, "keep", "CREATE (:Thing {name: 'a'})")
    server.stop()

    again = make_server()  # a fresh manager reads the stored password and ports
    again.start()
    assert again.password() == password
    assert (again.status().bolt_port, again.status().http_port) == (
        first.bolt_port, first.http_port)
    assert again.ensure_database("keep") is False
    assert _run(again, "keep", "MATCH (n:Thing) RETURN count(n) AS c")["c"] == 1
    assert again.stop() is True


def test_taken_port_is_refused(make_server):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        server = make_server(bolt_port=port)
        with pytest.raises(ServerError, match=str(port)):
            server.start()
        assert not server.status().running
        server = make_server(http_port=port)
        with pytest.raises(ServerError, match=str(port)):
            server.start()


def test_stale_pid_file_is_removed(make_server):
    server = make_server()
    dead = subprocess.Popen(["true"])
    dead.wait()
    server.root.mkdir(parents=True)
    server.pid_file.write_text(f"{dead.pid}\n")
    assert not server.status().running
    assert not server.pid_file.exists()
    # A live process that is not our server counts as stale too.
    server.pid_file.write_text(f"{os.getpid()}\n")
    assert not server.status().running
    assert not server.pid_file.exists()
    assert server.stop() is False


def _outward_ip() -> str | None:
    """A non-loopback IPv4 address of this machine, if any (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))
            address = sock.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_ports_bound_to_loopback_only(make_server):
    bolt, http = free_port(), free_port()
    while http == bolt:
        http = free_port()
    server = make_server(bolt_port=bolt, http_port=http)
    server.start()
    checked = False
    if shutil.which("ss"):
        out = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
        for port in (bolt, http):
            local = [line.split()[3] for line in out.splitlines()
                     if line.split()[3].rsplit(":", 1)[-1] == str(port)]
            assert local, f"port {port} not listening"
            assert all(addr.rsplit(":", 1)[0] in ("127.0.0.1", "[::ffff:127.0.0.1]")
                       for addr in local), local
        checked = True
    address = _outward_ip()
    if address:
        for port in (bolt, http):
            with pytest.raises(OSError):
                socket.create_connection((address, port), timeout=2).close()
        checked = True
    server.stop()
    if not checked:
        pytest.skip("neither `ss` nor a non-loopback address is available")


def test_the_graph_is_readable_by_its_owner_only_issue_11(graph_server: EmbeddedServer) -> None:
    """Folders 0700 and files 0600, the database's own files included (the JVM runs with umask
    077), so other local users can read neither the graph nor the log."""
    import os
    import stat

    graph_server.ensure_database("private")  # some database files written by the server
    seen = {"dirs": 0, "files": 0}
    for folder, _dirs, files in os.walk(graph_server.root):
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700, folder
        seen["dirs"] += 1
        for name in files:
            path = os.path.join(folder, name)
            assert stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0, path
            seen["files"] += 1
    assert seen["dirs"] >= 3 and seen["files"] >= 5
    assert (graph_server.root / "server.log").is_file()


def test_two_commands_on_a_fresh_workspace_start_one_server_issue_11(tmp_path: Path) -> None:
    """Both wait for the one server the first of them starts (under the server's lock)."""
    import sys

    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "shopgraph.toml").write_text('[db]\nheap = "1g"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPGRAPH_")}
    command = [sys.executable, "-c", "from shopgraph.cli.main import run; run()", "summary",
               "--json", "-w", str(ws)]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(2)]
    try:
        outs = [p.communicate(timeout=240) for p in procs]
        for p, (_, err) in zip(procs, outs):
            assert p.returncode == 0 and "error" not in err, err
        assert len(_pids_under(ws / "graphdb")) == 1
    finally:
        EmbeddedServer(ws / "graphdb").stop()
