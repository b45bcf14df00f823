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

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shopgraph.strategies.audience import CONTROL, TREATMENT, assign_control

LABELS = ("converted", "visited", "redeemed", "value")


def behaviour_features(ws: Any, campaign: str) -> pd.DataFrame | None:
    """RFM and trend features of every buyer strictly before ``campaign``'s start (None when
    the campaign has no start day or the graph no timestamped purchases). Planning then uses
    features as of the campaign's start, as in training: the best available proxy."""
    from shopgraph.strategies.campaigns import campaign_features
    from shopgraph.strategies.features import rfm_features

    camps = campaign_features(ws.store())
    start = camps["start_day"].get(str(campaign)) if "start_day" in camps else None
    if start is None or start != start:
        return None
    buys = ws.purchases()
    if buys.empty or not (buys["ts"] < int(start) * 86_400).any():
        return None
    return rfm_features(buys, int(start) * 86_400).add_prefix("rfm_")


def plan_offers(ws: Any, campaign: str, budget: float, *,
                cost: float | Mapping[str, float] = 0.0,
                value_per_response: float = 1.0, label: str = "converted",
                caps: Mapping[str, int] | None = None, control_share: float = 0.1,
                kind: str = "lightgbm", calibrated: bool = True, behaviour: bool = True,
                seed: int = 0,
                output: str | Path | None = None, pseudonymise: bool = False
                ) -> dict[str, Any]:
    """Plan the next offers from ``campaign``'s randomised log; see the module docstring.

    Args:
        ws: the workspace.
        campaign: the past campaign whose arms are the offers to choose from.
        budget: total budget, in the unit of ``cost`` (with ``cost`` 1 it counts sends).
        cost: cost of one send, for every offer or per offer (arm name -> cost).
        value_per_response: worth of one extra response (ignored for ``label="value"``).
        label: the outcome to raise: ``converted``, ``visited``, ``redeemed`` or ``value``.
        caps: most users per offer.
        control_share: share of the selected users held out (they get nothing).
        kind: ``lightgbm`` or ``logistic`` uplift base.
        behaviour: add each user's purchase behaviour (RFM and trends) before the campaign's
            start to the features, where the graph has timestamped purchases.
        calibrated: shrink predicted uplift by its cross-fitted calibration line on the log
            (:mod:`~shopgraph.strategies.uplift_calibration`); off, the raw predictions.
        seed: seed of the model and of the control draw.
        output: the list's path (default ``exports/offers/<campaign>-<run>.csv``).
        pseudonymise: HMAC pseudonyms instead of user ids.

    The plan is not written back to the graph: it belongs to a campaign not yet created (writing
    it under the past campaign would mix a second control arm into that experiment's log).
    """
    from shopgraph.strategies import exports
    from shopgraph.strategies.offers import select_offers
    from shopgraph.strategies.uplift import UpliftModel, campaign_frame

    if label not in LABELS:
        raise ValueError(f"label must be one of {', '.join(LABELS)}, got {label!r}")
    users = ws.user_features()
    log, feats, control = campaign_frame(ws.store(), campaign, users)
    behaviour = behaviour_features(ws, campaign) if behaviour else None
    if behaviour is not None:
        feats = pd.concat([feats, behaviour.reindex(log["user_id"].astype(str)).reset_index(
            drop=True)], axis=1)
    y = log[label].to_numpy(dtype=float)
    if label != "value":
        y = (y > 0).astype(float)
    arms = log["arm"].to_numpy()
    lines = None
    if calibrated:
        from shopgraph.strategies.uplift_calibration import (
            calibration_lines,
            out_of_fold_uplift,
        )

        names, oof = out_of_fold_uplift(lambda: UpliftModel(kind, seed=seed), feats, arms, y,
                                        control, seed=seed)
        lines = calibration_lines(names, oof, arms, y, control)
    model = UpliftModel(kind, seed=seed).fit(feats, arms, y, control=control)
    if behaviour is not None:
        users = users.join(behaviour, how="left")
    inputs = [c for c in feats.columns if c in users and c not in ("email", "consent")]
    described = users[inputs].notna().any(axis=1) if inputs else users.index.notna()
    unknown = int((~described).sum())  # e.g. users of another dataset: nothing to predict from
    users = users[described]
    if users.empty:
        from shopgraph.errors import ShopgraphError

        raise ShopgraphError(f"no user has the features the uplift model learnt from "
                             f"({', '.join(inputs) or 'none'}); ingest the users' properties")
    pred = model.predict(users)
    offers = pred.treatments
    uplift = pred.uplift
    if lines is not None:
        from shopgraph.strategies.uplift_calibration import calibrate

        uplift = calibrate(uplift, offers, lines)
    costs = np.array([cost.get(o, np.nan) if isinstance(cost, Mapping) else cost
                      for o in offers], dtype=float)
    if np.isnan(costs).any():
        missing = [o for o, c in zip(offers, costs) if np.isnan(c)]
        raise ValueError(f"no cost given for offers {missing}; give --cost OFFER=COST for each "
                         f"of {offers}")
    worth = 1.0 if label == "value" else value_per_response
    values = uplift * worth - costs[None, :]
    consent = (users["consent"].map(lambda c: c is not False and c == c).to_numpy(dtype=bool)
               if "consent" in users else np.ones(len(users), dtype=bool))
    cap_vec = None if caps is None else np.array([caps.get(o, len(users)) for o in offers])
    selection = select_offers(values, costs, budget, consent=consent, caps=cap_vec,
                              offers=offers)
    chosen = np.flatnonzero(selection.assignment >= 0)
    picked = np.asarray(offers, dtype=object)[selection.assignment[chosen]]
    ids = users.index.to_numpy(dtype=str)[chosen]
    reasons = model.reasons(users.iloc[chosen], picked.tolist())
    frame = pd.DataFrame({
        "campaign_id": str(campaign), "user_id": ids, "offer": picked,
        "score": values[chosen, selection.assignment[chosen]],
        "uplift": uplift[chosen, selection.assignment[chosen]],
        "expected_value": values[chosen, selection.assignment[chosen]],
        "uplift_reasons": ["; ".join(r) for r in reasons]})
    frame = frame.sort_values(["score", "user_id"], ascending=[False, True], kind="stable")
    frame.insert(1, "rank", np.arange(1, len(frame) + 1))
    held = assign_control(frame["user_id"], str(campaign), control_share, seed)
    frame["arm"] = np.where(held, CONTROL, TREATMENT)
    frame = frame.reset_index(drop=True)
    report = selection.report
    run = exports.run_id("offers", str(campaign), budget, costs.tolist(), value_per_response,
                         label, dict(caps or {}), control_share, kind, frame, seed=seed)
    path = Path(output) if output is not None else (
        ws.exports_dir / "offers" / f"{campaign}-{run[:12]}.csv")
    key = exports.load_key(ws.path / "pseudonym.key") if pseudonymise else None
    exports.write_list(frame, path, run, key=key)
    return {"run_id": run, "path": str(path), "campaign": str(campaign), "label": label,
            "offers": offers, "without_features": unknown, "selected": int(len(frame)),
            "send": int((~held).sum()),
            "control": int(held.sum()), "counts": report.counts,
            "objective": report.objective, "lp_bound": report.lp_bound, "gap": report.gap,
            "budget": report.budget, "budget_used": report.budget_used,
            "solve_seconds": report.solve_seconds,
            "calibration": {k: {"alpha": round(a, 5), "beta": round(b, 4)}
                            for k, (a, b) in (lines or {}).items()}, "frame": frame}
