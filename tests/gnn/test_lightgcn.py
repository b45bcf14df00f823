"""LightGCN: same propagation as PyG's, learns better than popularity, deterministic, resumable,
checkpoints round-trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from shopgraph.gnn.base import FitReport
from shopgraph.gnn.checkpoint import load_checkpoint, save_checkpoint
from shopgraph.gnn.data import InteractionMatrix, load_lightgcn_split
from shopgraph.gnn.lightgcn import LightGCN
from shopgraph.gnn.metrics import evaluate, popularity_scores
from shopgraph.gnn.propagation import layer_mean, normalized_adjacency
from shopgraph.gnn.train import chosen_epochs, refit


def tiny(seed: int = 0, n_users: int = 40, n_items: int = 30, n: int = 300) -> InteractionMatrix:
    rng = np.random.default_rng(seed)
    return InteractionMatrix.from_pairs(rng.integers(0, n_users, n), rng.integers(0, n_items, n),
                                        n_users, n_items)


def test_propagation_equals_pyg_lightgcn() -> None:
    from torch_geometric.nn import LightGCN as PyGLightGCN

    data = tiny()
    coo = data.matrix.tocoo()
    src = torch.from_numpy(coo.row.astype(np.int64))
    dst = torch.from_numpy(coo.col.astype(np.int64)) + data.n_users
    edge_index = torch.cat([torch.stack([src, dst]), torch.stack([dst, src])], dim=1)
    ref = PyGLightGCN(data.n_users + data.n_items, 8, num_layers=3)
    ours = layer_mean(normalized_adjacency(data.matrix), ref.embedding.weight, 3)
    assert torch.allclose(ours, ref.get_embedding(edge_index), atol=1e-6)


def test_gradient_of_fast_propagation_matches_autograd() -> None:
    data = tiny(1)
    adj = normalized_adjacency(data.matrix)
    x1 = torch.randn(adj.shape[0], 4, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    w = torch.randn(adj.shape[0], 4)
    (layer_mean(adj, x1, 2) * w).sum().backward()
    y, out = x2, x2 / 3
    for _ in range(2):
        y = torch.sparse.mm(adj.to_sparse_coo(), y)
        out = out + y / 3
    (out * w).sum().backward()
    assert torch.allclose(x1.grad, x2.grad, atol=1e-6)


def fit(data: InteractionMatrix, **kw: object) -> LightGCN:
    model = LightGCN(dim=8, layers=2, epochs=4, batch_size=64, lr=0.01, eval_every=2, **kw)
    model.fit(data, data, progress=False)
    return model


def test_same_seed_same_embeddings_and_settings_are_checked() -> None:
    data = tiny()
    a, b = fit(data, seed=3), fit(data, seed=3)
    assert np.array_equal(a.embeddings()[0], b.embeddings()[0])
    assert not np.array_equal(a.embeddings()[0], fit(data, seed=4).embeddings()[0])
    with pytest.raises(ValueError, match="no settings"):
        LightGCN(dimension=3)
    with pytest.raises(ValueError, match="negatives"):
        fit(data, negatives="random")


def test_resume_continues_exactly(tmp_path: Path) -> None:
    data = tiny()
    straight = LightGCN(dim=8, layers=2, epochs=4, batch_size=64, lr=0.01, eval_every=1,
                        patience=10)
    straight.fit(data, data, progress=False)
    first = LightGCN(dim=8, layers=2, epochs=2, batch_size=64, lr=0.01, eval_every=1,
                     patience=10)
    state = tmp_path / "state.pt"
    first.fit(data, data, progress=False, state_path=state)
    second = LightGCN(dim=8, layers=2, epochs=4, batch_size=64, lr=0.01, eval_every=1,
                      patience=10)
    report = second.fit(data, data, progress=False, state_path=state, resume=True)
    assert [h["epoch"] for h in report.history] == [1, 2, 3, 4]
    assert np.allclose(second.embeddings()[1], straight.embeddings()[1], atol=1e-6)


def test_time_budget_is_checked_after_every_step() -> None:
    data = tiny()  # batch_size 1: one step per interaction, so an epoch takes nnz steps
    model = LightGCN(dim=8, layers=2, epochs=3, batch_size=1, eval_every=1, max_seconds=1e-6)
    report = model.fit(data, data, progress=False)
    assert [h["epoch"] for h in report.history] == [1]  # stopped inside the first epoch ...
    assert report.history[0]["steps"] < data.nnz  # ... a per-epoch check would run all nnz
    assert "recall@20" in report.history[0] and report.best_epoch == 1  # and still evaluated


def test_refit_runs_the_chosen_epochs_on_new_data_with_the_same_settings() -> None:
    split, everything = tiny(), tiny(seed=2)
    model = fit(split, seed=5)
    before = model.embeddings()[0].copy()
    served, report = refit(model, everything, FitReport(best_epoch=3), progress=False)
    assert served is not model and np.array_equal(model.embeddings()[0], before)
    assert served.config == {**model.config, "epochs": 3}
    assert [h["epoch"] for h in report.history] == [1, 2, 3] and report.best_epoch == -1
    assert report.history[-1]["steps"] == 3 * -(-everything.nnz // 64)
    assert chosen_epochs(FitReport([{"epoch": 1}, {"epoch": 2}]), 9) == 2
    assert chosen_epochs(FitReport(), 9) == 9


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    data = tiny()
    model = fit(data, seed=1)
    path = save_checkpoint(tmp_path / "ckpt.npz", model, data, metrics={"recall@20": 0.5})
    ckpt = load_checkpoint(path)
    u, i = model.embeddings()
    assert ckpt.model == "lightgcn" and ckpt.config["dim"] == 8
    assert np.array_equal(ckpt.user_emb, u) and np.array_equal(ckpt.item_emb, i)
    assert ckpt.data_fingerprint == data.fingerprint() != tiny(seed=9).fingerprint()
    assert ckpt.meta["metrics"] == {"recall@20": 0.5}
    restored = LightGCN(**ckpt.config)
    restored.load_state(ckpt.weights, data.n_users, data.n_items)
    restored.module.set_graph(normalized_adjacency(data.matrix))
    assert np.allclose(restored.embeddings()[0], u, atol=1e-6)
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_beats_popularity_on_lastfm(shared_data: Path) -> None:
    folder = shared_data / "lastfm"
    train, test = load_lightgcn_split(folder / "train.txt", folder / "test.txt")
    model = LightGCN(epochs=8, eval_every=8, batch_size=2048, lr=0.005, seed=0)
    model.fit(train, None, progress=False)
    ours = evaluate(model.score, train.matrix, test.matrix)
    pop = evaluate(popularity_scores(train.matrix), train.matrix, test.matrix)
    assert pop["recall@20"] == pytest.approx(0.1055, abs=0.001)
    assert ours["recall@20"] > pop["recall@20"] + 0.05
