"""``shopgraph offers``: which offer (or none) each customer should get next, learnt from a past
randomised campaign and chosen under a budget.

1. The past campaign's log (arms and outcomes, with one control arm of held-out users) trains a
   multi-treatment uplift model (:class:`~shopgraph.strategies.uplift.UpliftModel`).
2. The predictions are calibrated on the log by cross-fitting
   (:mod:`~shopgraph.strategies.uplift_calibration`), which keeps the plan from chasing noise.
   For every user with at least one of the model's features (others, e.g. users of another
   dataset, are left out and counted), the net value of each offer is
   ``uplift x value_per_response - cost`` (``value_per_response`` is the worth of one more
   response; with ``label="value"`` the uplift is already money: mean spend).
3. :func:`~shopgraph.strategies.offers.select_offers` picks at most one offer per user under the
   budget, caps and consent (HiGHS), and says how close to optimal the choice is.
4. A hash-based control group of the selected users is held out for measurement; the list is
   written like ``shopgraph target``'s, with the offer, expected value and top uplift reasons.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from shopgraph.config import OffersConfig
from shopgraph.errors import InsufficientDataError, UnknownIdError
from shopgraph.graphdb import tables
from shopgraph.jobs.results import OfferPlanResult
from shopgraph.layout import WorkspaceLayout
from shopgraph.strategies import exports
from shopgraph.strategies.audience import CONTROL, TREATMENT, assign_control
from shopgraph.strategies.features import rfm_features
from shopgraph.strategies.offers import select_offers
from shopgraph.strategies.uplift import UpliftModel, campaign_frame
from shopgraph.strategies.uplift_calibration import (
    calibrate,
    calibration_lines,
    out_of_fold_uplift,
)

if TYPE_CHECKING:
    from shopgraph.graphdb.store import GraphStore

LABELS = ("converted", "visited", "redeemed", "value")


def behaviour_features(store: GraphStore, campaign: str) -> pd.DataFrame | None:
    """RFM and trend features of every buyer strictly before ``campaign``'s start (None when
    the campaign has no start day or the graph no timestamped purchases). Planning then uses
    features as of the campaign's start, as in training: the best available proxy."""
    camps = tables.campaign_features(store)
    start = camps["start_day"].get(str(campaign)) if "start_day" in camps else None
    if start is None or start != start:
        return None
    buys = tables.purchases(store)
    if buys.empty or not (buys["ts"] < int(start) * 86_400).any():
        return None
    return rfm_features(buys, int(start) * 86_400).add_prefix("rfm_")


def plan_offers(store: GraphStore, layout: WorkspaceLayout, config: OffersConfig, *,
                output: str | Path | None = None) -> OfferPlanResult:
    """Plan the next offers from ``config.campaign``'s randomised log; see the module
    docstring and :class:`~shopgraph.config.OffersConfig` for the settings.

    The list goes to ``output`` (default: the layout's offer list of the campaign and run).
    The plan is not written back to the graph: it belongs to a campaign not yet created
    (writing it under the past campaign would mix a second control arm into that experiment's
    log).

    Raises:
        UnknownIdError: the campaign is not in the graph.
        InsufficientDataError: the log cannot support a plan (no control arm, one outcome per
            arm, nobody with the model's features, nothing worth sending).
    """
    c = config
    if c.label not in LABELS:
        raise ValueError(f"label must be one of {', '.join(LABELS)}, got {c.label!r}")
    campaign = str(c.campaign)
    if campaign not in tables.campaign_ids(store):
        raise UnknownIdError(f"campaign {campaign!r} is not in the graph; check the id")
    users = tables.user_features(store)
    log = tables.campaign_log(store, campaign)
    if log.empty:
        raise InsufficientDataError(f"campaign {campaign!r} has no logged users (nobody "
                                    "received, was exposed to or held out of it)")
    log, feats, control = campaign_frame(log, users)
    behaviour = behaviour_features(store, campaign) if c.behaviour else None
    if behaviour is not None:
        feats = pd.concat([feats, behaviour.reindex(log["user_id"].astype(str)).reset_index(
            drop=True)], axis=1)
    y = log[c.label].to_numpy(dtype=float)
    if c.label != "value":
        y = (y > 0).astype(float)
    arms = log["arm"].to_numpy()
    lines = None
    if c.calibrated:
        names, oof = out_of_fold_uplift(lambda: UpliftModel(c.kind, seed=c.seed), feats, arms,
                                        y, control, seed=c.seed)
        lines = calibration_lines(names, oof, arms, y, control)
    model = UpliftModel(c.kind, seed=c.seed).fit(feats, arms, y, control=control)
    if behaviour is not None:
        users = users.join(behaviour, how="left")
    inputs = [col for col in feats.columns if col in users and col not in ("email", "consent")]
    described = users[inputs].notna().any(axis=1) if inputs else users.index.notna()
    unknown = int((~described).sum())  # e.g. users of another dataset: nothing to predict from
    users = users[described]
    if users.empty:
        raise InsufficientDataError(f"no user has the features the uplift model learnt from "
                                    f"({', '.join(inputs) or 'none'}); ingest the users' "
                                    "properties")
    pred = model.predict(users)
    offers = pred.treatments
    uplift = pred.uplift
    if lines is not None:
        uplift = calibrate(uplift, offers, lines)
    cost = c.cost
    costs = np.array([cost.get(o, np.nan) if not isinstance(cost, float | int) else cost
                      for o in offers], dtype=float)
    if np.isnan(costs).any():
        missing = [o for o, x in zip(offers, costs) if np.isnan(x)]
        raise ValueError(f"no cost given for offers {missing}; give --cost OFFER=COST for each "
                         f"of {offers}")
    worth = 1.0 if c.label == "value" else c.value_per_response
    values = uplift * worth - costs[None, :]
    consent = (users["consent"].map(lambda v: v is not False and v == v).to_numpy(dtype=bool)
               if "consent" in users else np.ones(len(users), dtype=bool))
    cap_vec = None if c.caps is None else np.array([c.caps.get(o, len(users)) for o in offers])
    selection = select_offers(values, costs, c.budget, consent=consent, caps=cap_vec,
                              offers=offers)
    chosen = np.flatnonzero(selection.assignment >= 0)
    picked = np.asarray(offers, dtype=object)[selection.assignment[chosen]]
    ids = users.index.to_numpy(dtype=str)[chosen]
    reasons = model.reasons(users.iloc[chosen], picked.tolist())
    frame = pd.DataFrame({
        "campaign_id": campaign, "user_id": ids, "offer": picked,
        "score": values[chosen, selection.assignment[chosen]],
        "uplift": uplift[chosen, selection.assignment[chosen]],
        "expected_value": values[chosen, selection.assignment[chosen]],
        "uplift_reasons": ["; ".join(r) for r in reasons]})
    frame = frame.sort_values(["score", "user_id"], ascending=[False, True], kind="stable")
    frame.insert(1, "rank", np.arange(1, len(frame) + 1))
    held = assign_control(frame["user_id"], campaign, c.control_share, c.seed)
    frame["arm"] = np.where(held, CONTROL, TREATMENT)
    frame = frame.reset_index(drop=True)
    report = selection.report
    run = exports.run_id("offers", campaign, c.budget, costs.tolist(), c.value_per_response,
                         c.label, dict(c.caps or {}), c.control_share, c.kind, frame,
                         seed=c.seed)
    path = Path(output) if output is not None else layout.offer_list(campaign, run)
    key = exports.load_key(layout.pseudonym_key) if c.pseudonymise else None
    exports.write_list(frame, path, run, key=key)
    return OfferPlanResult(
        run_id=run, path=path, campaign=campaign, label=c.label, offers=list(offers),
        without_features=unknown, selected=int(len(frame)), send=int((~held).sum()),
        control=int(held.sum()), counts=report.counts, objective=report.objective,
        lp_bound=report.lp_bound, gap=report.gap, budget=report.budget,
        budget_used=report.budget_used, solve_seconds=report.solve_seconds,
        calibration={k: {"alpha": round(a, 5), "beta": round(b, 4)}
                     for k, (a, b) in (lines or {}).items()}, frame=frame)
