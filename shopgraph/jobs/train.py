"""Train and evaluate models on the graph's interactions: export, split, fit, checkpoint.

The held-out split is recorded in the checkpoint (fraction, seed, temporal or random), so
:func:`evaluate_model` rebuilds exactly the same split and refuses if the graph changed since
training.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from shopgraph.config import TrainConfig
from shopgraph.errors import CheckpointMismatchError, InsufficientDataError
from shopgraph.gnn.checkpoint import load_checkpoint, save_checkpoint
from shopgraph.gnn.data import InteractionMatrix
from shopgraph.gnn.metrics import evaluate, popularity_scores
from shopgraph.gnn.registry import model_class
from shopgraph.gnn.split import holdout_split
from shopgraph.graphdb.export import MISSING_TS, export_interactions, export_item_features
from shopgraph.jobs.results import EvaluationResult, TrainResult
from shopgraph.layout import WorkspaceLayout

if TYPE_CHECKING:
    import torch

    from shopgraph.graphdb.store import GraphStore

BPR_MODELS = ("lightgcn", "graphsage")
KS = (10, 20, 50)


def _split(store: GraphStore, layout: WorkspaceLayout, rel_types: Sequence[str] | None,
           fraction: float, seed: int) -> tuple[InteractionMatrix, InteractionMatrix, bool]:
    """Export the interactions (saved to the layout's export) and split off the held-out part."""
    arrays = export_interactions(store, list(rel_types) if rel_types is not None else None)
    arrays.save(layout.interactions)
    if len(arrays) == 0:
        raise InsufficientDataError("the graph has no user->item interactions; ingest some "
                                    "first")
    temporal = bool(len(arrays.ts)) and bool((arrays.ts != MISSING_TS).all())
    train, held = holdout_split(arrays.users, arrays.items, len(arrays.user_ids),
                                len(arrays.item_ids), ts=arrays.ts if temporal else None,
                                fraction=fraction, seed=seed, user_ids=arrays.user_ids,
                                item_ids=arrays.item_ids)
    return train, held, temporal


def _item_features(store: GraphStore, item_ids: np.ndarray) -> dict[str, np.ndarray] | None:
    feats = export_item_features(store, item_ids)
    known = (feats["category"] >= 0).any() or (~np.isnan(feats["price"])).any()
    return feats if known else None


def _metrics(score: Any, train: InteractionMatrix, held: InteractionMatrix,
             ks: tuple[int, ...]) -> dict[str, float]:
    ks = tuple(k for k in ks if k <= train.n_items) or (train.n_items,)
    return evaluate(score, train.matrix, held.matrix, ks=ks)


def train_model(store: GraphStore, layout: WorkspaceLayout, model: str, config: TrainConfig,
                *, progress: bool = True) -> TrainResult:
    """Export, split, fit ``model`` with ``config.settings``, evaluate beside popularity, and
    write the checkpoint (plus, for BPR models, the metrics log and resumable state)."""
    cls = model_class(model)
    settings = dict(config.settings)
    instance = (cls(seed=config.seed, **settings) if "seed" in cls.defaults
                else cls(**settings))
    train_m, held, temporal = _split(store, layout, config.rel_types, config.valid_fraction,
                                     config.seed)
    layout.models.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {}
    if model in BPR_MODELS:
        kwargs = {"log_path": layout.metrics_log(model), "state_path": layout.train_state(model),
                  "resume": config.resume, "progress": progress}
    if model == "graphsage":
        kwargs["item_features"] = _item_features(store, train_m.item_ids)
    started = time.perf_counter()
    report = instance.fit(train_m, held, **kwargs)
    fit_s = time.perf_counter() - started
    metrics = _metrics(instance.score, train_m, held, KS)
    pop = _metrics(popularity_scores(train_m.matrix), train_m, held, KS)
    rel_types = list(config.rel_types) if config.rel_types is not None else None
    path = save_checkpoint(
        layout.checkpoint(model), instance, train_m, metrics=metrics, popularity=pop,
        split={"fraction": config.valid_fraction, "seed": config.seed, "temporal": temporal,
               "rel_types": rel_types}, history=report.history, best_epoch=report.best_epoch,
        fit_seconds=fit_s)
    header = load_checkpoint(path, weights=False)
    return TrainResult(
        model=model, checkpoint=path, fit_seconds=round(fit_s, 2),
        best_epoch=report.best_epoch, users=train_m.n_users, items=train_m.n_items,
        train_interactions=train_m.nnz, held_out=held.nnz,
        split="temporal" if temporal else "random", metrics=metrics, popularity=pop,
        history=header.meta.get("history", []), fingerprint=header.fingerprint,
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def evaluate_model(store: GraphStore, layout: WorkspaceLayout, model: str,
                   ks: tuple[int, ...] = KS) -> EvaluationResult:
    """Metrics of a saved checkpoint on the split it was trained with, beside popularity.

    Raises:
        CheckpointMismatchError: the graph changed since the model was trained.
    """
    import torch

    ckpt = load_checkpoint(layout.checkpoint(model))
    split = ckpt.meta["split"]
    train_m, held, _ = _split(store, layout, split["rel_types"], split["fraction"],
                              split["seed"])
    if train_m.fingerprint() != ckpt.data_fingerprint:
        raise CheckpointMismatchError(
            f"the graph changed since {model} was trained (training data fingerprint differs); "
            f"retrain with `shopgraph train --model {model}`")
    users, items = torch.from_numpy(ckpt.user_emb), torch.from_numpy(ckpt.item_emb)

    def score(u: np.ndarray) -> torch.Tensor:
        return users[torch.as_tensor(u)] @ items.T

    return EvaluationResult(model, _metrics(score, train_m, held, ks),
                            _metrics(popularity_scores(train_m.matrix), train_m, held, ks))
