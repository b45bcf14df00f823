"""The campaign loop against the simulated truth: every policy and baseline on the same shop.

Each policy runs the real loop (``shopgraph.jobs.loop.run_loop``: ingest, decision log,
write-back, the simulator's answers, readouts, off-policy estimates) on its own copy of one
simulated shop, in its own workspace, for ``--rounds`` rounds of ``--days`` days. Baselines:

* ``none``: no sends (true net value 0 by definition; not run);
* ``single_best``: the offer with the best mean net value in the shop's randomised test
  (campaign-1, round 0), sent to a random budget-sized set of eligible users every round;
* ``one_shot``: today's plan repeated: the reward model fitted once on campaign-1 and the
  greedy budgeted plan from it every round, never updated;
* ``oracle``: the budgeted oracle: knows every user's true value, same budget and greedy plan.

Prints one JSON line (keys as in issue 12): ``policy`` (the default), the cumulative true net
values, ``rounds_negative``, the DR estimate's median relative error and 95 % interval coverage
over (round, seed) cases, and ``seconds``.

    python bench/loop.py --users 20000 --rounds 10 --seeds 1
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shopgraph import open as open_workspace  # noqa: E402
from shopgraph.config import load_run_config  # noqa: E402
from shopgraph.jobs import loop as L  # noqa: E402
from shopgraph.simulator import simulate, true_values  # noqa: E402
from shopgraph.strategies import policies  # noqa: E402

POLICIES = ("thompson", "epsilon_greedy", "greedy")
BASELINES = ("single_best", "one_shot", "oracle")


def _budgeted(net: np.ndarray, costs: np.ndarray, budget: float) -> np.ndarray:
    """Greedy budgeted best action per user (0 = none) on ``net``."""
    sel = policies.greedy(net, costs, budget, consent=None, control_share=0.0, seed=0)
    return np.asarray(sel.action)


def make_planner(name: str) -> L.Planner:
    """The loop's own planner for its policies; for ``one_shot``, the same planner held to
    campaign-1's log (fitted on it alone, greedy every round, never updated)."""
    if name in POLICIES:
        return L.plan_round

    def one_shot(inputs: L.RoundInputs) -> L.Plan:
        seed_rows = inputs.logs[inputs.logs["campaign_id"] == "campaign-1"]
        plan = L.plan_round(replace(
            inputs, logs=seed_rows, seed=0, config=replace(inputs.config, policy="greedy"),
            log_features=None if inputs.log_features is None
            else inputs.log_features.loc[seed_rows.index]))
        return replace(plan, policy=name, version="bench-1")

    return one_shot


def run_policy(name: str, base_shop: Path, work: Path, rounds: int, seed: int) -> list[dict]:
    shop = work / f"shop-{name}-{seed}"
    shutil.copytree(base_shop, shop)
    cfg = load_run_config(shop / "run.toml")
    assert cfg.loop is not None
    policy = name if name in POLICIES else "greedy"
    cfg = replace(cfg, loop=replace(cfg.loop, policy=policy, rounds=rounds, seed=seed))
    ws = open_workspace(work / f"ws-{name}-{seed}")
    try:
        result = L.run_loop(ws.store(), ws.layout, cfg.loop, shop=shop,
                            planner=make_planner(name))
    finally:
        ws.close()
        ws.server().stop()  # a benchmark's workspace is scratch: leave no server running
    return result.rounds


def seed_arm_means(shop: Path) -> dict[str, float]:
    """Mean spend per arm of the shop's randomised test (campaign-1), from its files."""
    rec = pd.read_parquet(shop / "received.parquet")
    held = pd.read_parquet(shop / "held_out.parquet")
    conv = pd.read_parquet(shop / "converted.parquet")
    log = pd.concat([rec[rec["offer_id"].str.startswith("campaign-1:")][["user_id", "arm"]],
                     held[held["campaign_id"] == "campaign-1"][["user_id", "arm"]]])
    spend = conv[conv["campaign_id"] == "campaign-1"].groupby("user_id")["value"].sum()
    log["spend"] = log["user_id"].map(spend).fillna(0.0)
    return {("none" if a == "control" else a): float(v)
            for a, v in log.groupby("arm")["spend"].mean().items()}


def run_fixed(name: str, base_shop: Path, work: Path, rounds: int, seed: int) -> list[dict]:
    """A baseline that learns nothing (single_best, oracle), run through the simulator alone:
    the same rounds, plans and truth as the loop, without the graph (it reads no logs)."""
    from shopgraph.simulator import answer_round, open_round, policy_value

    shop = work / f"shop-{name}-{seed}"
    shutil.copytree(base_shop, shop)
    cfg = load_run_config(shop / "run.toml")
    assert cfg.loop is not None
    c = cfg.loop
    means = seed_arm_means(shop)
    out = []
    for k in range(1, rounds + 1):
        rid = L.round_id(k)
        ctx = open_round(shop, rid, days=c.days)
        actions = tuple(ctx.arms)
        costs = np.array([0.0] + [float(c.cost[a]) for a in actions[1:]])
        users = np.asarray(ctx.eligible, dtype=str)
        rng = np.random.default_rng(seed * 1000 + k)
        control = rng.random(len(users)) < c.control_share
        action = np.zeros(len(users), dtype=int)
        budget = c.budget * (1 - c.control_share)
        v = true_values(shop, ctx, users=users.tolist())
        if name == "oracle":
            net = v - costs[None, :]
            net[:, 0] = 0.0
            action = _budgeted(net, costs, budget)
        else:  # single_best: the arm with the best mean net value in campaign-1
            net_arm = {a: means.get(a, 0.0) - means.get("none", 0.0) - costs[j]
                       for j, a in enumerate(actions) if j}
            best = actions.index(max(net_arm, key=lambda a: net_arm[a]))
            n = int(budget // costs[best])
            action[rng.choice(len(users), min(n, len(users)), replace=False)] = best
        taken = np.where(control, 0, action)
        probs = np.zeros((len(users), len(actions)))
        probs[np.arange(len(users)), taken] = 1.0
        value = policy_value(v, probs, costs)
        answer_round(shop, pd.DataFrame({"user_id": users,
                                         "offer": np.asarray(actions)[taken]}),
                     round_id=rid, days=c.days)
        out.append({"round": rid, "truth": {"policy_value": value},
                    "cost": float(costs[taken].sum())})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--items", type=int, default=5_000)
    ap.add_argument("--interactions", type=int, default=500_000)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--policies", default=",".join(POLICIES[:1] + BASELINES))
    ap.add_argument("--keep", type=Path, default=None, help="work folder to keep")
    args = ap.parse_args()
    started = time.perf_counter()
    work = args.keep or Path(tempfile.mkdtemp(prefix="shopgraph-loop-"))
    work.mkdir(parents=True, exist_ok=True)
    base = work / "shop"
    if not (base / "truth.npz").is_file():
        simulate(base, users=args.users, items=args.items, interactions=args.interactions,
                 seed=0)
    per: dict[str, list[list[dict]]] = {}
    for seed in range(args.seeds):
        for name in args.policies.split(","):
            run = run_fixed if name in ("single_best", "oracle") else run_policy
            per.setdefault(name, []).append(run(name, base, work, args.rounds, seed))
    cum = {n: float(np.mean([sum(r["truth"]["policy_value"] for r in runs)
                             for runs in rs])) for n, rs in per.items()}
    default = POLICIES[0]
    errors, covered = [], []
    for runs in per.get(default, []):
        for r in runs:
            true, dr = r["truth"]["policy_value"], r["ope_policy"]["dr"]
            errors.append(abs(dr["value"] - true) / max(abs(true), 1e-9))
            covered.append(dr["ci_low"] <= true <= dr["ci_high"])
    out = {
        "bench": "loop", "users": args.users, "rounds": args.rounds, "seeds": args.seeds,
        "policy": default, "cumulative_true_value": cum.get(default),
        "oracle_value": cum.get("oracle"), "best_single_offer_value": cum.get("single_best"),
        "one_shot_value": cum.get("one_shot"), "no_sends_value": 0.0,
        "cumulative": cum,
        "rounds_negative": {n: [int(sum(r["truth"]["policy_value"] < 0 for r in runs))
                                for runs in rs] for n, rs in per.items()},
        "per_round_true": {n: [[round(r["truth"]["policy_value"], 1) for r in runs]
                               for runs in rs] for n, rs in per.items()},
        "dr_median_rel_error": float(np.median(errors)) if errors else None,
        "dr_ci_coverage": float(np.mean(covered)) if covered else None,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
