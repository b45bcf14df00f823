"""Score a run on a simulated shop against the simulator's ground truth (``truth.npz``).

Adds a ``truth`` dict beside the estimates in the run's results, under the same keys, so the
report shows each number next to its true value:

* ``training.truth``: the overlap of the model's top-20 (seen items left out) with the true
  top-20 of the purchase propensity (``recall@20``; ``popularity.recall@20`` for popularity);
* ``churn.truth``: the churn head, trained on everything up to the data's end, scored on who
  really bought nothing in the following horizon (``roc_auc``, ``brier``, ``churn_rate``);
* ``plan.truth``: the true expected net value of the offers the plan chose, from the true
  conversion probabilities and order values of each user under each arm (``objective``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from shopgraph.config import RunConfig
from shopgraph.errors import InsufficientDataError
from shopgraph.retrieval.queries import Retriever
from shopgraph.simulator import load_truth, true_top_k
from shopgraph.strategies.churn import ChurnHead

SAMPLE_USERS = 5000


def _overlap(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(np.intersect1d(f[f >= 0], t)) / len(t)
                          for f, t in zip(found, truth)]))


def training_truth(retriever: Retriever, truth: dict[str, Any], k: int = 20,
                   seed: int = 0) -> dict[str, Any]:
    """Model and popularity top-``k`` against the true top-``k`` (purchase propensity)."""
    t_users = pd.Index(truth["user_ids"].astype(str))
    t_items = pd.Index(truth["item_ids"].astype(str))
    rows = np.flatnonzero(t_users.get_indexer(retriever.user_ids) >= 0)
    rows = rows[retriever.bundle.seen[rows].getnnz(axis=1) > 0]  # customers with a history
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(rows, min(len(rows), SAMPLE_USERS), replace=False))
    users = retriever.user_ids[rows]
    found = retriever.recommend_batch(users, k)
    item_map = t_items.get_indexer(retriever.item_ids)
    seen = retriever.bundle.seen[rows].tocoo()
    exclude = sp.csr_matrix((np.ones(seen.nnz), (seen.row, item_map[seen.col])),
                            shape=(len(rows), len(t_items)))
    best = true_top_k(truth, k, t_users.get_indexer(users), kind="purchase", exclude=exclude)
    model_items = np.where(found.positions >= 0, item_map[np.maximum(found.positions, 0)], -1)
    popular = retriever.popular(k, len(rows), exclude=retriever.bundle.seen[rows]).ids
    pop_items = np.where(popular >= 0, item_map[np.maximum(popular, 0)], -1)
    return {f"recall@{k}": round(_overlap(model_items, best), 4), "users": int(len(rows)),
            "popularity": {f"recall@{k}": round(_overlap(pop_items, best), 4)}}


def churn_truth(purchases: pd.DataFrame, truth: Mapping[str, Any],
                horizon_days: float = 90.0) -> dict[str, Any]:
    """The churn head fitted up to the data's end, judged on the simulated future."""
    from sklearn.metrics import brier_score_loss, roc_auc_score

    now = int(truth["cutoff_ts"])
    try:
        head = ChurnHead("lightgbm").fit(purchases, now, horizon_days)
    except InsufficientDataError as exc:
        return {"skipped": str(exc)}
    prob = head.predict(purchases, now)["churn_probability"]
    actual = pd.Series(truth["no_purchase_in_horizon"],
                       index=truth["user_ids"].astype(str)).reindex(prob.index)
    keep = actual.notna().to_numpy()
    y, p = actual[keep].to_numpy(dtype=float), prob[keep].to_numpy(dtype=float)
    return {"roc_auc": round(float(roc_auc_score(y, p)), 4),
            "brier": round(float(brier_score_loss(y, p)), 4),
            "churn_rate": round(float(y.mean()), 4), "customers": int(keep.sum())}


def plan_truth(plan: Mapping[str, Any], truth: Mapping[str, Any],
               cost: float | Mapping[str, float]) -> dict[str, Any]:
    """The true expected net value (spend uplift minus cost) of the chosen offers, and the
    oracle's: every user given the offer of best true net value, without the budget."""
    listed = pd.read_csv(plan["path"], dtype={"user_id": str})
    arms = list(truth["arm_names"].astype(str))
    users = pd.Index(truth["user_ids"].astype(str)).get_indexer(listed["user_id"])
    arm = np.array([arms.index(o) for o in listed["offer"]])
    spend = truth["p_convert"] * truth["value_if_converted"]
    lift = spend[users, arm] - spend[users, 0]
    costs = np.array([cost.get(o, 0.0) if isinstance(cost, Mapping) else cost
                      for o in listed["offer"]])
    net = lift - costs
    arm_costs = np.array([0.0] + [cost.get(a, 0.0) if isinstance(cost, Mapping) else cost
                                  for a in arms[1:]])
    best = ((spend - spend[:, [0]]) - arm_costs[None, :])[:, 1:].max(axis=1)
    return {"objective": round(float(net.sum()), 2),
            "oracle_unbudgeted": round(float(best[best > 0].sum()), 2),
            "mean_true_uplift": round(float(lift.mean()), 4),
            "share_with_positive_true_value": round(float((net > 0).mean()), 4)}


def score_against_truth(results: dict[str, Any], truth_path: str | Path, config: RunConfig,
                        retriever: Retriever | None, purchases: pd.DataFrame | None) -> None:
    """Add the ``truth`` dicts to ``results`` (see the module docstring).

    Args:
        results: the run's results, changed in place.
        truth_path: the simulator's ``truth.npz``.
        config: the run's configuration (heads horizon, offer costs).
        retriever: the run model's retriever, for the ranking truth (None: not scored).
        purchases: the graph's purchases, for the churn truth (None: not scored).
    """
    truth = load_truth(truth_path)
    results["truth"] = {
        "file": str(truth_path),
        "users": int(len(truth["user_ids"])), "items": int(len(truth["item_ids"])),
        "cutoff": pd.Timestamp(int(truth["cutoff_ts"]), unit="s").date().isoformat(),
        "alive_at_cutoff": int(truth["alive_at_cutoff"].sum()),
        "no_purchase_in_next_horizon": int(truth["no_purchase_in_horizon"].sum()),
        "user_types": {str(name): int((truth["user_type"] == i).sum())
                       for i, name in enumerate(truth["type_names"])}}
    if "training" in results and retriever is not None:
        results["training"]["truth"] = training_truth(retriever, truth)
    if "churn" in results and purchases is not None:
        results["churn"]["truth"] = churn_truth(purchases, truth, config.heads.horizon_days)
    if "plan" in results and "path" in results["plan"] and config.offers is not None:
        results["plan"]["truth"] = plan_truth(results["plan"], truth, config.offers.cost)
