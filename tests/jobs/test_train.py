"""Train and evaluate from a workspace's graph, through the Python API and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from shopgraph.cli.main import app
from shopgraph.errors import CheckpointMismatchError
from shopgraph.gnn.checkpoint import load_checkpoint
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
        result = runner.invoke(app, ["train", "-w", str(ws.path), "--epochs", "20",
                                     "--lr", "0.01", "--batch-size", "64", "--dim", "8",
                                     "--json", "--set", "eval_every=5"])
        assert result.exit_code == 0, result.output
        trained = json.loads(result.stdout)
        assert trained["metrics"]["recall@10"] > trained["popularity"]["recall@10"] + 0.1
        ckpt = load_checkpoint(trained["checkpoint"])
        assert ckpt.user_emb.shape == (60, 8) and ckpt.user_ids[0] == "u0"
        again = json.loads(runner.invoke(app, ["evaluate", "-w", str(ws.path),
                                               "--json"]).stdout)
        assert again["metrics"] == trained["metrics"]
        (tmp_path / "more").mkdir()
        ws.ingest(shop(tmp_path / "more", seed=5))  # new purchases: the data changed
        with pytest.raises(CheckpointMismatchError, match="retrain"):
            ws.evaluate("lightgcn")
