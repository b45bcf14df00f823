"""Train and evaluate models on the graph's interactions: export, split, fit, refit, checkpoint.

The held-out split measures the model and, for BPR models, chooses the number of epochs; the
model then served is refitted on all interactions (``TrainConfig.refit``, on by default), since
the held-out part is the most recent data when the split is temporal. The checkpoint records
the split (fraction, seed, temporal or random, sizes), the held-out metrics of the model fitted
on it, and the refit (interactions, seconds, epochs). :func:`evaluate_model` rebuilds the same
split and refuses if the graph changed since training.
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
from shopgraph.gnn.train import refit
from shopgraph.graphdb.export import MISSING_TS, export_interactions, export_item_features
from shopgraph.jobs.results import EvaluationResult, TrainResult
from shopgraph.layout import WorkspaceLayout

if TYPE_CHECKING:
    import torch

    from shopgraph.graphdb.store import GraphStore

BPR_MODELS = ("lightgcn", "graphsage")
KS = (10, 20, 50)


def _split(store: GraphStore, layout: WorkspaceLayout, rel_types: Sequence[str] | None,
           fraction: float, seed: int
           ) -> tuple[InteractionMatrix, InteractionMatrix, bool, InteractionMatrix]:
    """Export the interactions (saved to the layout's export) and split off the held-out part:
    ``(train, held_out, temporal, all)``."""
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
    return train, held, temporal, train.like(arrays.users, arrays.items)


def _item_features(store: GraphStore, item_ids: np.ndarray) -> dict[str, np.ndarray] | None:
    feats = export_item_features(store, item_ids)
    known = (feats["category"] >= 0).any() or (~np.isnan(feats["price"])).any()
    return feats if known else None


def _metrics(score: Any, train: InteractionMatrix, held: InteractionMatrix,
             ks: tuple[int, ...], max_users: int | None, seed: int) -> dict[str, float]:
    ks = tuple(k for k in ks if k <= train.n_items) or (train.n_items,)
    return evaluate(score, train.matrix, held.matrix, ks=ks, max_users=max_users, seed=seed)


def train_model(store: GraphStore, layout: WorkspaceLayout, model: str, config: TrainConfig,
                *, progress: bool = True) -> TrainResult:
    """Export, split, fit ``model`` with ``config.settings``, evaluate beside popularity on the
    held-out part, refit on all interactions for serving (unless ``config.refit`` is off), and
    write the checkpoint (plus, for BPR models, the metrics log and resumable state)."""
    cls = model_class(model)
    settings = dict(config.settings)
    instance = (cls(seed=config.seed, **settings) if "seed" in cls.defaults
                else cls(**settings))
    train_m, held, temporal, full = _split(store, layout, config.rel_types,
                                           config.valid_fraction, config.seed)
    layout.models.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {}  # for both fits
    split_kwargs: dict[str, Any] = {}  # the split fit only: its metrics log and resumable state
    if model in BPR_MODELS:
        kwargs["progress"] = progress
        split_kwargs = {"log_path": layout.metrics_log(model),
                        "state_path": layout.train_state(model), "resume": config.resume}
    if model == "graphsage":
        kwargs["item_features"] = _item_features(store, train_m.item_ids)
    started = time.perf_counter()
    report = instance.fit(train_m, held, **kwargs, **split_kwargs)
    fit_s = time.perf_counter() - started
    sample = {"max_users": config.eval_users, "seed": config.seed}
    metrics = _metrics(instance.score, train_m, held, KS, **sample)
    pop = _metrics(popularity_scores(train_m.matrix), train_m, held, KS, **sample)
    served, served_on, refit_meta = instance, train_m, None
    if config.refit:
        started = time.perf_counter()
        served, refit_report = refit(instance, full, report, **kwargs)
        refit_meta = {"interactions": full.nnz,
                      "fit_seconds": round(time.perf_counter() - started, 2),
                      "epochs": served.config.get("epochs"), "history": refit_report.history}
        served_on = full
    rel_types = list(config.rel_types) if config.rel_types is not None else None
    path = save_checkpoint(
        layout.checkpoint(model), served, served_on, metrics=metrics, popularity=pop,
        split={"fraction": config.valid_fraction, "seed": config.seed, "temporal": temporal,
               "rel_types": rel_types, "interactions": train_m.nnz, "held_out": held.nnz,
               "fingerprint": train_m.fingerprint(), "eval_users": config.eval_users},
        history=report.history, best_epoch=report.best_epoch, fit_seconds=fit_s,
        refit=refit_meta)
    header = load_checkpoint(path, weights=False)
    return TrainResult(
        model=model, checkpoint=path, fit_seconds=round(fit_s, 2),
        best_epoch=report.best_epoch, users=train_m.n_users, items=train_m.n_items,
        train_interactions=train_m.nnz, held_out=held.nnz,
        split="temporal" if temporal else "random", metrics=metrics, popularity=pop,
        history=header.meta.get("history", []), fingerprint=header.fingerprint,
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        refit={k: v for k, v in refit_meta.items() if k != "history"} if refit_meta else None)


def evaluate_model(store: GraphStore, layout: WorkspaceLayout, model: str,
                   ks: tuple[int, ...] = KS) -> EvaluationResult:
    """Metrics of a saved checkpoint on the held-out part of its split, beside popularity.

    A checkpoint fitted on the split is scored again. A refitted one has learnt from the
    held-out part too, so scoring it there would flatter it: the metrics recorded at training
    time (of the model fitted on the split) are returned instead, with ``recorded=True``.

    Raises:
        CheckpointMismatchError: the graph changed since the model was trained.
        ValueError: a refitted checkpoint was asked for a cut-off ``k`` it did not record.
    """
    import torch

    ckpt = load_checkpoint(layout.checkpoint(model))
    split = ckpt.meta["split"]
    train_m, held, _, full = _split(store, layout, split["rel_types"], split["fraction"],
                                    split["seed"])
    fitted_on = full if ckpt.refit else train_m
    if fitted_on.fingerprint() != ckpt.data_fingerprint:
        raise CheckpointMismatchError(
            f"the graph changed since {model} was trained (training data fingerprint differs); "
            f"retrain with `shopgraph train --model {model}`")
    if ckpt.refit:
        return EvaluationResult(model, _recorded(ckpt.meta["metrics"], ks, model),
                                _recorded(ckpt.meta["popularity"], ks, model), recorded=True)
    users, items = torch.from_numpy(ckpt.user_emb), torch.from_numpy(ckpt.item_emb)

    def score(u: np.ndarray) -> torch.Tensor:
        return users[torch.as_tensor(u)] @ items.T

    # As at training time: checkpoints from before the sample scored every user.
    sample = {"max_users": split.get("eval_users"), "seed": split["seed"]}
    return EvaluationResult(model, _metrics(score, train_m, held, ks, **sample),
                            _metrics(popularity_scores(train_m.matrix), train_m, held, ks,
                                     **sample))


def _recorded(metrics: dict[str, float], ks: tuple[int, ...], model: str) -> dict[str, float]:
    """The recorded ``metrics`` at the cut-offs ``ks`` (all of them for the training default)."""
    if tuple(ks) == KS:
        return dict(metrics)
    missing = [k for k in ks if not any(name.endswith(f"@{k}") for name in metrics)]
    if missing:
        raise ValueError(f"{model} was refitted on all interactions, so only the metrics "
                         f"recorded at training time exist, not @{missing}; retrain with "
                         f"--no-refit to score other cut-offs")
    return {name: v for name, v in metrics.items()
            if "@" not in name or int(name.rsplit("@", 1)[1]) in ks}
