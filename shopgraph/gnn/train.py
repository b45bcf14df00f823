"""The BPR training loop shared by the GNN models: sampling, early stopping, logs, resume.

Bayesian Personalised Ranking (Rendle et al., UAI 2009) on (user, positive, negative) triples:

.. math::
    \\mathcal{L} = -\\frac{1}{B}\\sum_{(u,i,j)} \\ln \\sigma(\\hat y_{ui} - \\hat y_{uj})
    + \\lambda \\frac{1}{2B} \\lVert \\Theta_{batch} \\rVert^2 .

An epoch visits every training interaction once, in a seeded random order, with a fresh
negative each time. Every ``eval_every`` epochs the model is scored on the validation matrix
(full ranking, training items masked); the best weights by ``metric`` are kept, and training
stops after ``patience`` evaluations without improvement, or when ``max_seconds`` is spent
(checked after every step, so the budget is overrun by at most one step and one evaluation).

:func:`refit` fits a fresh copy of a model on all interactions for serving, once the held-out
split has chosen the number of epochs.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm  # type: ignore[import-untyped]  # tqdm ships no type hints

from shopgraph.artifacts import atomic_path
from shopgraph.gnn.base import EmbeddingModel, FitReport
from shopgraph.gnn.data import InteractionMatrix
from shopgraph.gnn.device import pick_device
from shopgraph.gnn.metrics import ScoreFn, evaluate
from shopgraph.gnn.sampling import NegativeSampler


class BPRModule(Protocol):
    """What the loop needs from a model's ``torch.nn.Module``."""

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All user and item embeddings after propagation."""

    def regularizer(self, users: torch.Tensor, pos: torch.Tensor,
                    neg: torch.Tensor) -> torch.Tensor:
        """Squared L2 norm of the parameters this batch touches."""


@dataclass
class TrainConfig:
    """Settings of the BPR loop.

    Args:
        epochs: the most epochs to run.
        batch_size: triples per step.
        lr: Adam's learning rate.
        weight_decay: :math:`\\lambda` of the L2 term on the batch's parameters.
        negatives: ``"uniform"`` or ``"dns"`` (the hardest of ``dns_candidates``).
        dns_candidates: candidates per triple for ``"dns"``.
        eval_every: epochs between validation runs.
        patience: validation runs without improvement before stopping.
        metric: the validation metric to maximise.
        max_seconds: stop after this much training time, checked after every step (``None``:
            no limit).
        seed: seeds NumPy's sampler and torch.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
    """

    epochs: int = 400
    batch_size: int = 2048
    lr: float = 1e-3
    weight_decay: float = 1e-4
    negatives: str = "uniform"
    dns_candidates: int = 8
    eval_every: int = 5
    patience: int = 5
    metric: str = "recall@20"
    max_seconds: float | None = None
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.negatives not in ("uniform", "dns"):
            raise ValueError(f"negatives must be 'uniform' or 'dns', got {self.negatives!r}")
        for name in ("epochs", "batch_size", "eval_every", "patience", "dns_candidates"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError("lr must be positive and weight_decay non-negative")


def _bpr_step(module: Any, optimizer: torch.optim.Optimizer, users: torch.Tensor,
              pos: torch.Tensor, neg: torch.Tensor, weight_decay: float) -> float:
    user_emb, item_emb = module()
    u = user_emb[users]
    diff = (u * item_emb[pos]).sum(-1) - (u * item_emb[neg]).sum(-1)
    loss: torch.Tensor = -torch.nn.functional.logsigmoid(diff).mean()
    loss = loss + weight_decay * module.regularizer(users, pos, neg) / (2 * len(users))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


def _scorer(module: Any) -> ScoreFn:
    user_emb: torch.Tensor
    item_emb: torch.Tensor
    with torch.no_grad():
        user_emb, item_emb = module()

    def score(users: np.ndarray) -> torch.Tensor:
        return user_emb[torch.as_tensor(users, device=user_emb.device)] @ item_emb.T

    return score


def train_bpr(module: Any, train: InteractionMatrix, valid: InteractionMatrix | None,
              cfg: TrainConfig, *, log_path: str | Path | None = None,
              state_path: str | Path | None = None, resume: bool = False,
              progress: bool = True) -> FitReport:
    """Train ``module`` with BPR; see the module docstring.

    Args:
        module: the model's ``torch.nn.Module`` (see :class:`BPRModule`), on ``cfg.device``.
        train: training interactions.
        valid: held-out interactions for early stopping (``None``: run all epochs).
        cfg: loop settings.
        log_path: append one JSON line per evaluation here.
        state_path: save the training state (weights, optimiser, epoch, sampler state) here
            after every evaluation, atomically, so that ``resume=True`` can continue.
        resume: continue from ``state_path`` if it exists.
        progress: show a progress bar.

    Returns:
        The history; ``module`` ends with the best weights seen on ``valid``.
    """
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    sampler = NegativeSampler(train.matrix, rng)
    optimizer = torch.optim.Adam(module.parameters(), lr=cfg.lr)
    coo = train.matrix.tocoo()
    users_all, items_all = coo.row.astype(np.int64), coo.col.astype(np.int64)
    report = FitReport()
    best_state: dict[str, Any] | None = None
    best, bad_evals, start_epoch, spent = -np.inf, 0, 0, 0.0
    if resume and state_path and Path(state_path).is_file():
        saved = torch.load(state_path, weights_only=False)
        module.load_state_dict(saved["module"])
        optimizer.load_state_dict(saved["optimizer"])
        rng.bit_generator.state = saved["rng"]
        torch.set_rng_state(saved["torch_rng"])
        start_epoch, best, bad_evals = saved["epoch"], saved["best"], saved["bad_evals"]
        best_state, report.history, spent = saved["best_state"], saved["history"], saved["spent"]
        report.best_epoch = saved["best_epoch"]
    started = time.perf_counter() - spent
    bar = tqdm(total=cfg.epochs, initial=start_epoch, disable=not progress, unit="epoch",
               desc=getattr(module, "name", "train"))
    epoch, out_of_time = start_epoch, False
    steps = int(report.history[-1].get("steps", 0)) if report.history else 0
    for epoch in range(start_epoch + 1, cfg.epochs + 1):
        module.train()
        order = rng.permutation(len(users_all))
        losses = []
        for b in range(0, len(order), cfg.batch_size):
            idx = order[b:b + cfg.batch_size]
            u = users_all[idx]
            if cfg.negatives == "dns":
                neg = sampler.hardest(u, cfg.dns_candidates, _dns_score(module, device))
            else:
                neg = sampler.uniform(u)[:, 0]
            losses.append(_bpr_step(
                module, optimizer, torch.from_numpy(u).to(device),
                torch.from_numpy(items_all[idx]).to(device),
                torch.from_numpy(neg).to(device), cfg.weight_decay))
            steps += 1
            out_of_time = cfg.max_seconds is not None and \
                time.perf_counter() - started > cfg.max_seconds
            if out_of_time:
                break
        row: dict[str, float] = {"epoch": epoch, "loss": float(np.mean(losses)), "steps": steps}
        if valid is not None and (epoch % cfg.eval_every == 0 or out_of_time
                                  or epoch == cfg.epochs):
            module.eval()
            metrics = evaluate(_scorer(module), train.matrix, valid.matrix, ks=(20,))
            row.update({k: v for k, v in metrics.items() if k != "users"})
            if row[cfg.metric] > best:
                best, bad_evals, report.best_epoch = row[cfg.metric], 0, epoch
                best_state = copy.deepcopy(module.state_dict())
            else:
                bad_evals += 1
        row["seconds"] = time.perf_counter() - started
        report.history.append(row)
        bar.update(1)
        bar.set_postfix({k: round(v, 4) for k, v in row.items() if k in ("loss", cfg.metric)})
        if log_path and cfg.metric in row:
            _append_jsonl(log_path, row)
        if state_path and cfg.metric in row:
            _save_state(state_path, module, optimizer, rng, epoch, best, bad_evals, best_state,
                        report, row["seconds"])
        if bad_evals >= cfg.patience or out_of_time:
            break
    bar.close()
    if best_state is not None:
        module.load_state_dict(best_state)
    report.best_metric = float(best) if np.isfinite(best) else float("nan")
    report.seconds = time.perf_counter() - started
    return report


def _dns_score(module: Any,
               device: torch.device) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def score(users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        user_emb: torch.Tensor
        item_emb: torch.Tensor
        user_emb, item_emb = module()
        return (user_emb[users.to(device)][:, None, :] * item_emb[items.to(device)]).sum(-1)

    return score


def _append_jsonl(path: str | Path, row: dict[str, float]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")


def _save_state(path: str | Path, module: Any, optimizer: torch.optim.Optimizer,
                rng: np.random.Generator, epoch: int, best: float, bad_evals: int,
                best_state: dict[str, Any] | None, report: FitReport, spent: float) -> None:
    with atomic_path(path) as tmp:
        torch.save({"module": module.state_dict(), "optimizer": optimizer.state_dict(),
                    "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                    "epoch": epoch, "best": best, "bad_evals": bad_evals,
                    "best_state": best_state, "history": report.history,
                    "best_epoch": report.best_epoch, "spent": spent}, tmp)


def config_dict(cfg: TrainConfig) -> dict[str, Any]:
    """The settings as a plain dict (for checkpoints and logs)."""
    return asdict(cfg)


def chosen_epochs(report: FitReport, epochs: int) -> int:
    """The epochs a refit on all data runs: the best epoch of ``report`` (the split fit), else
    the epochs it ran, else ``epochs``."""
    if report.best_epoch >= 1:
        return report.best_epoch
    return int(report.history[-1]["epoch"]) if report.history else epochs


def refit(model: EmbeddingModel, data: InteractionMatrix, report: FitReport,
          **fit_kwargs: Any) -> tuple[EmbeddingModel, FitReport]:
    """A fresh model of ``model``'s class and settings, fitted on ``data`` (all interactions,
    held-out part included) without validation, for serving.

    Models with ``epochs`` (BPR) run :func:`chosen_epochs` of ``report``, the fit on the split;
    ``max_seconds``, when set, applies again to this fit. Others (spectral) just fit again.

    Args:
        model: the model fitted on the split (its settings are reused; it is not changed).
        data: every interaction, on the same id maps as the split.
        report: what fitting ``model`` on the split returned.
        **fit_kwargs: passed to ``fit`` (e.g. ``progress``, ``item_features``).

    Returns:
        The refitted model and its report.
    """
    settings = dict(model.config)
    if "epochs" in settings:
        settings["epochs"] = chosen_epochs(report, int(settings["epochs"]))
    fresh = type(model)(**settings)
    return fresh, fresh.fit(data, None, **fit_kwargs)
