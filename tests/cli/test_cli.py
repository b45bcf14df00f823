"""The CLI end to end: its own embedded server, real files, JSON output equal to the API's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from shopgraph.cli.main import app
from shopgraph.graphdb.export import Interactions
from shopgraph.graphdb.server import EmbeddedServer
from shopgraph.workspace import Workspace
from tests.conftest import workspace_on

runner = CliRunner()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed entry point, with its error boundary, in a subprocess."""
    return subprocess.run([sys.executable, "-c", "from shopgraph.cli.main import run; run()",
                           *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "200"})


def test_help_explains_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("ingest", "export", "summary", "demo", "db"):
        assert command in result.output
    ingest_help = runner.invoke(app, ["ingest", "--help"], env={"COLUMNS": "200"}).output
    assert "--skip-bad" in ingest_help and "lightgcn" in ingest_help


def test_missing_file_is_a_one_line_error(tmp_path: Path) -> None:
    result = cli("ingest", "lightgcn", str(tmp_path / "nope.txt"), "-w", str(tmp_path / "ws"))
    assert result.returncode == 1
    assert "no such file" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "ws" / "graphdb" / "server.pid").exists()  # failed before starting


def test_malformed_line_names_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("0 1 2\n1 3 x4\n")
    result = cli("ingest", "lightgcn", str(bad), "-w", str(tmp_path / "ws"))
    assert result.returncode == 1
    assert f"file {bad}, line 2, field 'item[2]'" in result.stderr


def test_server_lifecycle_ingest_summary_export(tmp_path: Path, shared_data: Path) -> None:
    ws_dir = str(tmp_path / "ws")
    status = runner.invoke(app, ["db", "status", "-w", ws_dir])
    assert status.exit_code == 3
    assert runner.invoke(app, ["db", "start", "-w", ws_dir]).exit_code == 0
    try:
        again = cli("db", "start", "-w", ws_dir)
        assert again.returncode == 1 and "already running" in again.stderr
        result = runner.invoke(app, ["ingest", "lightgcn", str(shared_data / "lastfm/train.txt"),
                                     "-w", ws_dir, "--json"])
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout[result.stdout.index("{"):])
        assert summary["relationships"] == {"INTERACTED": 64_315}
        rerun = runner.invoke(app, ["ingest", "lightgcn", str(shared_data / "lastfm/train.txt"),
                                    "-w", ws_dir, "--json"])
        assert json.loads(rerun.stdout[rerun.stdout.index("{"):])["relationships"] == {}
        counts = runner.invoke(app, ["summary", "-w", ws_dir, "--json"])
        with Workspace(ws_dir) as ws:
            assert json.loads(counts.stdout) == ws.summary()
        out = tmp_path / "x.npz"
        assert runner.invoke(app, ["export", "-w", ws_dir, "--out", str(out)]).exit_code == 0
        assert len(Interactions.load(out)) == 64_315
    finally:
        assert runner.invoke(app, ["db", "stop", "-w", ws_dir]).exit_code == 0
    assert runner.invoke(app, ["db", "status", "-w", ws_dir]).exit_code == 3


def test_config_refuses_a_password(tmp_path: Path) -> None:
    (tmp_path / "shopgraph.toml").write_text('[db]\nuri = "bolt://x"\npassword = "s3cret"\n')
    result = cli("summary", "-w", str(tmp_path))
    assert result.returncode == 1 and "never store the password" in result.stderr
    assert "s3cret" not in result.stderr


def test_remote_server_down_says_what_to_do(tmp_path: Path) -> None:
    secret = "Zq9-not-to-be-printed"
    result = subprocess.run(
        [sys.executable, "-c", "from shopgraph.cli.main import run; run()", "summary",
         "-w", str(tmp_path)], capture_output=True, text=True, timeout=60,
        env={**os.environ, "SHOPGRAPH_URI": "bolt://127.0.0.1:9", "SHOPGRAPH_PASSWORD": secret})
    assert result.returncode == 1
    assert "cannot reach the graph server at bolt://127.0.0.1:9" in result.stderr
    assert secret not in result.stderr + result.stdout


def test_summary_json_of_an_empty_graph_is_json_issue_11(graph_server: EmbeddedServer,
                                                           tmp_path: Path) -> None:
    with workspace_on(graph_server, tmp_path, "emptysummary") as ws:
        result = cli("summary", "--json", "-w", str(ws.path))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"nodes": {}, "relationships": {}}
    assert "the graph is empty" in result.stderr


def test_a_server_dropping_the_connection_gives_one_line_not_driver_logs(tmp_path: Path
                                                                          ) -> None:
    """A Bolt server that dies mid-handshake: the driver logs "defunct connection" lines,
    which reach stderr only with --debug; without it the error is one line (issue 11)."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(20)
                conn.sendall(b"\x00\x00\x04\x05")  # agree to Bolt 5.4, then hang up
                conn.recv(1000)

    threading.Thread(target=serve, daemon=True).start()
    env = {**os.environ, "SHOPGRAPH_PASSWORD": "x"}
    args = ["--uri", f"bolt://127.0.0.1:{port}", "summary", "-w", str(tmp_path / "ws")]
    try:
        quiet = subprocess.run([sys.executable, "-c", "from shopgraph.cli.main import run; run()",
                                *args], capture_output=True, text=True, env=env, timeout=120)
        loud = subprocess.run([sys.executable, "-c", "from shopgraph.cli.main import run; run()",
                               "--debug", *args], capture_output=True, text=True, env=env,
                              timeout=120)
    finally:
        listener.close()
    assert quiet.returncode == 1 and "defunct" in loud.stderr  # the driver did log
    assert quiet.stderr.strip().count("\n") == 0, quiet.stderr
    assert quiet.stderr.startswith("error: cannot reach the graph server")
