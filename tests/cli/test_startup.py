"""`--help` appears at once: no help text imports a heavy library; `--debug` shows where an
error happened, and without it one line says what to do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HELPS = """
import sys
from typer.main import get_command
from typer.testing import CliRunner
from shopgraph.cli.main import app
runner = CliRunner()
paths = [[]]
for name, cmd in get_command(app).commands.items():
    paths.append([name])
    paths += [[name, sub] for sub in getattr(cmd, "commands", {})]
for path in paths:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output, (path, result.output)
print(len(paths), *sorted(m for m in ("pandas", "torch", "faiss", "neo4j") if m in sys.modules))
"""


def test_no_help_text_imports_pandas_torch_faiss_or_neo4j_issue_10() -> None:
    out = subprocess.run([sys.executable, "-c", HELPS], capture_output=True, text=True,
                         check=True).stdout.split()
    assert int(out[0]) >= 20 and out[1:] == []  # every command and subcommand, none heavy


def test_the_same_check_sees_a_heavy_import() -> None:
    """The check above can fail: a help text that imported pandas would be caught."""
    code = HELPS.replace("from shopgraph.cli.main import app",
                         "from shopgraph.cli.main import app\nimport pandas")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[1:] == ["pandas"]


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from shopgraph.cli.main import run; run()",
                           *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def test_errors_are_one_line_unless_debug_issue_10(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    plain = _cli("report", "-w", ws, env={"SHOPGRAPH_DEBUG": ""})
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    lines = plain.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no results at")
    assert "run `shopgraph run` first" in lines[0]
    for debug in (_cli("--debug", "report", "-w", ws),
                  _cli("report", "-w", ws, env={"SHOPGRAPH_DEBUG": "1"})):
        assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr
        assert "FileNotFoundError" in debug.stderr
        assert debug.stderr.strip().splitlines()[-1].startswith("error: no results at")


def test_error_text_is_never_read_as_markup(tmp_path: Path) -> None:
    bad = tmp_path / "[/x] a:b:c"
    result = _cli("report", "-w", str(tmp_path), "--results", str(bad))
    assert result.returncode == 1 and "MarkupError" not in result.stderr
    assert f"no results at {bad}" in " ".join(result.stderr.split())


def test_progress_labels_are_text_not_markup_issue_11() -> None:
    import io

    from rich.console import Console

    from shopgraph.cli import output

    saved, shown = output.err, io.StringIO()
    output.err = Console(file=shown, width=200, markup=False)
    try:
        with output.progress_bar("ingest d[red]x [/x]") as update:  # a folder's name
            assert update is not None
            update(1, 2)
    finally:
        output.err = saved
    assert "ingest d[red]x [/x]" in shown.getvalue()
