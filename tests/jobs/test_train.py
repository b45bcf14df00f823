"""Train and evaluate from a workspace's graph, through the Python API and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from shopgraph.cli.main import app
from shopgraph.config import TrainConfig, load_run_config
from shopgraph.errors import CheckpointMismatchError
from shopgraph.gnn.checkpoint import load_checkpoint
from shopgraph.gnn.data import InteractionMatrix
from shopgraph.gnn.split import holdout_split
from shopgraph.graphdb.formats.common import nodes_from_ids
from shopgraph.graphdb.frames import EdgeFrame, SourceData
from shopgraph.graphdb.server import EmbeddedServer
from tests.conftest import workspace_on
from tests.graphdb.helpers import edges_frame


def test_split_is_temporal_with_timestamps_and_keeps_single_interactions() -> None:
    u = np.array([0, 0, 0, 0, 0, 1, 1, 2])
    i = np.array([0, 1, 2, 3, 4, 0, 1, 2])
    ts = np.array([5, 4, 3, 2, 1, 1, 2, 9])
    train, held = holdout_split(u, i, 3, 5, ts=ts, fraction=0.4)
    assert held.matrix.toarray().tolist() == [[1, 1, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 0, 0, 0]]
    assert train.nnz + held.nnz == 8
    a, _ = holdout_split(u, i, 3, 5, fraction=0.4, seed=1)
    b, _ = holdout_split(u, i, 3, 5, fraction=0.4, seed=1)
    assert (a.matrix != b.matrix).nnz == 0
    with pytest.raises(ValueError, match="fraction"):
        holdout_split(u, i, 3, 5, fraction=1.0)


def shop(tmp_path: Path, n_users: int = 60, n_items: int = 40, seed: int = 0) -> SourceData:
    """Users in two taste groups, each buying mostly from its half of the catalogue."""
    rng = np.random.default_rng(seed)
    pairs = set()
    for u in range(n_users):
        half = (u % 2) * (n_items // 2)
        for i in rng.choice(n_items // 2, 8, replace=False):
            pairs.add((f"u{u}", f"i{half + i}"))
    pairs = sorted(pairs)
    f = tmp_path / "shop.txt"
    f.write_text("\n".join(f"{a} {b}" for a, b in pairs))
    df = edges_frame(pairs)
    return SourceData("shop", [f], nodes=[nodes_from_ids("User", df["src"]),
                                          nodes_from_ids("Item", df["dst"])],
                      edges=[EdgeFrame("PURCHASED", df)])


def test_train_evaluate_and_refuse_changed_graph(graph_server: EmbeddedServer,
                                                 tmp_path: Path) -> None:
    with workspace_on(graph_server, tmp_path, "wf") as ws:
        ws.ingest(shop(tmp_path))
        runner = CliRunner()
        result = runner.invoke(app, ["train", "-w", str(ws.path), "--model", "lightgcn",
                                     "--epochs", "20",
                                     "--lr", "0.01", "--batch-size", "64", "--dim", "8",
                                     "--json", "--set", "eval_every=5"])
        assert result.exit_code == 0, result.output
        trained = json.loads(result.stdout)
        assert trained["metrics"]["recall@10"] > trained["popularity"]["recall@10"] + 0.1
        ckpt = load_checkpoint(trained["checkpoint"])
        assert ckpt.user_emb.shape == (60, 8) and ckpt.user_ids[0] == "u0"
        again = json.loads(runner.invoke(app, ["evaluate", "-w", str(ws.path), "--model",
                                               "lightgcn", "--json"]).stdout)
        assert again["metrics"] == trained["metrics"]
        (tmp_path / "more").mkdir()
        ws.ingest(shop(tmp_path / "more", seed=5))  # new purchases: the data changed
        with pytest.raises(CheckpointMismatchError, match="retrain"):
            ws.evaluate("lightgcn")


def test_refit_is_a_train_setting_not_a_model_setting(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text("[run]\n[run.train]\nrefit = false\nepochs = 3\n")
    train = load_run_config(path).train
    assert train.refit is False and dict(train.settings) == {"epochs": 3}
    assert TrainConfig().refit is True


def test_served_model_is_refitted_on_all_interactions_for_the_chosen_epochs(
        graph_server: EmbeddedServer, tmp_path: Path) -> None:
    with workspace_on(graph_server, tmp_path, "refit") as ws:
        ws.ingest(shop(tmp_path))
        result = ws.train("lightgcn", epochs=12, lr=0.01, batch_size=64, dim=8, eval_every=2,
                          patience=2, progress=False)
        full = InteractionMatrix.from_interactions(ws.export_interactions())
        ckpt = load_checkpoint(result.checkpoint)
        assert full.nnz == result.train_interactions + result.held_out
        assert ckpt.data_fingerprint == full.fingerprint() != ckpt.meta["split"]["fingerprint"]
        # both fits recorded: the split's held-out figures and sizes, and the refit's
        assert ckpt.meta["metrics"] == result.metrics and ckpt.meta["fit_seconds"] > 0
        assert ckpt.meta["split"]["interactions"] == result.train_interactions
        assert ckpt.meta["split"]["held_out"] == result.held_out
        assert ckpt.refit is not None and ckpt.refit["interactions"] == full.nnz
        assert ckpt.refit["fit_seconds"] > 0 and result.refit == {
            k: v for k, v in ckpt.refit.items() if k != "history"}
        # the refit ran the epochs the split chose, over every interaction, without validation
        best = result.best_epoch
        assert 1 <= best <= 12 and ckpt.refit["epochs"] == ckpt.config["epochs"] == best
        history = ckpt.refit["history"]
        assert [h["epoch"] for h in history] == list(range(1, best + 1))
        assert history[-1]["steps"] == best * -(-full.nnz // 64)
        assert not any("recall@20" in h for h in history)
        # evaluate reports the split's figures, saying so; it does not score on seen data
        again = ws.evaluate("lightgcn")
        assert again.recorded and again.metrics == result.metrics
        assert set(ws.evaluate("lightgcn", ks=(10,)).metrics) >= {"recall@10", "ndcg@10"}
        with pytest.raises(ValueError, match="no-refit"):
            ws.evaluate("lightgcn", ks=(5,))
        # retrieval serves the refitted embeddings
        assert ws.build_index("lightgcn").checkpoint_fingerprint == ckpt.fingerprint
        assert len(ws.recommend("u0", k=5)) == 5
        (tmp_path / "more").mkdir()
        ws.ingest(shop(tmp_path / "more", seed=5))
        with pytest.raises(CheckpointMismatchError, match="retrain"):
            ws.evaluate("lightgcn")


def test_no_refit_serves_the_split_model_and_the_summary_names_the_refit(
        graph_server: EmbeddedServer, tmp_path: Path) -> None:
    with workspace_on(graph_server, tmp_path, "norefit") as ws:
        ws.ingest(shop(tmp_path))
        runner = CliRunner()
        out = runner.invoke(app, ["train", "-w", str(ws.path), "--model", "lightgcn",
                                  "--no-refit", "--epochs", "6",
                                  "--lr", "0.01", "--batch-size", "64", "--dim", "8", "--json",
                                  "--set", "eval_every=2"])
        assert out.exit_code == 0, out.output
        trained = json.loads(out.stdout)
        ckpt = load_checkpoint(trained["checkpoint"])
        assert trained["refit"] is None and ckpt.refit is None
        assert ckpt.data_fingerprint == ckpt.meta["split"]["fingerprint"]
        assert ckpt.config["epochs"] == 6
        again = ws.evaluate("lightgcn")
        assert not again.recorded and again.metrics == trained["metrics"]
        n = trained["train_interactions"] + trained["held_out"]
        out = runner.invoke(app, ["train", "-w", str(ws.path), "--model", "spectral",
                                  "--set", "k=8"])
        assert out.exit_code == 0, out.output
        assert f"served model refitted on all {n:,} interactions" in out.output
        assert load_checkpoint(ws.layout.checkpoint("spectral")).refit["interactions"] == n
