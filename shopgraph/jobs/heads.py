"""Score the churn and response heads on the graph's history, each beside its logistic baseline
(see :mod:`shopgraph.strategies.evaluation`): what ``shopgraph run``'s heads step reports."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shopgraph.config import HeadsConfig
from shopgraph.graphdb import tables
from shopgraph.strategies.evaluation import evaluate_churn, evaluate_response

if TYPE_CHECKING:
    from shopgraph.graphdb.store import GraphStore
    from shopgraph.parallel import Engine


def evaluate_heads(store: GraphStore, config: HeadsConfig,
                   engine: Engine | None = None) -> dict[str, dict[str, Any]]:
    """``{"churn": ..., "response": ...}``: out-of-time churn scores and held-out response
    scores with their curves (each ``{"skipped": why}`` where the data cannot support it); the
    churn heads' features are built on ``engine`` (default here)."""
    return {"churn": evaluate_churn(tables.purchases(store), config.horizon_days, engine),
            "response": evaluate_response(tables.campaign_log(store),
                                          tables.user_features(store),
                                          tables.campaign_features(store))}
