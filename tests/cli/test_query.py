"""``index build|info``, ``recommend``, ``similar`` and ``audience`` on a small shop in the real
local graph server: ``--format json`` equals the ``Workspace`` method, files, errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner, Result

from shopgraph.cli.main import app, run
from shopgraph.graphdb.server import EmbeddedServer
from shopgraph.workspace import Workspace
from tests.conftest import workspace_on
from tests.retrieval.test_queries import taste_shop

runner = CliRunner()


@pytest.fixture(scope="module")
def shop_ws(graph_server: EmbeddedServer, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Workspace]:
    """A workspace on the shared server with spectral embeddings (no index yet)."""
    folder = tmp_path_factory.mktemp("cliquery")
    with workspace_on(graph_server, folder, "cliquery") as ws:
        ws.ingest(taste_shop(folder))
        ws.train("spectral", progress=False, k=16)
        yield ws


def invoke(ws: Workspace, *args: str) -> Result:
    """Run a command of the app on ``ws``'s workspace."""
    return runner.invoke(app, [*args, "-w", str(ws.path)], env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def built(shop_ws: Workspace) -> dict[str, Any]:
    """The ``index build --json`` output (the index every query test uses)."""
    result = invoke(shop_ws, "index", "build", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def records(result: Result) -> list[dict[str, Any]]:
    """The JSON records a ``--format json`` command printed, after checking it succeeded."""
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def assert_same(cli: list[dict[str, Any]], api: pd.DataFrame) -> None:
    """CLI records equal the API's frame: ids exact, scores close."""
    expected = api.to_dict("records")
    assert [{k: v for k, v in r.items() if k != "score"} for r in cli] == \
        [{k: v for k, v in r.items() if k != "score"} for r in expected]
    assert [r["score"] for r in cli] == pytest.approx([r["score"] for r in expected], rel=1e-6)


def test_index_build_and_info(shop_ws: Workspace, built: dict[str, Any]) -> None:
    assert Path(built["path"]) == shop_ws.layout.index("spectral") and Path(built["path"]).is_file()
    assert set(built["indexes"]) == {"items", "users", "items_cosine", "users_cosine"}
    for ix in built["indexes"].values():  # a small shop: auto picks exact search
        assert ix["factory"] == "Flat" and ix["recall@20"] == 1.0
    assert built["seen_rel_types"] == ["PURCHASED"]
    info = invoke(shop_ws, "index", "info")
    assert info.exit_code == 0, info.output
    assert "items_cosine" in info.output and "Flat" in info.output
    assert str(shop_ws.layout.index("spectral")) in " ".join(info.output.split())
    as_json = json.loads(invoke(shop_ws, "index", "info", "--json").stdout)
    assert as_json["indexes"]["items"]["n"] == 40 and as_json["path"] == built["path"]


def test_recommend_json_equals_the_api(shop_ws: Workspace, built: dict[str, Any]) -> None:
    cli = records(invoke(shop_ws, "recommend", "u0", "u2", "-k", "3", "--format", "json"))
    assert len(cli) == 6 and list(cli[0]) == ["query", "rank", "item_id", "score"]
    assert_same(cli, shop_ws.recommend_batch(["u0", "u2"], 3).to_pandas())
    table = invoke(shop_ws, "recommend", "u0", "-k", "2")
    assert table.exit_code == 0 and "score" in table.stdout and "u0" in table.stdout


def test_recommend_filters(shop_ws: Workspace, built: dict[str, Any], tmp_path: Path) -> None:
    games = records(invoke(shop_ws, "recommend", "u0", "-k", "30", "--category", "games",
                           "--format", "json"))
    assert len(games) == 20 and all(20 <= int(r["item_id"][1:]) < 40 for r in games)
    allowed = tmp_path / "stock.txt"
    allowed.write_text("i1\ni21\n\ni22\n")
    stock = records(invoke(shop_ws, "recommend", "u1", "--items-file", str(allowed),
                           "--no-exclude-seen", "--format", "json"))
    assert {r["item_id"] for r in stock} == {"i1", "i21", "i22"}
    everyone = records(invoke(shop_ws, "recommend", "--all", "-k", "1", "--format", "json"))
    assert len(everyone) == 61  # 60 buyers and a user without interactions


def test_recommend_writes_csv_and_parquet_files(shop_ws: Workspace, built: dict[str, Any],
                                                tmp_path: Path) -> None:
    api = shop_ws.recommend_batch(["u0", "u2"], 3).to_pandas()
    target = tmp_path / "out" / "recs.csv"
    result = invoke(shop_ws, "recommend", "u0", "u2", "-k", "3", "--format", "csv",
                    "--output", str(target))
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and "wrote 6 rows" in result.stderr
    assert target.read_text().splitlines()[0] == "query,rank,item_id,score"
    pd.testing.assert_frame_equal(pd.read_csv(target, dtype={"query": str, "item_id": str}),
                                  api, check_dtype=False)
    parquet = tmp_path / "recs.parquet"  # the format follows the suffix
    assert invoke(shop_ws, "recommend", "u0", "u2", "-k", "3", "-o", str(parquet)).exit_code == 0
    pd.testing.assert_frame_equal(pd.read_parquet(parquet), api, check_dtype=False)
    assert not list(tmp_path.glob(".*.tmp")) and not list((tmp_path / "out").glob(".*.tmp"))


def test_similar_items_and_users(shop_ws: Workspace, built: dict[str, Any]) -> None:
    items = records(invoke(shop_ws, "similar", "i0", "--format", "json"))
    assert len(items) == 10 and "i0" not in {r["item_id"] for r in items}
    assert_same(items, shop_ws.similar_items_batch(["i0"], 10).to_pandas())
    users = records(invoke(shop_ws, "similar", "u1", "--users", "-k", "4", "--format", "json"))
    assert len(users) == 4 and "u1" not in {r["user_id"] for r in users}
    assert_same(users, shop_ws.similar_users_batch(["u1"], 4).to_pandas())


def test_audience_of_a_campaign(shop_ws: Workspace, built: dict[str, Any]) -> None:
    cli = records(invoke(shop_ws, "audience", "--campaign", "c1", "-n", "5", "--format", "json"))
    assert len(cli) == 5 and all(int(r["user_id"][1:]) % 2 == 1 for r in cli)  # gamers
    assert [r["query"] for r in cli] == ["c1"] * 5 and [r["rank"] for r in cli] == [1, 2, 3, 4, 5]
    api = shop_ws.audience("c1", 5)
    assert [r["user_id"] for r in cli] == [m.id for m in api]
    assert [r["score"] for r in cli] == pytest.approx([m.score for m in api], rel=1e-6)
    books = records(invoke(shop_ws, "audience", "--category", "books", "-n", "3",
                           "--format", "json"))
    assert all(int(r["user_id"][1:]) % 2 == 0 for r in books)


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
            ) -> tuple[int, str]:
    """Run the entry point with its error boundary; return the exit code and stderr."""
    monkeypatch.setattr(sys, "argv", ["shopgraph", *args])
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exited:
        run()
    return int(exited.value.code or 0), " ".join(capsys.readouterr().err.split())


def test_errors(shop_ws: Workspace, built: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                capsys: pytest.CaptureFixture[str]) -> None:
    ws = str(shop_ws.path)
    code, err = run_cli(monkeypatch, capsys, "recommend", "u1", "ghost", "-w", ws)
    assert code == 1 and "error:" in err and "'ghost'" in err and "Traceback" not in err
    code, _ = run_cli(monkeypatch, capsys, "recommend", "u1", "ghost", "--skip-unknown", "-w", ws)
    assert code == 0
    code, err = run_cli(monkeypatch, capsys, "recommend", "-w", ws)
    assert code == 2 and "give user ids or --all" in err
    code, err = run_cli(monkeypatch, capsys, "audience", "--campaign", "c1", "--category",
                        "games", "-w", ws)
    assert code == 2 and "exactly one of --campaign, --item, --category" in err
    code, err = run_cli(monkeypatch, capsys, "similar", "i0", "--format", "parquet", "-w", ws)
    assert code == 2 and "--output FILE.parquet" in err
    code, err = run_cli(monkeypatch, capsys, "recommend", "u0", "--category", "toys", "-w", ws)
    assert code == 1 and "category 'toys'" in err


@pytest.fixture()
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on a full file system: a tiny tmpfs filled up (root can mount one), else a
    read-only folder (a user other than root cannot write there)."""
    import os
    import subprocess

    folder = tmp_path / "full"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o500)
        yield folder
        folder.chmod(0o700)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        with open(folder / "filler", "wb", buffering=0) as fh, \
                pytest.raises(OSError, match="No space"):
            while True:
                fh.write(b"\0" * 1024)
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_full_disk_is_one_line_and_leaves_nothing_issue_11(
        shop_ws: Workspace, built: dict[str, Any], full_disk: Path) -> None:
    import subprocess

    before = sorted(p.name for p in full_disk.iterdir())
    commands = {"recs.csv": ["recommend", "u0", "-k", "3"],
                "audience.csv": ["audience", "--item", "i1", "-n", "5"],
                "target.csv": ["target", "--campaign", "c1", "-n", "5"],
                "interactions.npz": ["export"]}
    for name, args in commands.items():
        out = full_disk / name
        flag = "--out" if args[0] == "export" else "-o"
        result = subprocess.run([sys.executable, "-c", "from shopgraph.cli.main import run; run()",
                                 *args, flag, str(out), "-w", str(shop_ws.path)],
                                capture_output=True, text=True)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert lines[-1].startswith(f"error: cannot write {out}: "), result.stderr
        assert "No space left on device" in lines[-1] or "Permission denied" in lines[-1]
        assert sorted(p.name for p in full_disk.iterdir()) == before  # nothing, not even a temp
