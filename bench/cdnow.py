"""Benchmark: churn on CDNOW — the churn head beside the RFM logistic baseline and BG/NBD.

Split (Fader, Hardie & Lee, Marketing Science 2005): calibration 1997-01-01 … 1997-09-30,
holdout 1997-10-01 … 1998-06-30. Every score is computed from calibration-period purchases only
and judged on the label "no purchase in [1997-10-01, 1997-10-01 + H)". The heads train on the
snapshot 1997-10-01 − H (features before it, labels in the H days after), so they need H days of
history and H days of labels inside the 273-day calibration period: H ≤ 136. The default H = 90
days (a quarter) is the usual retention horizon within that bound.

BG/NBD (pymc-marketing ``clv.BetaGeoModel``, MAP with flat priors = maximum likelihood, weeks,
repeat purchases counted per day): fitted on CDNOW_sample.txt to compare its parameters with the
published ones, and on the full calibration period to score P(no purchase in (T, T + H]).

    python bench/cdnow.py [--horizon 90] [--data ../shared/data] [--no-bgnbd]

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
CALIBRATION_END = "1997-09-30"
CUTOFF = "1997-10-01"
HOLDOUT_END = "1998-07-01"
PUBLISHED = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}


def ece(prob: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error over equal-width probability bins (Naeini et al., AAAI 2015)."""
    idx = np.minimum((prob * bins).astype(int), bins - 1)
    return float(sum(abs(prob[idx == b].mean() - y[idx == b].mean()) * (idx == b).mean()
                     for b in range(bins) if (idx == b).any()))


def metrics(prob: np.ndarray, y: np.ndarray) -> dict:
    """ROC-AUC, PR-AUC (churn is the positive class, and staying), Brier, ECE."""
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    return {"roc_auc": round(roc_auc_score(y, prob), 4),
            "pr_auc": round(average_precision_score(y, prob), 4),
            "pr_auc_stay": round(average_precision_score(1 - y, -prob), 4),
            "brier": round(brier_score_loss(y, prob), 4), "ece": round(ece(prob, y), 4),
            "mean_probability": round(float(prob.mean()), 4),
            "churn_rate": round(float(y.mean()), 4)}


def auc_gain_ci(y: np.ndarray, a: np.ndarray, b: np.ndarray, reps: int = 200,
                seed: int = 0) -> list[float]:
    """95 % paired-bootstrap interval of ROC-AUC(a) − ROC-AUC(b) over customers."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    gains = []
    for _ in range(reps):
        i = rng.integers(0, len(y), len(y))
        gains.append(roc_auc_score(y[i], a[i]) - roc_auc_score(y[i], b[i]))
    return [round(float(q), 4) for q in np.percentile(gains, [2.5, 97.5])]


def head_run(model: str, p: pd.DataFrame, y: pd.Series, horizon: int, **kw):
    """Fit a head at the cutoff and score it on the holdout labels."""
    from shopgraph.strategies.churn import ChurnHead

    t = time.perf_counter()
    head = ChurnHead(model, **kw).fit(p, CUTOFF, horizon)
    fit_s = time.perf_counter() - t
    pred = head.predict(p, CUTOFF).reindex(y.index)
    yv = y.to_numpy()
    out = metrics(pred["churn_probability"].to_numpy(), yv)
    bands = {}
    for band in pred["risk_band"].cat.categories:
        mask = (pred["risk_band"] == band).to_numpy()
        bands[str(band)] = {"share": round(float(mask.mean()), 4),
                            "churn_rate": round(float(yv[mask].mean()), 4) if mask.any() else None}
    out.update(bands=bands, fit_s=round(fit_s, 2), train=head.info)
    return out, head, pred


def bgnbd_frame(p: pd.DataFrame) -> pd.DataFrame:
    """Per-customer ``frequency`` (repeat purchase days), ``recency`` and ``T`` in weeks."""
    end = pd.Timestamp(CALIBRATION_END).value // 10**9
    days = p[p["ts"] <= end].assign(day=lambda f: f["ts"] // 86_400)
    days = days[["user_id", "day"]].drop_duplicates()
    g = days.groupby("user_id")["day"]
    first, last = g.min(), g.max()
    return pd.DataFrame({"customer_id": np.arange(len(first)), "frequency": g.size() - 1,
                         "recency": (last - first) / 7.0,
                         "T": (end // 86_400 - first) / 7.0}, index=first.index)


def bgnbd_fit(frame: pd.DataFrame):
    from pymc_extras.prior import Prior
    from pymc_marketing.clv import BetaGeoModel

    flat = {k: Prior("HalfFlat") for k in ("alpha", "r", "a", "b")}
    model = BetaGeoModel(data=frame.reset_index(drop=True), model_config=flat)
    model.fit(method="map", progressbar=False)
    summary = model.fit_summary()
    return model, {k: round(float(summary[k]), 3) for k in ("r", "alpha", "a", "b")}


def bgnbd(args: argparse.Namespace, p: pd.DataFrame, y: pd.Series):
    """BG/NBD fitted on the sample (parameters) and on all customers (P(no purchase in H))."""
    import pymc_marketing

    from shopgraph.graphdb.formats import load
    from shopgraph.graphdb.tables import purchases

    sample = purchases(load("cdnow", args.data / "cdnow" / "CDNOW_sample.txt"))
    t = time.perf_counter()
    _, sample_params = bgnbd_fit(bgnbd_frame(sample))
    sample_s = time.perf_counter() - t
    frame = bgnbd_frame(p)
    t = time.perf_counter()
    model, params = bgnbd_fit(frame)
    full_s = time.perf_counter() - t
    prob = model.expected_probability_no_purchase(t=args.horizon / 7.0).values.reshape(-1)
    prob = pd.Series(prob, index=frame.index).reindex(y.index).to_numpy()
    return prob, {"library": f"pymc-marketing {pymc_marketing.__version__}",
            "sample_params": sample_params, "published_params": PUBLISHED,
            "sample_fit_s": round(sample_s, 2), "full_params": params,
            "full_fit_s": round(full_s, 2), **metrics(prob, y.to_numpy())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--horizon", type=int, default=90, help="churn horizon H in days (<= 136)")
    ap.add_argument("--no-bgnbd", action="store_true", help="skip the BG/NBD peer")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    if not args.no_bgnbd:
        try:
            import pymc_marketing  # noqa: F401
        except ImportError:
            raise SystemExit("the BG/NBD peer needs pymc-marketing: .venv/bin/pip install "
                             "'pymc-marketing>=0.19.2', or pass --no-bgnbd") from None

    import lightgbm
    import sklearn

    from shopgraph.graphdb.formats import load
    from shopgraph.graphdb.tables import purchases
    from shopgraph.strategies.features import as_seconds, churn_labels

    end = as_seconds(HOLDOUT_END)
    if as_seconds(CUTOFF) + args.horizon * 86_400 > end:
        raise SystemExit(f"--horizon {args.horizon} runs past the holdout end {HOLDOUT_END}")
    p = purchases(load("cdnow", args.data / "cdnow" / "CDNOW_master.txt"))
    y = churn_labels(p, CUTOFF, args.horizon)
    head, model, pred = head_run("lightgbm", p, y, args.horizon)
    base, _, base_pred = head_run("logistic", p, y, args.horizon)
    yv, prob = y.to_numpy(), pred["churn_probability"].to_numpy()
    iso, *_ = head_run("lightgbm", p, y, args.horizon, calibration="isotonic")
    reasons = model.reasons(p, CUTOFF, users=pred["churn_probability"].nlargest(1000).index)
    top = reasons[reasons["rank"] == 1]["feature"].value_counts(normalize=True).round(3)
    example = reasons[reasons["user_id"] == reasons["user_id"].iloc[0]]
    result = {
        "bench": "cdnow-churn", "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, 1 thread",
        "lightgbm": lightgbm.__version__, "sklearn": sklearn.__version__,
        "horizon_days": args.horizon, "cutoff": CUTOFF, "customers": int(len(y)),
        "roc_auc": head["roc_auc"], "baseline_roc_auc": base["roc_auc"],
        "bgnbd_roc_auc": None, "brier": head["brier"],
        "gain_vs_baseline_ci95": auc_gain_ci(yv, prob, base_pred["churn_probability"].to_numpy()),
        "head": head, "baseline": base,
        "head_isotonic": {k: iso[k] for k in ("roc_auc", "brier", "ece")},
        "top_reason_share_top1000": top.to_dict(),
        "example_reasons": [{"user_id": r.user_id, "feature": r.feature, "value": round(r.value, 4),
                             "contribution": round(r.contribution, 3)}
                            for r in example.itertuples()],
    }
    if not args.no_bgnbd:
        bg_prob, result["bgnbd"] = bgnbd(args, p, y)
        result["bgnbd_roc_auc"] = result["bgnbd"]["roc_auc"]
        result["gain_vs_bgnbd_ci95"] = auc_gain_ci(yv, prob, bg_prob)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
