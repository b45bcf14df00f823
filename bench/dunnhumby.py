"""Benchmark: the response head on dunnhumby "The Complete Journey" — will a targeted household
redeem one of the campaign's coupons?

One row per (household, campaign) in campaign_table.csv (7,208); label: a redemption of one of
the campaign's coupons. Features: demographics, campaign type / duration / offers / items, and
the household's campaign history strictly before the campaign's start day (no retrieval score:
the transactions are not staged). Time split: test on campaigns starting on or after
``--test-from``, train on campaigns that ended before it (their outcomes were known by then);
campaigns running across the cut-off are in neither. The learner was chosen on a validation
split inside the training range (``--valid-from``), reported as ``validation``; the test part
was scored once per learner. Prints one JSON line.

    python bench/dunnhumby.py [--data ../shared/data] [--test-from 587] [--valid-from 477]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _hgb(train, test, uf, cf):
    """scikit-learn's HistGradientBoosting on the same inputs, for the choice of learner."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from shopgraph.strategies import response as R

    enc = R.fit(train, uf, cf).encoding
    cols = list(R.design_matrix(train, uf, cf).columns)
    model = HistGradientBoostingClassifier(
        learning_rate=0.03, max_iter=150, max_leaf_nodes=4, min_samples_leaf=40,
        l2_regularization=5.0, categorical_features="from_dtype", random_state=0)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # one thread, like LightGBM's n_jobs=1
        model.fit(enc.trees(R.design_matrix(train, uf, cf)), train["redeemed"])
        x = enc.trees(R.design_matrix(test, uf, cf).reindex(columns=cols))
        return model.predict_proba(x)[:, 1]


def paired_bootstrap(y, a, b, n=1000, seed=0):
    """95 % interval of ROC AUC(a) - ROC AUC(b), resampling test rows with replacement."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    y, a, b = np.asarray(y) > 0, np.asarray(a), np.asarray(b)
    diffs = []
    for _ in range(n):
        i = rng.integers(0, len(y), len(y))
        diffs.append(roc_auc_score(y[i], a[i]) - roc_auc_score(y[i], b[i]))
    return [round(float(q), 4) for q in np.percentile(diffs, [2.5, 97.5])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--test-from", type=float, default=587.0,
                        help="first start day of the test campaigns")
    parser.add_argument("--valid-from", type=float, default=477.0,
                        help="first start day of the validation campaigns (inside training)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from shopgraph.graphdb import tables
    from shopgraph.graphdb.formats import load
    from shopgraph.strategies import history as C
    from shopgraph.strategies import response as R

    t0 = time.perf_counter()
    src = load("dunnhumby", Path(args.data) / "dunnhumby_complete_journey")
    log = tables.campaign_log(src)
    cf, uf = tables.campaign_features(src), tables.user_features(src)
    log = log.join(C.history_features(log, log, cf, tables.redemptions(src)))
    prep_s = time.perf_counter() - t0
    train, test = R.time_split(log, cf, args.test_from)
    fit_tr, valid = R.time_split(train, cf, args.valid_from)

    validation = {}
    for kind in R.KINDS:
        head = R.fit(fit_tr, uf, cf, kind=kind, seed=args.seed)
        validation[kind] = R.scores(valid["redeemed"], head.predict_proba(valid, uf, cf))
    validation["sklearn_hgb"] = R.scores(valid["redeemed"], _hgb(fit_tr, valid, uf, cf))

    results, seconds, probas = {}, {}, {}
    for kind in R.KINDS:
        t = time.perf_counter()
        head = R.fit(train, uf, cf, kind=kind, seed=args.seed)
        proba = head.predict_proba(test, uf, cf)
        seconds[kind] = round(time.perf_counter() - t, 3)
        results[kind] = R.scores(test["redeemed"], proba)
        probas[kind] = proba
    bare = [c for c in train.columns if c not in C.HISTORY_COLUMNS]
    head = R.fit(train[bare], uf, cf, seed=args.seed)
    no_history = R.scores(test["redeemed"], head.predict_proba(test[bare], uf, cf))
    head = R.fit(train, uf, cf, seed=args.seed)
    top = head.reasons(test.head(1), uf, cf).iloc[0].tolist()

    def ids(frame):
        return sorted(frame["campaign_id"].unique(), key=int)

    rnd = {k: {m: round(v, 4) for m, v in r.items()} for k, r in validation.items()}
    print(json.dumps({
        "bench": "dunnhumby_response", "label": "redeemed",
        "roc_auc": round(results["lightgbm"]["roc_auc"], 4),
        "pr_auc": round(results["lightgbm"]["pr_auc"], 4),
        "baseline_roc_auc": round(results["logistic"]["roc_auc"], 4),
        "baseline_pr_auc": round(results["logistic"]["pr_auc"], 4),
        "roc_auc_diff_ci95": paired_bootstrap(test["redeemed"], probas["lightgbm"],
                                              probas["logistic"]),
        "no_history_roc_auc": round(no_history["roc_auc"], 4),
        "model": "lightgbm", "baseline": "logistic",
        "n_train": len(train), "n_test": len(test), "n_features": len(head.columns),
        "base_rate_train": round(float(train["redeemed"].mean()), 4),
        "base_rate_test": round(float(test["redeemed"].mean()), 4),
        "split": (f"time: test = campaigns starting on/after day {args.test_from:g} "
                  f"({len(ids(test))}: {','.join(ids(test))}); train = campaigns ended before "
                  f"it ({len(ids(train))}); {len(log) - len(train) - len(test)} rows of "
                  "campaigns spanning the cut-off left out"),
        "validation": {"split": f"train campaigns ended before day {args.valid_from:g} "
                                f"({len(fit_tr)} rows) vs starting on/after it ({len(valid)})",
                       **rnd},
        "fit_predict_s": seconds, "prep_s": round(prep_s, 3), "example_reasons": top,
        "seed": args.seed, "threads": 1, "python": platform.python_version(),
        "numpy": np.__version__,
    }))


if __name__ == "__main__":
    main()
