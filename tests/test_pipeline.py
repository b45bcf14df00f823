"""``shopgraph run`` on a small simulated shop in the real graph server: every step, the
skip-if-unchanged bookkeeping, a single step re-run, the report and the truth beside it."""

from __future__ import annotations

import json
import os
import signal
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from shopgraph.cli.main import app
from shopgraph.config import TrainConfig, load_run_config
from shopgraph.errors import ConfigError, GraphStoreError
from shopgraph.graphdb.server import EmbeddedServer
from shopgraph.pipeline import STEPS, Pipeline
from shopgraph.simulator import simulate
from shopgraph.workspace import Workspace
from tests.conftest import workspace_on


def test_run_every_step_then_skip_what_did_not_change(graph_server: EmbeddedServer,
                                                      tmp_path: Path) -> None:
    shop = tmp_path / "shop"
    simulate(shop, users=600, items=200, interactions=15_000, seed=3)
    config = load_run_config(shop / "run.toml")
    assert config.truth == shop / "truth.npz" and config.model == "spectral"
    config = replace(config, model="spectral",  # seconds, not a budget
                     train=replace(config.train, settings={"k": 32}))
    with workspace_on(graph_server, tmp_path, "pipeline") as ws:
        seen: list[tuple[str, str]] = []
        pipeline = Pipeline(ws, config, on_step=lambda s, status, _: seen.append((s, status)))
        results = pipeline.run().results
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
        state = json.loads((ws.path / "run" / "state.json").read_text())
        assert state["ingest"]["output"]["bulk"] is False  # auto: a small source, row by row

        seen.clear()
        Pipeline(ws, config, on_step=lambda s, status, _: seen.append((s, status))).run()
        assert all(status == "unchanged, skipped" for _, status in seen) and len(seen) == 7

        seen.clear()
        Pipeline(ws, config, on_step=lambda s, status, _: seen.append((s, status))).run(
            "target", force=True)
        assert seen == [("target", "done")]

        assert config.target is not None
        changed = replace(config, target=replace(config.target, n=30))
        seen.clear()
        Pipeline(ws, changed, on_step=lambda s, status, _: seen.append((s, status))).run()
        assert dict(seen)["target"] == "done" and dict(seen)["train"] == "unchanged, skipped"

        res = CliRunner().invoke(app, ["run", str(shop / "run.toml"), "-w", str(ws.path),
                                       "--json"])
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["outputs"]["report"] == [str(report)]


def test_bad_configurations_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no run configuration"):
        load_run_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[run]\nsource = 'x'\nmodle = 'spectral'\n")
    with pytest.raises(ConfigError, match="unknown \\[run\\] keys \\['modle'\\]"):
        load_run_config(bad)
    bad.write_text("[other]\n")
    with pytest.raises(ConfigError, match="no \\[run\\] table"):
        load_run_config(bad)


def test_a_step_that_fails_is_not_recorded_and_runs_again_issue_10(tmp_path: Path) -> None:
    """The graph server is killed as the target step starts: the step fails (it is not a plan
    the data could not support), nothing marks it done, and the next run runs it."""
    shop = tmp_path / "shop"
    simulate(shop, users=300, items=100, interactions=6_000, seed=4)
    config = load_run_config(shop / "run.toml")
    config = replace(config, model="spectral", train=replace(config.train, settings={"k": 16}),
                     offers=None)
    folder = tmp_path / "ws"
    folder.mkdir()
    (folder / "shopgraph.toml").write_text('[db]\nheap = "1g"\n')
    ws = Workspace(folder)
    server = ws.server()

    def kill_before_target(step: str, status: str, _: float) -> None:
        seen.append((step, status))
        if step == "heads":  # the server dies (SIGKILL) as the target step starts
            pid = server.status().pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)

    seen: list[tuple[str, str]] = []
    try:
        with pytest.raises(GraphStoreError, match="cannot reach|graph server"):
            ws.run(config, on_step=kill_before_target)
        ws.close()
        assert [s for s, _ in seen] == ["ingest", "train", "index", "heads"]
        state = json.loads((folder / "run" / "state.json").read_text())
        results = json.loads((folder / "run" / "results.json").read_text())
        assert "target" not in state and "report" not in state and "target" not in results

        seen.clear()
        with Workspace(folder) as again:  # starts the server again
            outcome = again.run(config, on_step=lambda s, status, _: seen.append((s, status)))
        assert dict(seen) == {"ingest": "unchanged, skipped", "train": "unchanged, skipped",
                              "index": "unchanged, skipped", "heads": "unchanged, skipped",
                              "target": "done", "report": "done"}
        assert outcome.results["target"]["send"] > 0
        assert Path(outcome.results["target"]["path"]).is_file()
    finally:
        server.stop()


def test_unknown_model_settings_are_refused_before_anything_runs(tmp_path: Path) -> None:
    run = tmp_path / "run.toml"
    run.write_text("[run]\nmodel = 'spectral'\n[run.train]\nepochs = 3\n")
    with pytest.raises(ConfigError, match=r"unknown \[run.train\] keys \['epochs'\] for model "
                                          r"'spectral'; valid: \[.*'k'"):
        Workspace(tmp_path / "ws").run(run)
    run.write_text("[run]\nmodel = 'lightgnc'\n")
    with pytest.raises(ConfigError, match=r"\[run\] model: unknown model 'lightgnc'"):
        Workspace(tmp_path / "ws").run(run)
    assert not (tmp_path / "ws" / "run").exists()


def test_new_events_update_the_model_instead_of_training_it_again(
        graph_server: EmbeddedServer, tmp_path: Path) -> None:
    """Issue 13: a second run after new events takes the update path (fold in or refit, no
    split and tuning); ``force`` trains again."""
    shop = tmp_path / "shop"
    simulate(shop, users=500, items=150, interactions=10_000, seed=6)
    config = replace(load_run_config(shop / "run.toml"), offers=None, target=None,
                     train=TrainConfig(settings={"k": 32}))
    with workspace_on(graph_server, tmp_path, "updates") as ws:
        ws.run(config)
        state = json.loads((ws.path / "run" / "state.json").read_text())
        assert "update" not in state["train"]["output"]
        first = state["train"]["output"]["fingerprint"]

        views = pd.read_parquet(shop / "views.parquet")
        items = views["item_id"].unique()
        more = views.sample(100, random_state=0).assign(  # mostly pairs not seen before
            item_id=np.random.default_rng(0).choice(items, 100),
            event_id=[f"vnew{i}" for i in range(100)], ts=int(views["ts"].max()) + 60)
        pd.concat([views, more], ignore_index=True).to_parquet(shop / "views.parquet")
        seen: list[tuple[str, str]] = []
        outcome = ws.run(config, on_step=lambda s, status, _: seen.append((s, status)))
        assert dict(seen)["ingest"] == "done" and dict(seen)["train"] == "done"
        update = outcome.results["training"]["update"]
        assert update["mode"] == "folded" and update["new_interactions"] > 0, update
        state = json.loads((ws.path / "run" / "state.json").read_text())
        assert state["train"]["output"]["fingerprint"] != first
        assert dict(seen)["index"] == "done"  # rebuilt for the new checkpoint

        seen.clear()
        ws.run(config, step="train", force=True)
        state = json.loads((ws.path / "run" / "state.json").read_text())
        assert "update" not in state["train"]["output"]


def test_a_first_load_can_go_through_the_bulk_loader_and_later_ones_add_row_by_row(
        tmp_path: Path) -> None:
    """``first_load = "bulk"``: the empty database of the workspace's own server is filled by
    the importer (the same counts as the source); the next ingest, with new events, adds them
    row by row on top of it (the ledger and the eid constraint came with the bulk load)."""
    shop = tmp_path / "shop"
    simulate(shop, users=300, items=100, interactions=6_000, seed=5)
    config = replace(load_run_config(shop / "run.toml"), first_load="bulk")
    folder = tmp_path / "ws"
    folder.mkdir()
    (folder / "shopgraph.toml").write_text('[db]\nheap = "1g"\n')
    views = pd.read_parquet(shop / "views.parquet")
    try:
        with Workspace(folder) as ws:
            ws.run(config, step="ingest")
            output = json.loads((folder / "run" / "state.json").read_text())["ingest"]["output"]
            assert output["bulk"] is True
            assert ws.summary()["relationships"]["VIEWED"] == len(views)
            more = views.sample(50, random_state=0).assign(
                event_id=[f"vnew{i}" for i in range(50)], ts=int(views["ts"].max()) + 60)
            pd.concat([views, more], ignore_index=True).to_parquet(shop / "views.parquet")
            ws.run(config, step="ingest")
            output = json.loads((folder / "run" / "state.json").read_text())["ingest"]["output"]
            assert output["bulk"] is False and output["written"] == 50
            assert ws.summary()["relationships"]["VIEWED"] == len(views) + 50
    finally:
        Workspace(folder).server().stop()
