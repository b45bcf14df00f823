"""Off-policy estimates of a round's value against the simulated truth, over many seeds.

What it measures: issue 12's criterion for the doubly robust (DR) estimate of a policy's round
value (median relative error <= 10 %, 95 % interval covering the truth in >= 90 % of cases),
without the graph database, so that 20 seeds take minutes instead of hours.

One shop is simulated once (``shopgraph.simulator.simulate``). For each seed ``s`` round
``w01`` is opened on a fresh copy of its state and planned as the loop's first round of seed
``s``: the loop's own planner (``jobs.loop.plan_round``: reward model fitted on the shop's
randomised campaign-1 as round 0, features from ``loop_features``, the configured exploring
policy, default Thompson sampling, with its control group and exact propensities). The
simulator answers (outcome seed ``s``), and from that one logged round the value over "no
offer" of several target policies is estimated as ``evaluate_round`` does (``ope.contrast``:
IPS, DM, DR with a 5-fold cross-fitted ``q_hat``; 500 bootstrap resamples), plus SNIPS and SNDR
as differences of two self-normalised ratios on the same resamples. Targets (all mixed with the
same control share, as the loop's policies are):

* ``policy``: the logging policy itself; ``greedy``: its greedy (exploit-only) candidate;
* ``oracle``: the greedy budgeted plan on the true net values (same budget);
* ``single_best``: the offer with the best mean net value in campaign-1 to a random
  budget-sized set (everyone eligible when the budget covers them, as it does on the
  default shop, where that offer is the 0.2 informational e-mail); ``worst_all``: the offer
  with the worst mean net value in campaign-1 to everyone eligible (a large, mostly known value:
  DR and DM take the sends' cost exactly from ``q_net``, only the spend uplift is estimated).

The truth is ``policy_value(true_values(...), pi, costs)``. Prints one JSON line per target
(over seeds, per estimator: median relative error, interval coverage, median absolute error,
median standard error, median |error| / se, mean error (bias) with its standard error; and the
truth's range, the expected sends, Kish's ESS of the importance weights and the median
|truth| / DR's se), then a summary line with ``dr_median_rel_error`` and ``dr_ci_coverage`` per
target. An unbiased, normal estimate has median relative error 0.674 se / |truth|, so <= 10 %
needs |truth| / se >= 6.7: relative error means little where the truth is small against the
sampling error (a target that sends next to nothing); read |error| / se there.

    python bench/ope_seeds.py --users 20000 --seeds 20                 # about 11 min
    python bench/ope_seeds.py --policy epsilon_greedy --floor 0.04     # epsilon 0.2

Measured (default shop, 8,963 eligible users, 20 seeds; DR median relative error / coverage):
under the loop's Thompson log (floor 0.01, every offer logged with probability 0.0018) the
policy itself (truth -163 to -382) 0.26 / 0.85, the oracle (2,114; ESS 131) 2.13 / 0.65, the
informational e-mail to all (-2,805) 3.25 / 0.85, BOGO to all (-36,929; ESS 19) 0.33 / 0.90;
|truth| / se was 0.3-2.5, so no target could meet 10 %. Under epsilon-greedy with epsilon 0.2
(each offer 0.036): the policy (-3,269) 0.036 / 0.95 and BOGO to all 0.073 / 0.95 (|truth| /
se 10 and 9) meet both; the oracle 0.72 / 0.95 and the informational e-mail 1.15 / 0.90
(|truth| / se 1.05 and 0.8) meet coverage only. The greedy candidate sends nothing (truth 0 in
19 of 20 seeds). DM's intervals covered in 0-10 % of cases everywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

if TYPE_CHECKING:
    from shopgraph.strategies.ope import LoggedBandit

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ("policy", "greedy", "oracle", "single_best", "worst_all")
ESTIMATORS = ("ips", "snips", "dm", "dr", "sndr")
ROUND = "w01"


def ratio_contrast(u: np.ndarray, v1: np.ndarray, b1: np.ndarray, v0: np.ndarray,
                   b0: np.ndarray, n_boot: int, seed: int) -> dict[str, float]:
    """``mean(u) + sum(v1)/sum(b1) - sum(v0)/sum(b0)`` per row: its delta-method se and a
    percentile bootstrap 95 % interval on ``ope``'s resamples (same seed, same rows)."""
    from shopgraph.strategies import ope

    n = len(u)
    r1, r0 = v1.sum() / b1.sum(), v0.sum() / b0.sum()
    psi = u - u.mean() + (v1 - r1 * b1) / b1.mean() - (v0 - r0 * b0) / b0.mean()
    s = ope._resample_sums(np.column_stack([u, v1, b1, v0, b0]), n_boot, seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        boot = s[:, 0] / n + s[:, 1] / s[:, 2] - s[:, 3] / s[:, 4]
    low, high = np.nanquantile(boot, [0.025, 0.975])
    return {"value": float(u.mean() + r1 - r0), "se": float(psi.std(ddof=1) / np.sqrt(n)),
            "ci_low": float(low), "ci_high": float(high)}


def estimates(log: LoggedBandit, pi: np.ndarray, q_net: np.ndarray, n_boot: int,
              seed: int) -> dict[str, dict[str, float]]:
    """Every estimator's round value of ``pi`` over "no offer" (per-row values times rows)."""
    from shopgraph.strategies import ope

    n = log.n
    out = {k: {"value": e.value, "se": e.se, "ci_low": e.ci_low, "ci_high": e.ci_high,
               "ess": e.ess}
           for k, e in ope.contrast(log, pi, q_net, n_boot=n_boot, seed=seed).items()}
    rows = np.arange(n)
    w = pi[rows, log.action] / log.propensity
    wb = (log.action == 0) / log.propensity
    q_a = q_net[rows, log.action]
    zero = np.zeros(n)
    out["snips"] = ratio_contrast(zero, w * log.reward, w, wb * log.reward, wb, n_boot, seed)
    out["sndr"] = ratio_contrast((pi * q_net).sum(axis=1) - q_net[:, 0], w * (log.reward - q_a),
                                 w, wb * (log.reward - q_a), wb, n_boot, seed)
    return {k: {m: (x * n if m != "ess" else x) for m, x in e.items()}
            for k, e in out.items()}


def one_seed(shop: Path, source: Any, cfg: Any, seed: int, n_boot: int) -> list[dict[str, Any]]:
    """Plan, answer and evaluate round ``w01`` of loop seed ``seed`` on ``shop``'s first state."""
    import pandas as pd

    from shopgraph.jobs import loop as L
    from shopgraph.simulator import answer_round, open_round, policy_value, true_values
    from shopgraph.strategies import ope, policies
    from shopgraph.strategies.reward_model import RewardModel, RewardModelWarning

    shutil.rmtree(shop / "rounds", ignore_errors=True)  # back to the shop's first state
    ctx = open_round(shop, ROUND, days=cfg.days)
    plan_seed = seed * 1000 + 1  # the loop's seed of round 1 for loop seed `seed`
    # round 0: the randomised test campaign-1
    inputs = L.round_inputs(source, ctx, cfg, plan_seed, "campaign-1")
    users, consent, feats, logs = inputs.users, inputs.consent, inputs.features, inputs.logs
    actions, costs = inputs.actions, inputs.costs
    plan = L.plan_round(inputs)
    dec = plan.decisions
    answer_round(shop, dec[["user_id", "offer"]], round_id=ROUND, days=cfg.days, seed=seed)
    conv = pd.read_parquet(shop / "rounds" / ROUND / "converted.parquet")
    spend = (conv[conv["campaign_id"] == ctx.campaign_id].groupby("user_id")["value"].sum()
             .reindex(dec["user_id"].astype(str)).fillna(0.0).to_numpy())
    action = L.action_index(dec["offer"], actions)
    propensity = dec["propensity"].to_numpy(dtype=float)
    log = ope.LoggedBandit(action, spend - costs[action], propensity)
    with warnings.catch_warnings(record=True) as caught:  # arms a fold never logged
        warnings.simplefilter("always", RewardModelWarning)
        q_hat = RewardModel(members=2).cross_fit(feats, action, spend, propensity,
                                                 n_arms=len(actions), folds=5, seed=plan_seed)
    q_net = q_hat - costs[None, :]

    truth = true_values(shop, ROUND, users=users.tolist())
    share = cfg.control_share
    mixed = dict(consent=consent, control_share=share, seed=plan_seed)
    net = truth - costs[None, :]
    net[:, 0] = 0.0
    arm_net = logs.groupby("action")["reward"].mean()
    arm_net = arm_net - arm_net.get(0, 0.0)
    best = int(arm_net.drop(0, errors="ignore").idxmax())
    worst = int(arm_net.drop(0, errors="ignore").idxmin())
    rng = np.random.default_rng(plan_seed)
    k = min(len(users), int(cfg.budget // costs[best]))
    chosen = np.zeros(len(users), bool)
    chosen[rng.choice(len(users), k, replace=False)] = True

    def send(arm: int, who: np.ndarray) -> np.ndarray:
        probs = np.zeros((len(users), len(actions)))
        probs[:, 0] = np.where(who, share, 1.0)
        probs[who, arm] = 1.0 - share
        return probs

    targets = {
        "policy": dec[[f"p_{a}" for a in actions]].to_numpy(dtype=float),
        "greedy": plan.greedy_probs,
        "oracle": np.asarray(policies.greedy(net, costs, cfg.budget, **mixed).probs),
        "single_best": send(best, chosen & consent),
        "worst_all": send(worst, consent),
    }
    out = []
    for name, pi in targets.items():
        out.append({"seed": seed, "target": name, "n": log.n,
                    "truth": policy_value(truth, pi, costs),
                    "expected_sends": float(pi[:, 1:].sum()), "q_hat_warnings": len(caught),
                    "offer": {"single_best": actions[best], "worst_all": actions[worst]}.get(name),
                    "est": estimates(log, pi, q_net, n_boot, plan_seed)})
    return out


def summarise(cases: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """One target's line over the seeds."""
    rows = [c for c in cases if c["target"] == name]
    truth = np.array([c["truth"] for c in rows])
    nz = np.abs(truth) > 1e-9  # relative error where the truth is not 0, if in half the cases
    relative = 2 * nz.sum() >= len(rows)
    per: dict[str, dict[str, float | None]] = {}
    for k in ESTIMATORS:
        est = np.array([c["est"][k]["value"] for c in rows])
        se = np.array([c["est"][k]["se"] for c in rows])
        low = np.array([c["est"][k]["ci_low"] for c in rows])
        high = np.array([c["est"][k]["ci_high"] for c in rows])
        err = est - truth
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.abs(err) / se
        per[k] = {
            "median_rel_error": float(np.median(np.abs(err[nz]) / np.abs(truth[nz])))
            if relative else None,
            "ci_coverage": float(np.mean((low <= truth) & (truth <= high))),
            "median_abs_error": float(np.median(np.abs(err))),
            "median_se": float(np.median(se)),
            "median_abs_error_over_se": float(np.nanmedian(z)) if np.isfinite(z).any() else None,
            "bias": float(err.mean()),
            "bias_se": float(err.std(ddof=1) / np.sqrt(len(err))) if len(err) > 1 else None}
    return {"target": name, "seeds": len(rows), "nonzero_truth_cases": int(nz.sum()),
            "true_value": {"min": float(truth.min()), "median": float(np.median(truth)),
                           "max": float(truth.max())},
            "expected_sends": float(np.median([c["expected_sends"] for c in rows])),
            "ess": float(np.median([c["est"]["dr"]["ess"] for c in rows])),
            "truth_over_dr_se": float(np.median(np.abs(truth) / np.array(
                [max(c["est"]["dr"]["se"], 1e-12) for c in rows]))),
            "rows": int(rows[0]["n"]), "estimators": per}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=20_000, help="users of the simulated shop")
    ap.add_argument("--seeds", type=int, default=20, help="seeds 0..N-1 (plan and outcomes)")
    ap.add_argument("--seed-shop", type=int, default=0, help="the shop's simulation seed")
    ap.add_argument("--budget", type=float, default=5000.0, help="money per round")
    ap.add_argument("--policy", default=None, choices=("thompson", "epsilon_greedy"),
                    help="logging policy (default: the shop's run.toml, thompson)")
    ap.add_argument("--floor", type=float, default=None,
                    help="exploration floor of the logging policy (default: run.toml's)")
    ap.add_argument("--n-boot", type=int, default=500, help="bootstrap resamples")
    ap.add_argument("--out", type=Path, default=None,
                    help="also write every (seed, target) case and the lines here (JSON lines)")
    args = ap.parse_args()

    from dataclasses import replace

    sys.path.insert(0, str(ROOT))
    from shopgraph.config import load_run_config
    from shopgraph.graphdb.formats import load
    from shopgraph.simulator import simulate

    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="shopgraph-ope-seeds-"))
    try:
        shop = work / "shop"
        simulate(shop, users=args.users, seed=args.seed_shop)
        cfg = load_run_config(shop / "run.toml").loop
        assert cfg is not None
        cfg = replace(cfg, budget=args.budget, policy=args.policy or cfg.policy,
                      floor=cfg.floor if args.floor is None else args.floor)
        source = load("tabular", shop / "mapping.toml")
        cases: list[dict[str, Any]] = []
        for seed in range(args.seeds):
            t = time.perf_counter()
            cases += one_seed(shop, source, cfg, seed, args.n_boot)
            print(f"seed {seed}: {time.perf_counter() - t:.0f} s "
                  + " ".join(f"{c['target']}={c['truth']:.0f}/{c['est']['dr']['value']:.0f}"
                             for c in cases[-len(TARGETS):]), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = [summarise(cases, name) for name in TARGETS]
    lines.append({
        "bench": "ope_seeds", "users": args.users, "eligible": int(cases[0]["n"]),
        "seeds": args.seeds, "seed_shop": args.seed_shop, "budget": args.budget,
        "logging": {"policy": cfg.policy, "floor": cfg.floor, "control_share":
                    cfg.control_share, "min_confidence": cfg.min_confidence,
                    "explore": cfg.explore},
        "dr_median_rel_error": {s["target"]: s["estimators"]["dr"]["median_rel_error"]
                                for s in lines},
        "dr_ci_coverage": {s["target"]: s["estimators"]["dr"]["ci_coverage"] for s in lines},
        "seconds": round(time.perf_counter() - started, 1)})
    for line in lines:
        print(json.dumps(line))
    if args.out is not None:
        with open(args.out, "w") as fh:
            for c in cases:
                fh.write(json.dumps({"case": c}) + "\n")
            for line in lines:
                fh.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
