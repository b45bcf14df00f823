"""Train and evaluate models on a workspace's graph: export, split, fit, checkpoint.

The held-out split is recorded in the checkpoint (fraction, seed, temporal or random), so
``evaluate`` rebuilds exactly the same split and refuses if the graph changed since training.
"""

from __future__ import annotations

import resource
import time
from typing import Any

import numpy as np

from shopgraph.errors import CheckpointMismatchError, ShopgraphError
from shopgraph.gnn.checkpoint import load_checkpoint, save_checkpoint
from shopgraph.gnn.data import InteractionMatrix
from shopgraph.gnn.metrics import evaluate, popularity_scores
from shopgraph.gnn.registry import model_class
from shopgraph.gnn.split import holdout_split

BPR_MODELS = ("lightgcn", "graphsage")


def _split(ws: Any, rel_types: list[str] | None, fraction: float,
           seed: int) -> tuple[InteractionMatrix, InteractionMatrix, bool]:
    from shopgraph.graphdb.export import MISSING_TS

    arrays = ws.export_interactions(rel_types)
    if len(arrays) == 0:
        raise ShopgraphError("the graph has no user->item interactions; ingest some first")
    temporal = bool(len(arrays.ts)) and bool((arrays.ts != MISSING_TS).all())
    train, held = holdout_split(arrays.users, arrays.items, len(arrays.user_ids),
                                len(arrays.item_ids), ts=arrays.ts if temporal else None,
                                fraction=fraction, seed=seed, user_ids=arrays.user_ids,
                                item_ids=arrays.item_ids)
    return train, held, temporal


def _item_features(ws: Any, item_ids: np.ndarray) -> dict[str, np.ndarray] | None:
    from shopgraph.graphdb.export import export_item_features

    feats = export_item_features(ws.store(), item_ids)
    known = (feats["category"] >= 0).any() or (~np.isnan(feats["price"])).any()
    return feats if known else None


def _metrics(score: Any, train: InteractionMatrix, held: InteractionMatrix,
             ks: tuple[int, ...]) -> dict[str, float]:
    ks = tuple(k for k in ks if k <= train.n_items) or (train.n_items,)
    return evaluate(score, train.matrix, held.matrix, ks=ks)


def train(ws: Any, model: str, *, valid_fraction: float, seed: int,
          rel_types: list[str] | None, resume: bool, progress: bool,
          **settings: Any) -> dict[str, Any]:
    """Export, split, fit ``model``, evaluate beside popularity, write the checkpoint.

    Returns:
        A summary: model, metrics, popularity metrics, epochs, seconds, checkpoint path.
    """
    cls = model_class(model)
    instance = cls(seed=seed, **settings) if "seed" in cls.defaults else cls(**settings)
    train_m, held, temporal = _split(ws, rel_types, valid_fraction, seed)
    ws.models_dir.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {}
    if model in BPR_MODELS:
        kwargs = {"log_path": ws.models_dir / f"{model}.metrics.jsonl",
                  "state_path": ws.models_dir / f"{model}.state.pt", "resume": resume,
                  "progress": progress}
    if model == "graphsage":
        kwargs["item_features"] = _item_features(ws, train_m.item_ids)
    started = time.perf_counter()
    report = instance.fit(train_m, held, **kwargs)
    fit_s = time.perf_counter() - started
    ks = (10, 20, 50)
    metrics = _metrics(instance.score, train_m, held, ks)
    pop = _metrics(popularity_scores(train_m.matrix), train_m, held, ks)
    path = save_checkpoint(
        ws.checkpoint_path(model), instance, train_m, metrics=metrics, popularity=pop,
        split={"fraction": valid_fraction, "seed": seed, "temporal": temporal,
               "rel_types": rel_types}, history=report.history, best_epoch=report.best_epoch,
        fit_seconds=fit_s)
    return {"model": model, "checkpoint": str(path), "fit_seconds": round(fit_s, 2),
            "best_epoch": report.best_epoch, "users": train_m.n_users, "items": train_m.n_items,
            "train_interactions": train_m.nnz, "held_out": held.nnz,
            "split": "temporal" if temporal else "random", "metrics": metrics,
            "popularity": pop,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def evaluate_checkpoint(ws: Any, model: str, ks: tuple[int, ...]) -> dict[str, Any]:
    """Metrics of a saved checkpoint on the split it was trained with, beside popularity."""
    import torch

    ckpt = load_checkpoint(ws.checkpoint_path(model))
    split = ckpt.meta["split"]
    train_m, held, _ = _split(ws, split["rel_types"], split["fraction"], split["seed"])
    if train_m.fingerprint() != ckpt.data_fingerprint:
        raise CheckpointMismatchError(
            f"the graph changed since {model} was trained (training data fingerprint differs); "
            f"retrain with `shopgraph train --model {model}`")
    users, items = torch.from_numpy(ckpt.user_emb), torch.from_numpy(ckpt.item_emb)

    def score(u: np.ndarray) -> torch.Tensor:
        return users[torch.as_tensor(u)] @ items.T

    return {"model": model, "metrics": _metrics(score, train_m, held, ks),
            "popularity": _metrics(popularity_scores(train_m.matrix), train_m, held, ks)}
