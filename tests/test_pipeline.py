"""``shopgraph run`` on a small simulated shop in the real graph server: every step, the
skip-if-unchanged bookkeeping, a single step re-run, the report and the truth beside it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shopgraph.cli.main import app
from shopgraph.errors import ConfigError
from shopgraph.graphdb.server import EmbeddedServer
from shopgraph.pipeline import STEPS, Pipeline, load_config
from shopgraph.simulator import simulate
from tests.conftest import workspace_on


def test_run_every_step_then_skip_what_did_not_change(graph_server: EmbeddedServer,
                                                      tmp_path: Path) -> None:
    shop = tmp_path / "shop"
    simulate(shop, users=600, items=200, interactions=15_000, seed=3)
    config = load_config(shop / "run.toml")
    assert config["truth"] == str(shop / "truth.npz") and config["model"] == "lightgcn"
    config = {**config, "model": "spectral", "train": {"k": 32}}  # seconds, not a budget
    with workspace_on(graph_server, tmp_path, "pipeline") as ws:
        seen: list[tuple[str, str]] = []
        pipeline = Pipeline(ws, config, on_step=lambda s, status, _: seen.append((s, status)))
        results = pipeline.run()
        assert [s for s, _ in seen] == list(STEPS)
        assert results["data"]["relationships"]["PURCHASED"] > 0
        assert results["training"]["metrics"]["recall@20"] > 0
        assert 0.5 < results["churn"]["roc_auc"] <= 1 and "truth" in results["churn"]
        truth = results["training"]["truth"]
        assert 0 <= truth["recall@20"] <= 1 and "popularity" in truth
        target = results["target"]
        assert target["send"] + target["control"] == target["audience"] == 60
        assert Path(target["path"]).is_file() and target["written_back"] == 60
        plan = results["plan"]
        assert "skipped" in plan or ("truth" in plan and plan["budget_used"] <= plan["budget"])
        report = ws.path / "report.html"
        page = report.read_text()
        for plot in ("data-nodes", "ranking-metrics", "churn-roc", "churn-calibration",
                     "plan-audience" if "skipped" not in plan else "data-relationships"):
            assert f'data-plot="{plot}"' in page, plot
        saved = json.loads((ws.path / "run" / "results.json").read_text())
        assert saved["target"]["run_id"] == target["run_id"]

        seen.clear()
        Pipeline(ws, config, on_step=lambda s, status, _: seen.append((s, status))).run()
        assert all(status == "unchanged, skipped" for _, status in seen) and len(seen) == 7

        seen.clear()
        Pipeline(ws, config, on_step=lambda s, status, _: seen.append((s, status))).run(
            "target", force=True)
        assert seen == [("target", "done")]

        changed = {**config, "target": {**config["target"], "n": 30}}
        seen.clear()
        Pipeline(ws, changed, on_step=lambda s, status, _: seen.append((s, status))).run()
        assert dict(seen)["target"] == "done" and dict(seen)["train"] == "unchanged, skipped"

        res = CliRunner().invoke(app, ["run", str(shop / "run.toml"), "-w", str(ws.path),
                                       "--json"])
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["outputs"]["report"] == [str(report)]


def test_bad_configurations_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no run configuration"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[run]\nsource = 'x'\nmodle = 'spectral'\n")
    with pytest.raises(ConfigError, match="unknown \\[run\\] keys \\['modle'\\]"):
        load_config(bad)
    bad.write_text("[other]\n")
    with pytest.raises(ConfigError, match="no \\[run\\] table"):
        load_config(bad)
