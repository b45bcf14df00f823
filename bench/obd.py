"""Benchmark: off-policy estimates of Bernoulli Thompson sampling's CTR on the Open Bandit Dataset.

The check of Saito, Aihara, Matsutani & Narita, "Open Bandit Dataset and Pipeline", NeurIPS 2021
Datasets and Benchmarks (arXiv 2008.07146), Section 5, on the small sample that ``obp`` ships
(``../shared/data/open_bandit_sample``; 10,000 impressions per policy and campaign): estimate the
CTR of the Bernoulli-TS (BTS) policy from the uniform-random policy's log alone, and compare with
BTS's own on-policy CTR (the mean click of its log); relative error = |estimate - CTR| / CTR.

As in the paper (and ``obp``'s ``examples/obd/evaluate_off_policy_estimators.py``):

* The action is the item; the position (1-3) indexes the policies and the reward model. Each row
  is valued with the target policy's item distribution *at the row's logged position*, against the
  logged propensity of the item at that position (1 / n_items for the random policy).
* BTS's action probabilities come from its production Beta priors (``prior_bts.yaml``) by Monte
  Carlo: each draw samples a CTR per item, ranks the items, and puts the top three in positions
  1-3; ``pi_e[item, position]`` is the share of draws (``--n-sim``, default 100,000). BTS is
  context-free, so every row at one position has the same distribution.
* Estimators: IPS (the paper's IPW), SNIPS, DM, DR and SNDR of ``shopgraph.strategies.ope``.
* The reward model for DM, DR and SNDR is cross-fitted (3 folds, as the paper): one L2
  logistic regression on one-hot user features (``user_feature_0..3``), item features (one-hot
  ``item_feature_1..3`` and the numeric ``item_feature_0``) and one-hot position; its predicted
  click probability for every item at the row's position is ``q_hat``. The paper fits one model
  per position; with 11-22 clicks per position here, one shared model with a position term is
  used instead (the two were not compared). C is chosen per campaign by 3-fold cross-validated
  log-loss on the random log (never on the BTS log).
* ``runs`` (default 20) bootstrap resamples of the random log (seeded by the run index as in the
  paper, but with numpy's Generator, so not the paper's very resamples),
  each with its own cross-fitted reward model; the relative error's mean and sd over runs are
  reported (the paper's small-sample figures on "all": DM 0.180 +/- 0.115, IPW 0.333 +/- 0.350,
  DR 0.304 +/- 0.348). On the full random log each estimator also gets its 95% percentile
  bootstrap interval (1,000 resamples) and whether it holds the on-policy CTR.

The on-policy CTRs rest on 42-69 clicks, so they carry a sampling error of 12-15% themselves.
Prints one JSON line.

    python bench/obd.py [--data ../shared/data/open_bandit_sample] [--runs 20] [--n-sim 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "open_bandit_sample"
CAMPAIGNS = ("all", "men", "women")
LEN_LIST = 3
C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0)
NAMES = {"ips": "IPS", "snips": "SNIPS", "dm": "DM", "dr": "DR", "sndr": "SNDR"}


def read_prior(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """``prior_bts.yaml`` (campaign -> alpha/beta lists), read without a YAML library."""
    prior: dict[str, dict[str, list[float]]] = {}
    campaign = key = ""
    for line in path.read_text().splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if not line.startswith(" "):
            campaign = text.rstrip(":")
            prior[campaign] = {}
        elif text.endswith(":"):
            key = text.rstrip(":")
            prior[campaign][key] = []
        else:
            prior[campaign][key].append(float(text.lstrip("- ")))
    return {c: {k: np.array(v) for k, v in d.items()} for c, d in prior.items()}


def read_log(data: Path, policy: str, campaign: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One policy's log (sorted by time) and the campaign's item table."""
    folder = data / policy / campaign
    log = pd.read_csv(folder / f"{campaign}.csv", index_col=0).sort_values("timestamp")
    items = pd.read_csv(folder / "item_context.csv", index_col=0).sort_values("item_id")
    return log.reset_index(drop=True), items.reset_index(drop=True)


def bts_action_dist(alpha: np.ndarray, beta: np.ndarray, n_sim: int, seed: int,
                    chunk: int = 20_000) -> np.ndarray:
    """``(n_items, LEN_LIST)``: share of Monte-Carlo draws that put each item at each position."""
    rng = np.random.default_rng(seed)
    counts = np.zeros((len(alpha), LEN_LIST))
    for start in range(0, n_sim, chunk):
        theta = rng.beta(alpha, beta, size=(min(chunk, n_sim - start), len(alpha)))
        top = np.argsort(-theta, axis=1)[:, :LEN_LIST]
        for pos in range(LEN_LIST):
            counts[:, pos] += np.bincount(top[:, pos], minlength=len(alpha))
    dist: np.ndarray = counts / n_sim
    return dist


def design(log: pd.DataFrame, items: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-hot user features per row, item features per item, one-hot position per row."""
    users = pd.get_dummies(log.filter(like="user_feature_").astype(str)).to_numpy(float)
    cats = pd.get_dummies(items[["item_feature_1", "item_feature_2", "item_feature_3"]]
                          .astype(str)).to_numpy(float)
    f0 = items[["item_feature_0"]].to_numpy(float)
    item_x = np.c_[cats, (f0 - f0.mean()) / (f0.std() or 1.0)]
    pos = np.eye(LEN_LIST)[log["position"].to_numpy() - 1]
    return users, item_x, pos


def fit_logit(x: np.ndarray, y: np.ndarray, c: float) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=2000).fit(x, y)


def choose_c(users: np.ndarray, item_x: np.ndarray, pos: np.ndarray, action: np.ndarray,
             click: np.ndarray, seed: int, grid: tuple[float, ...] = C_GRID) -> float:
    """The C of ``grid`` with the best 3-fold cross-validated log-loss."""
    from sklearn.metrics import log_loss
    from sklearn.model_selection import StratifiedKFold

    if len(grid) == 1:
        return grid[0]
    x = np.c_[users, item_x[action], pos]
    folds = list(StratifiedKFold(3, shuffle=True, random_state=seed).split(x, click))
    def loss(c: float) -> float:
        return float(np.mean([log_loss(click[te], fit_logit(x[tr], click[tr], c).predict_proba(
            x[te])[:, 1], labels=[0, 1]) for tr, te in folds]))

    return grid[int(np.argmin([loss(c) for c in grid]))]


def reward_model(users: np.ndarray, item_x: np.ndarray, pos: np.ndarray, action: np.ndarray,
                 click: np.ndarray, c: float, seed: int, folds: int = 3) -> np.ndarray:
    """Cross-fitted ``q_hat (rows, items)``: each fold predicted by the model fitted on the
    others, for every item at the row's own position (the logit is additive, so the matrix is
    a row part plus an item part)."""
    from sklearn.model_selection import KFold

    q = np.empty((len(action), len(item_x)))
    nu, ni = users.shape[1], item_x.shape[1]
    for tr, te in KFold(folds, shuffle=True, random_state=seed).split(action):
        m = fit_logit(np.c_[users[tr], item_x[action[tr]], pos[tr]], click[tr], c)
        coef = m.coef_[0]
        row = users[te] @ coef[:nu] + pos[te] @ coef[nu + ni:] + m.intercept_[0]
        q[te] = 1 / (1 + np.exp(-(row[:, None] + (item_x @ coef[nu:nu + ni])[None, :])))
    return q


def estimate(log: pd.DataFrame, dist: np.ndarray, users: np.ndarray, item_x: np.ndarray,
             pos: np.ndarray, c: float, seed: int, n_boot: int) -> dict[str, Any]:
    """Every estimator of ``shopgraph.strategies.ope`` on one (resampled) random log."""
    from shopgraph.strategies.ope import LoggedBandit, evaluate

    action = log["item_id"].to_numpy()
    click = log["click"].to_numpy().astype(float)
    bandit = LoggedBandit(action, click, log["propensity_score"].to_numpy())
    pi_e = dist.T[log["position"].to_numpy() - 1]
    q_hat = reward_model(users, item_x, pos, action, click, c, seed)
    return evaluate(bandit, pi_e, q_hat, n_boot=n_boot, seed=seed)


def check(data: Path, campaign: str, prior: dict[str, dict[str, np.ndarray]], runs: int,
          n_sim: int, n_boot: int, seed: int, c_grid: tuple[float, ...] = C_GRID
          ) -> dict[str, Any]:
    """The comparison for one campaign (``c_grid``: the logistic regression's C candidates)."""
    start = time.perf_counter()
    truth = float(read_log(data, "bts", campaign)[0]["click"].mean())
    log, items = read_log(data, "random", campaign)
    dist = bts_action_dist(prior[campaign]["alpha"], prior[campaign]["beta"], n_sim, seed)
    users, item_x, pos = design(log, items)
    action, click = log["item_id"].to_numpy(), log["click"].to_numpy()
    c = choose_c(users, item_x, pos, action, click, seed, c_grid)
    full = estimate(log, dist, users, item_x, pos, c, seed, n_boot)
    errors: dict[str, list[float]] = {k: [] for k in full}
    for b in range(runs):
        rows = np.random.default_rng(b).integers(0, len(log), len(log))
        est = estimate(log.iloc[rows], dist, users[rows], item_x, pos[rows], c, seed, 0)
        for k, e in est.items():
            errors[k].append(abs(e.value - truth) / truth)
    out: dict[str, Any] = {"on_policy_ctr": truth, "random_ctr": float(click.mean()),
                           "n": len(log), "clicks": int(click.sum()), "logistic_C": c}
    for k, e in full.items():
        err = np.array(errors[k])
        out[NAMES[k]] = {
            "relative_error": round(abs(e.value - truth) / truth, 4),
            "estimate": round(e.value, 6), "ci95": [round(e.ci_low, 6), round(e.ci_high, 6)],
            "ci_holds_ctr": bool(e.ci_low <= truth <= e.ci_high), "se": round(e.se, 6),
            "ess": round(e.ess, 1),
            "runs_relative_error_mean": round(float(err.mean()), 4),
            "runs_relative_error_sd": round(float(err.std(ddof=1)), 4) if runs > 1 else None}
    out["seconds"] = round(time.perf_counter() - start, 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA, help="the open_bandit_sample folder")
    ap.add_argument("--campaigns", nargs="+", default=list(CAMPAIGNS), choices=CAMPAIGNS)
    ap.add_argument("--runs", type=int, default=20, help="bootstrap resamples of the random log")
    ap.add_argument("--n-sim", type=int, default=100_000, help="Monte-Carlo draws of BTS")
    ap.add_argument("--n-boot", type=int, default=1000, help="resamples per full-log interval")
    ap.add_argument("--seed", type=int, default=12345)
    args = ap.parse_args()

    start = time.perf_counter()
    prior = read_prior(args.data / "prior_bts.yaml")
    result: dict[str, Any] = {"bench": "obd-ope", "runs": args.runs, "n_sim": args.n_sim,
                              "n_boot": args.n_boot, "seed": args.seed}
    for campaign in args.campaigns:
        result[campaign] = check(args.data, campaign, prior, args.runs, args.n_sim,
                                 args.n_boot, args.seed)
    result["seconds"] = round(time.perf_counter() - start, 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
