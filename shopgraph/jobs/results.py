"""What the jobs return: one frozen dataclass per job, with ``to_dict()`` for JSON output
(paths as text; audience frames left out)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def _plain(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class _Result:
    """``to_dict``: every field but the frame, JSON-ready."""

    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON-ready dict (no frame)."""
        assert dataclasses.is_dataclass(self)
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)
                if f.name != "frame"}


@dataclass(frozen=True)
class TrainResult(_Result):
    """A trained model: its checkpoint and held-out metrics beside popularity.

    Args:
        model: the model name.
        checkpoint: the checkpoint written.
        fit_seconds: wall time of the fit on the split.
        best_epoch: the epoch kept by early stopping (-1 when not tracked).
        users: users in the training matrix.
        items: items in the training matrix.
        train_interactions: interactions of the split's training part.
        held_out: interactions held out for metrics and early stopping.
        split: ``temporal`` (latest per user) or ``random``.
        metrics: Recall/NDCG@K of the model fitted on the split, on the held-out part.
        popularity: the same metrics for popularity ranking.
        history: one dict per epoch of the fit on the split (loss, validation metrics, seconds).
        fingerprint: SHA-256 of the served embeddings and id maps (what indexes record).
        peak_rss_mb: the process's peak memory.
        refit: how the served model was refitted on all interactions (``interactions``,
            ``fit_seconds``, ``epochs``); ``None`` when the model fitted on the split is served.
    """

    model: str
    checkpoint: Path
    fit_seconds: float
    best_epoch: int
    users: int
    items: int
    train_interactions: int
    held_out: int
    split: str
    metrics: dict[str, float]
    popularity: dict[str, float]
    history: list[dict[str, float]]
    fingerprint: str
    peak_rss_mb: int
    refit: dict[str, Any] | None = None


@dataclass(frozen=True)
class EvaluationResult(_Result):
    """A checkpoint's metrics on the held-out part of the split it was trained with.

    Args:
        model: the model name.
        metrics: Recall/NDCG@K of the model.
        popularity: the same metrics for popularity ranking.
        recorded: ``True`` when these are the figures recorded at training time, of the model
            fitted on the split: the served model was refitted on all interactions, held-out part
            included, so scoring it there would overstate it. ``False``: scored again now.
    """

    model: str
    metrics: dict[str, float]
    popularity: dict[str, float]
    recorded: bool = False


@dataclass(frozen=True)
class IndexResult(_Result):
    """A model's saved indexes.

    Args:
        path: the index file.
        model: the model name.
        checkpoint_fingerprint: the checkpoint the indexes belong to.
        seen_rel_types: relationship types whose items are left out of recommendations.
        seen_pairs: how many (user, item) pairs that leaves out.
        indexes: per index: factory, metric, size, parameters, tuned recall, build time.
        build: the build settings and time.
    """

    path: Path
    model: str
    checkpoint_fingerprint: str
    seen_rel_types: list[str]
    seen_pairs: int
    indexes: dict[str, dict[str, Any]]
    build: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TargetResult(_Result):
    """A campaign's planned audience.

    Args:
        run_id: deterministic id of the run (same inputs and seed, same id).
        path: the list written.
        campaign: the campaign (``items`` when only items were given).
        items: how many items it promotes.
        audience: listed users, control included.
        send: users to contact.
        control: users held out.
        no_consent: candidates left out for lack of consent.
        used: what the ranking used (heads, or why not).
        written_back: relationships written to the graph (None without write-back).
        frame: the audience, one row per user, best first.
    """

    run_id: str
    path: Path
    campaign: str
    items: int
    audience: int
    send: int
    control: int
    no_consent: int
    used: list[str]
    written_back: int | None
    frame: pd.DataFrame

    def audience_curve(self) -> dict[str, list[float]]:
        """Cumulative expected value (or blended score) by audience size, best first."""
        return audience_curve(self.frame)


@dataclass(frozen=True)
class OfferPlanResult(_Result):
    """The next offers chosen under a budget, with how close to optimal the choice is.

    Args:
        run_id: deterministic id of the run.
        path: the list written.
        campaign: the past randomised campaign learnt from.
        label: the outcome raised.
        offers: the offers (the campaign's treated arms).
        without_features: users left out for lack of the model's features.
        selected: users given an offer, control included.
        send: users to contact.
        control: selected users held out.
        counts: users per offer.
        objective: expected incremental value of the plan.
        lp_bound: the LP relaxation's bound on it.
        gap: relative distance to the bound (0: proven optimal).
        budget: the budget.
        budget_used: what the plan spends.
        solve_seconds: solver time.
        calibration: per offer, the uplift calibration line (alpha, beta).
        frame: the plan, one row per selected user, best first.
    """

    run_id: str
    path: Path
    campaign: str
    label: str
    offers: list[str]
    without_features: int
    selected: int
    send: int
    control: int
    counts: dict[str, int]
    objective: float
    lp_bound: float
    gap: float
    budget: float
    budget_used: float
    solve_seconds: float
    calibration: dict[str, dict[str, float]]
    frame: pd.DataFrame

    def audience_curve(self) -> dict[str, list[float]]:
        """Cumulative expected value by audience size, best first."""
        return audience_curve(self.frame)


def audience_curve(frame: pd.DataFrame) -> dict[str, list[float]]:
    """Cumulative expected value (or blended score, where no value is known) by audience size,
    best users first: the curve the report plots for a list."""
    ranked = frame.sort_values("rank")
    value = ranked["expected_value"] if ranked["expected_value"].notna().any() \
        else ranked["score"]
    return {"size": ranked["rank"].tolist(),
            "expected_value": value.cumsum().round(6).tolist()}


@dataclass(frozen=True)
class UpdateResult(_Result):
    """What ``shopgraph update`` did to a model after new events were ingested.

    Args:
        model: the model name.
        checkpoint: the checkpoint (replaced unless ``mode`` is ``unchanged``).
        mode: ``folded`` (new and changed users and new items folded into the current
            embeddings, no refit), ``warm-started`` (a BPR model continued from its checkpoint
            for a few epochs on every interaction, new nodes from their neighbours),
            ``refitted`` (fitted again on every interaction with the
            checkpoint's settings, past a drift threshold), ``retrained`` (the full ``train``
            path) or ``unchanged`` (nothing new since the checkpoint).
        reason: why it refitted or retrained (empty for a plain fold).
        users: users in the checkpoint now.
        items: items in the checkpoint now.
        interactions: distinct user-item pairs the checkpoint now reflects.
        new_users: users added to the checkpoint (ids it did not have).
        new_items: items added to the checkpoint, or first given interactions.
        changed_users: users already in the checkpoint whose interactions changed.
        new_interactions: pairs added since the previous checkpoint.
        drift: since the last full fit: ``new_share`` (added pairs / all pairs) and
            ``new_item_share`` (items first given interactions / items with interactions),
            beside the thresholds that trigger a refit.
        seconds: wall time of the whole update, per step in ``steps``.
        steps: seconds per step (read, then fold, refit or train, then index and swap).
        fingerprint: SHA-256 of the served embeddings and id maps (what indexes record).
        index: the index written (``IndexResult.to_dict()``; an index updated in place has
            ``in_place`` in its entry), or ``None`` when the model has none or it was left
            alone.
        train: the ``TrainResult.to_dict()`` of a retrain, else ``None``.
    """

    model: str
    checkpoint: Path
    mode: str
    reason: str
    users: int
    items: int
    interactions: int
    new_users: int
    new_items: int
    changed_users: int
    new_interactions: int
    drift: dict[str, float]
    seconds: float
    steps: dict[str, float]
    fingerprint: str
    index: dict[str, Any] | None = None
    train: dict[str, Any] | None = None
