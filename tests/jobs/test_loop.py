"""The campaign loop on a small simulated shop and the real local server: decisions logged with
their propensities, the truth beside every estimate, the trained model folded forward after
every round, and a resume after a crash that draws nothing again."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shopgraph.config import load_run_config
from shopgraph.gnn.checkpoint import load_checkpoint
from shopgraph.graphdb import tables
from shopgraph.graphdb.formats import load
from shopgraph.graphdb.server import EmbeddedServer
from shopgraph.jobs import loop as loop_job
from shopgraph.simulator import simulate
from tests.conftest import workspace_on

SHOP = {"users": 600, "items": 120, "interactions": 12_000, "seed": 5}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("loopshop")
    simulate(out, **SHOP)
    return out


def test_two_rounds_log_decisions_and_resume_after_a_crash(
        source: Path, tmp_path: Path, graph_server: EmbeddedServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    shop = Path(shutil.copytree(source, tmp_path / "shop"))
    cfg = load_run_config(shop / "run.toml")
    assert cfg.loop is not None and cfg.loop.policy == "thompson"
    real_answer = loop_job.answer_round
    calls = {"n": 0}

    def crash_once(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 2:  # round 2: decisions drawn and written back, no answer yet
            raise RuntimeError("killed")
        return real_answer(*args, **kwargs)  # type: ignore[arg-type]

    with workspace_on(graph_server, tmp_path, "loop") as ws:
        ws.ingest(load("tabular", shop / "mapping.toml"))
        ws.train("spectral")  # a trained model is brought up to date after every round
        trained = load_checkpoint(ws.layout.checkpoint("spectral")).data_fingerprint
        monkeypatch.setattr(loop_job, "answer_round", crash_once)
        with pytest.raises(RuntimeError, match="killed"):
            ws.loop(cfg, rounds=2)
        state = json.loads(ws.layout.loop_state.read_text())
        assert list(state["rounds"]) == ["w01"]  # the failed round is not recorded
        drawn = pd.read_parquet(ws.layout.loop_round("w02") / "decisions.parquet")
        result = ws.loop(cfg, rounds=2)
        again = pd.read_parquet(ws.layout.loop_round("w02") / "decisions.parquet")
        pd.testing.assert_frame_equal(drawn, again)  # resumed with the same decisions
        assert [r["round"] for r in result.rounds] == ["w01", "w02"]

        log = tables.decision_log(ws.store())
        assert set(log["campaign_id"]) == {"round-w01", "round-w02"}
        w2 = log[log["campaign_id"] == "round-w02"].set_index("user_id")
        d2 = drawn.set_index("user_id").loc[w2.index]
        assert (w2["offer"] == d2["offer"]).all()
        np.testing.assert_allclose(w2["propensity"].to_numpy(), d2["propensity"].to_numpy())
        probs = d2[[c for c in d2.columns if c.startswith("p_")]].to_numpy()
        np.testing.assert_allclose(probs.sum(axis=1), 1.0)
        assert (w2["control"] == d2["control"]).all() and d2["control"].mean() > 0.03
        fingerprints = {trained}
        for rec in result.rounds:
            (update,) = rec["model_updates"]
            assert update["model"] == "spectral"
            # folded in, or refitted once the round's pairs pass the drift threshold
            assert update["mode"] in ("folded", "refitted")
            fingerprints.add(update["fingerprint"])
            assert rec["cost"] <= cfg.loop.budget
            assert {"policy_value", "realised_value", "greedy_value"} <= set(rec["truth"])
            dr = rec["ope_policy"]["dr"]
            assert dr["ci_low"] <= dr["value"] <= dr["ci_high"]
        assert len(fingerprints) == 3  # each round's fold changed the served model
        assert load_checkpoint(ws.layout.checkpoint("spectral")).data_fingerprint != trained
        # a third call with the same rounds does nothing more
        calls["n"] = -100
        assert ws.loop(cfg, rounds=2).rounds == result.rounds

