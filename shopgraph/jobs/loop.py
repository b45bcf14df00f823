"""``shopgraph loop``: a campaign every round, planned from every earlier round's log.

Each round:

1. **Observe.** Everything the shop has told so far is ingested (the shop's files, then each
   answered round's), through the same idempotent ingest as ``shopgraph ingest``.
2. **Learn.** The logged decisions of earlier rounds (:func:`~shopgraph.graphdb.tables.
   decision_log`, each with the propensity of the action it took), plus a past randomised
   campaign if the shop has one, train a per-action reward model weighted by the logged
   propensities (:mod:`~shopgraph.strategies.reward_model`); the reward of a decision is the
   spend it brought in the round minus the offer's cost.
3. **Plan.** The policy (:mod:`~shopgraph.strategies.policies`: Thompson sampling over the
   model's posterior by default) gives every eligible user a probability for each action, a
   random control group is held out, and actions are drawn under the budget.
4. **Log.** The decisions go back to the graph with their propensities, policy, model version
   and candidate actions (:func:`~shopgraph.jobs.writeback.write_decisions`), and to a list.
5. **Answer.** On a simulated shop the simulator answers the plan
   (:func:`~shopgraph.simulator.answer_round`); on a real shop the answers arrive by ingest.
6. **Evaluate.** The round is read back from the graph: an A/B readout of the policy's users
   against the control group (:mod:`~shopgraph.strategies.readout`), off-policy estimates of
   the policy and of the greedy plan from the round's log (:func:`~shopgraph.strategies.ope.
   contrast`), and on a simulated shop every value beside its truth.
7. **Refresh.** Every trained model of the workspace and its index are brought up to date with
   the round's events through ``shopgraph update``'s path (:func:`update_models`; ingest's
   journal lists the users to read again), unless ``update_models = false``.

A round is recorded in the loop's state file only when all of that is done; its decisions are
kept (atomically) as soon as they are drawn, so an interrupted loop resumes at the round it
stopped, with the same decisions.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from shopgraph.artifacts import atomic_path, fingerprint
from shopgraph.config import LoopConfig
from shopgraph.errors import InsufficientDataError
from shopgraph.gnn.registry import MODELS
from shopgraph.graphdb import tables
from shopgraph.graphdb.formats import load
from shopgraph.graphdb.frames import NodeFrame, SourceData
from shopgraph.graphdb.ingest import ingest
from shopgraph.jobs import writeback
from shopgraph.jobs.update import update_model
from shopgraph.layout import WorkspaceLayout
from shopgraph.simulator import (
    RoundContext,
    answer_round,
    open_round,
    policy_value,
    true_values,
)
from shopgraph.strategies import ope, policies, readout
from shopgraph.strategies.loop_features import round_features
from shopgraph.strategies.reward_model import RewardModel, RewardModelWarning
from shopgraph.strategies.uplift_calibration import logged_calibration_lines

if TYPE_CHECKING:
    from shopgraph.graphdb.store import GraphStore

NONE = "none"
DAY = 86_400
#: the reward model's version: bump when its features or settings change
MODEL_VERSION = "reward-2"
OnRound = Callable[[dict[str, Any]], None]


@dataclass
class LoopState:
    """What the loop has done: finished rounds (their records) and ingested files."""

    path: Path
    rounds: dict[str, dict[str, Any]] = field(default_factory=dict)
    ingested: dict[str, str] = field(default_factory=dict)  # mapping file -> fingerprint

    @classmethod
    def load(cls, path: Path) -> LoopState:
        """The state in ``path`` (empty when there is none)."""
        if not path.is_file():
            return cls(path)
        data = json.loads(path.read_text())
        return cls(path, dict(data.get("rounds", {})), dict(data.get("ingested", {})))

    def save(self) -> None:
        """Write the state atomically."""
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps({"rounds": self.rounds, "ingested": self.ingested},
                                      indent=1, default=_plain))


def _plain(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON: {type(x).__name__}")


def action_index(offers: pd.Series, actions: tuple[str, ...]) -> np.ndarray:
    """Each offer name's position in ``actions`` (0 = no offer)."""
    index: np.ndarray = offers.map({a: i for i, a in enumerate(actions)}).to_numpy(dtype=int)
    return index


def round_id(k: int) -> str:
    """The id of round ``k`` (from 1)."""
    return f"w{k:02d}"


# ---- observe ----------------------------------------------------------------------------------
def observe(store: GraphStore, state: LoopState, mappings: list[Path],
            journal: Path | None = None) -> None:
    """Ingest every mapping not ingested yet (an ingest is idempotent: a crash in between only
    costs a re-check), noting in ``journal`` (the workspace's ingest journal) which users got
    new edges, so that the model update between rounds reads only theirs."""
    for m in mappings:
        key = fingerprint(str(m), m.stat().st_size, m.stat().st_mtime_ns)
        if state.ingested.get(str(m)) == key:
            continue
        ingest(store, load("tabular", m), journal=journal)
        state.ingested[str(m)] = key
        state.save()


# ---- learn ------------------------------------------------------------------------------------
def logged_rows(store: GraphStore | SourceData, actions: tuple[str, ...], costs: np.ndarray,
                seed_campaign: str | None) -> pd.DataFrame:
    """Every logged decision with its outcome: ``user_id, campaign_id, start_ts, offer,
    action, propensity, converted, spend, reward`` (reward = spend minus the offer's cost).

    The loop's own rounds come from the decision log; ``seed_campaign`` (a past randomised
    test, arms named by offer type or ``control``) adds its rows with propensities equal to
    the arms' shares."""
    camps = tables.campaign_features(store)
    parts = []
    log = tables.decision_log(store)
    if not log.empty:
        parts.append(log[["user_id", "campaign_id", "offer", "propensity", "converted",
                          "spend"]])
    if seed_campaign is not None and seed_campaign in camps.index:
        past = tables.campaign_log(store, seed_campaign)
        arm = past["arm"].astype(str).str.rsplit(":", n=1).str[-1].replace({"control": NONE})
        share = arm.map(arm.value_counts(normalize=True))
        parts.append(pd.DataFrame({
            "user_id": past["user_id"], "campaign_id": seed_campaign, "offer": arm,
            "propensity": share, "converted": past["converted"], "spend": past["value"]}))
    if not parts:
        return pd.DataFrame(columns=["user_id", "campaign_id", "start_ts", "offer", "action",
                                     "propensity", "converted", "spend", "reward"])
    rows = pd.concat(parts, ignore_index=True)
    rows = rows[rows["offer"].isin(actions)].reset_index(drop=True)
    rows["action"] = action_index(rows["offer"], actions)
    rows["spend"] = pd.to_numeric(rows["spend"], errors="coerce").fillna(0.0)
    rows["converted"] = pd.to_numeric(rows["converted"], errors="coerce").fillna(0.0)
    rows["reward"] = rows["spend"] - costs[rows["action"].to_numpy()]
    start = pd.to_numeric(camps["start_day"], errors="coerce") * DAY
    rows["start_ts"] = rows["campaign_id"].map(start)
    return rows.dropna(subset=["start_ts"]).astype({"start_ts": np.int64})


# ---- plan -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    """One round's decisions and what the planner believed."""

    decisions: pd.DataFrame  # user_id, offer, propensity, control, p_<action> ...
    policy: str
    version: str
    estimated_net: np.ndarray  # users x actions: the model's mean net value
    greedy_probs: np.ndarray  # users x actions: the greedy plan on the model's means
    calibration: tuple[tuple[float, float, float], ...] = ()  # (alpha, beta, se) per offer


@dataclass(frozen=True)
class RoundInputs:
    """What a planner may know at a round's start (no truth)."""

    campaign: str
    users: np.ndarray  # eligible user ids
    consent: np.ndarray  # per user
    features: pd.DataFrame  # per user, as of the round's start
    logs: pd.DataFrame  # every logged decision so far (see logged_rows)
    log_features: pd.DataFrame | None  # the logged rows' features, as of their rounds
    actions: tuple[str, ...]
    costs: np.ndarray
    config: LoopConfig
    seed: int


Planner = Callable[[RoundInputs], Plan]


def round_inputs(source: GraphStore | SourceData, ctx: RoundContext, config: LoopConfig,
                 seed: int, seed_campaign: str | None) -> RoundInputs:
    """What a planner knows at the start of the round ``ctx``, read from the graph (the loop)
    or from the shop's files (the benchmarks): every logged decision so far with its outcome,
    the eligible users' and the logged rows' features, consent, and each action's cost."""
    actions = tuple(ctx.arms)
    costs = np.array([0.0] + [float(config.cost.get(a, ctx.costs.get(a, 0.0)))
                              for a in actions[1:]])
    users_all = tables.user_features(source)
    buys = tables.purchases(source)
    logs = logged_rows(source, actions, costs, seed_campaign)
    eligible = np.asarray(ctx.eligible, dtype=str)
    pairs = pd.DataFrame({"user_id": eligible, "start_ts": int(ctx.start_ts)})
    feats = round_features(pairs, users_all, buys, logs, actions)
    log_feats = round_features(logs[["user_id", "start_ts"]], users_all, buys, logs,
                               actions) if len(logs) else None
    consent = users_all["consent"].reindex(eligible).fillna(True).to_numpy(dtype=bool) \
        if "consent" in users_all else np.ones(len(eligible), bool)
    return RoundInputs(ctx.campaign_id, eligible, consent, feats, logs, log_feats, actions,
                       costs, config, seed)


def plan_round(inputs: RoundInputs) -> Plan:
    """The product's planner: fit the reward model on the logged rows (weighted by their
    propensities) and draw the decisions with the configured policy."""
    c, logs, k = inputs.config, inputs.logs, len(inputs.actions)
    if logs.empty or inputs.log_features is None:
        raise InsufficientDataError("no logged decisions to learn from yet; ingest a past "
                                    "randomised campaign first")
    action = logs["action"].to_numpy()
    spend = logs["spend"].to_numpy(dtype=float)
    propensity = logs["propensity"].to_numpy(dtype=float)
    model = RewardModel(members=max(2, c.ensemble)).fit(
        inputs.log_features, action, spend, propensity, n_arms=k, seed=inputs.seed)
    costs = inputs.costs
    # How much of the predicted uplift is real: the line of the DR pseudo-outcome on the
    # out-of-fold predictions (beta 0: trust only each offer's average effect).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RewardModelWarning)
        q_oof = RewardModel(members=2).cross_fit(inputs.log_features, action, spend, propensity,
                                                 n_arms=k, folds=3, seed=inputs.seed)
    lines = logged_calibration_lines(q_oof, action, spend, propensity)
    alpha = np.array([0.0] + [a for a, _, _ in lines])
    beta = np.array([0.0] + [b for _, b, _ in lines])
    alpha_se = np.array([0.0] + [e for _, _, e in lines])
    mean = model.predict(inputs.features)
    net = alpha + beta * (mean - mean[:, [0]]) - costs[None, :]
    net[:, 0] = 0.0
    common: dict[str, Any] = dict(consent=inputs.consent, control_share=c.control_share,
                                  seed=inputs.seed)
    greedy = policies.greedy(net, costs, c.budget, **common)
    if c.policy == "greedy":
        chosen = greedy
    elif c.policy == "epsilon_greedy":
        chosen = policies.epsilon_greedy(net, costs, c.budget, epsilon=c.floor * k, **common)
    else:
        n_draws = 5 * c.ensemble  # members repeat, each with its own per-offer shift
        draws = model.sample(inputs.features, n_draws, seed=inputs.seed)
        # each draw also draws every offer's average uplift from its sampling distribution
        level = alpha + alpha_se * np.random.default_rng(inputs.seed).standard_normal(
            (n_draws, 1, k))
        samples = level + beta * (draws - draws[:, :, [0]]) - costs[None, None, :]
        samples[:, :, 0] = 0.0
        chosen = policies.thompson(samples, costs, c.budget, floor=c.floor,
                                   min_confidence=c.min_confidence, explore=c.explore, **common)
    frame = chosen.to_frame(inputs.users.tolist(), list(inputs.actions))
    return Plan(frame.rename(columns={"action": "offer"}), chosen.policy, chosen.version, net,
                greedy.probs, tuple(lines))


# ---- evaluate ---------------------------------------------------------------------------------
def evaluate_round(store: GraphStore, campaign: str, plan: pd.DataFrame,
                   actions: tuple[str, ...], costs: np.ndarray, features: pd.DataFrame,
                   greedy_probs: np.ndarray, control_share: float, seed: int
                   ) -> dict[str, Any]:
    """Readout and off-policy estimates of one answered round, read back from the graph."""
    log = tables.decision_log(store, campaign)
    got = log.set_index("user_id").reindex(plan["user_id"].astype(str))
    spend = pd.to_numeric(got["spend"], errors="coerce").fillna(0.0).to_numpy()
    converted = (pd.to_numeric(got["converted"], errors="coerce").fillna(0.0) > 0).to_numpy()
    action = action_index(plan["offer"], actions)
    reward = spend - costs[action]
    probs = plan[[f"p_{a}" for a in actions]].to_numpy(dtype=float)
    frame = pd.DataFrame({"arm": np.where(plan["control"].to_numpy(), "control", "policy"),
                          "converted": converted.astype(float), "revenue": spend,
                          "pre": features["rfm_spend_recent"].fillna(0.0).to_numpy()})
    out: dict[str, Any] = {}
    try:
        out["readout"] = readout.ab_readout(
            frame, control="control", pre_revenue="pre", revenue="revenue",
            planned_shares={"control": control_share, "policy": 1 - control_share}).to_dict()
    except ValueError as exc:
        out["readout"] = {"skipped": str(exc)}
    with warnings.catch_warnings(record=True) as caught:  # arms a fold never logged
        warnings.simplefilter("always", RewardModelWarning)
        q_hat = RewardModel(members=2).cross_fit(features, action, spend,
                                                 plan["propensity"].to_numpy(dtype=float),
                                                 n_arms=len(actions), folds=5, seed=seed)
    out["q_hat_warnings"] = len(caught)
    q_net = q_hat - costs[None, :]
    logged = ope.LoggedBandit(action, reward, plan["propensity"].to_numpy(dtype=float))
    n = len(plan)
    for name, pi in (("policy", probs), ("greedy", greedy_probs)):  # both with the control
        est = ope.contrast(logged, pi, q_net, n_boot=500, seed=seed)
        out[f"ope_{name}"] = {k: {"value": e.value * n, "ci_low": e.ci_low * n,
                                  "ci_high": e.ci_high * n, "se": e.se * n, "ess": e.ess}
                              for k, e in est.items()}
    return out


# ---- the loop ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class LoopResult:
    """Every finished round's record, in order."""

    rounds: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {"rounds": self.rounds}


def run_loop(store: GraphStore, layout: WorkspaceLayout, config: LoopConfig, *, shop: Path,
             seed_campaign: str | None = "campaign-1", rounds: int | None = None,
             on_round: OnRound | None = None, planner: Planner = plan_round) -> LoopResult:
    """Run (or resume) the campaign loop on a simulated shop; see the module docstring.

    Args:
        store: the workspace's graph.
        layout: the workspace's layout (the loop's state, decisions and lists go there).
        config: ``[run.loop]``.
        shop: the simulated shop's folder (``shopgraph simulate``).
        seed_campaign: a past randomised campaign to learn from before the first round.
        rounds: rounds to reach (default: ``config.rounds``).
        on_round: called with each finished round's record.
        planner: draws a round's decisions (default: :func:`plan_round`; benchmarks pass
            their baselines).
    """
    state = LoopState.load(layout.loop_state)
    records = []
    shop = Path(shop).resolve()
    for k in range(1, (rounds or config.rounds) + 1):
        rid = round_id(k)
        if rid in state.rounds:
            records.append(state.rounds[rid])
            continue
        record = _one_round(store, layout, config, state, shop, rid, k, seed_campaign, planner)
        state.rounds[rid] = record
        state.save()
        records.append(record)
        if on_round is not None:
            on_round(record)
    return LoopResult(records)


def _one_round(store: GraphStore, layout: WorkspaceLayout, config: LoopConfig,
               state: LoopState, shop: Path, rid: str, k: int,
               seed_campaign: str | None, planner: Planner) -> dict[str, Any]:
    started = time.perf_counter()
    seed = config.seed * 1000 + k
    saved = layout.loop_round(rid)
    ctx = open_round(shop, rid, days=config.days) if not (saved / "decisions.parquet").is_file() \
        else None
    meta_path = saved / "round.json"
    if ctx is not None:
        observe(store, state, [Path(m) for m in ctx.observed], layout.changes)
        inputs = round_inputs(store, ctx, config, seed, seed_campaign)
        eligible, feats, actions, costs = (inputs.users, inputs.features, inputs.actions,
                                           inputs.costs)
        plan = planner(inputs)
        saved.mkdir(parents=True, exist_ok=True)
        with atomic_path(saved / "features.parquet") as tmp:
            feats.assign(user_id=eligible).to_parquet(tmp)
        with atomic_path(saved / "greedy.npy") as tmp, open(tmp, "wb") as fh:
            np.save(fh, plan.greedy_probs)
        meta = {"campaign": ctx.campaign_id, "actions": list(actions), "costs": costs.tolist(),
                "policy": plan.policy, "version": plan.version, "start_ts": int(ctx.start_ts),
                "calibration": {a: {"alpha": round(al, 4), "beta": round(be, 4),
                                    "alpha_se": round(se, 4)}
                                for a, (al, be, se) in zip(actions[1:], plan.calibration)},
                "start_day": int(ctx.start_day), "end_day": int(ctx.start_day + ctx.days - 1),
                "estimated_value": float(np.take_along_axis(
                    plan.estimated_net,
                    action_index(plan.decisions["offer"], actions)[:, None], 1).sum())}
        with atomic_path(meta_path) as tmp:
            tmp.write_text(json.dumps(meta))
        with atomic_path(saved / "decisions.parquet") as tmp:  # last: marks the plan as made
            plan.decisions.to_parquet(tmp)
    meta = json.loads(meta_path.read_text())
    decisions = pd.read_parquet(saved / "decisions.parquet")
    feats = pd.read_parquet(saved / "features.parquet").drop(columns="user_id")
    greedy_probs = np.load(saved / "greedy.npy")
    actions, costs = tuple(meta["actions"]), np.asarray(meta["costs"])
    taken = action_index(decisions["offer"], actions)
    run = fingerprint("loop", rid, meta["policy"], meta["version"])
    _campaign_node(store, meta)
    writeback.write_decisions(store, decisions.assign(offer=decisions["offer"].astype(str)),
                              campaign_id=meta["campaign"], run_id=run, policy=meta["policy"],
                              policy_version=meta["version"], model_version=MODEL_VERSION,
                              candidates=list(actions), round_id=rid)
    sends = decisions[["user_id", "offer"]]
    outcome = answer_round(shop, sends, round_id=rid, days=config.days)
    observe(store, state, [Path(outcome.mapping)], layout.changes)
    record: dict[str, Any] = {"round": rid, "campaign": meta["campaign"],
                              "policy": meta["policy"], "users": int(len(decisions)),
                              "sends": {a: int((decisions["offer"] == a).sum())
                                        for a in actions[1:]},
                              "control": int(decisions["control"].sum()),
                              "cost": float(costs[taken].sum()),
                              "estimated_value": meta["estimated_value"],
                              "calibration": meta.get("calibration", {})}
    record |= evaluate_round(store, meta["campaign"], decisions, actions, costs, feats,
                             greedy_probs, config.control_share, seed)
    truth = true_values(shop, rid, users=decisions["user_id"].astype(str).tolist())
    probs = decisions[[f"p_{a}" for a in actions]].to_numpy(dtype=float)
    realised = np.zeros_like(probs)
    realised[np.arange(len(probs)), taken] = 1.0
    record["truth"] = {"policy_value": policy_value(truth, probs, costs),
                       "realised_value": policy_value(truth, realised, costs),
                       "greedy_value": policy_value(truth, greedy_probs, costs)}
    if config.update_models:
        record["model_updates"] = update_models(store, layout)
    record["seconds"] = round(time.perf_counter() - started, 1)
    return record


def update_models(store: GraphStore, layout: WorkspaceLayout) -> list[dict[str, Any]]:
    """Bring every trained model of the workspace (and its index) up to date with the round's
    events (``shopgraph update``'s path: fold in, warm start or refit past the drift
    thresholds); what each did, in how long. Idempotent: a model already current is left
    ``unchanged``, so a resumed round costs only the check."""
    done = []
    for model in MODELS:
        if layout.checkpoint(model).is_file():
            res = update_model(store, layout, model, progress=False)
            done.append({"model": model, "mode": res.mode, "seconds": res.seconds,
                         "new_users": res.new_users, "changed_users": res.changed_users,
                         "fingerprint": res.fingerprint})
    return done


def _campaign_node(store: GraphStore, meta: Mapping[str, Any]) -> None:
    """The round's ``Campaign`` node, so the decisions can point at it before the answers."""
    nodes = NodeFrame("Campaign", pd.DataFrame({
        "id": [meta["campaign"]], "type": ["loop_round"], "start_day": [meta["start_day"]],
        "end_day": [meta["end_day"]], "_line": [0]}))
    ingest(store, SourceData(f"loop-campaign:{meta['campaign']}", [], nodes=[nodes]))
