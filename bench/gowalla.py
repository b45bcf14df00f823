"""Benchmark: train on Gowalla's train.txt, evaluate full-ranking on test.txt (LightGCN protocol).

Prints one JSON line per model, each with the popularity baseline measured in the same run.
Hyper-parameters were chosen on train_split.txt / valid.txt (see docs/benchmarks.md), never on
test.txt; here there is no early stopping: BPR models train until the epoch limit or the time
budget, then test.txt is scored once.

    python bench/gowalla.py [--model lightgcn|graphsage|spectral|all] [--budget-s 1200]
                            [--set KEY=VALUE ...] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Chosen on train_split/valid (docs/benchmarks.md); --set overrides.
SETTINGS = {
    "lightgcn": {"epochs": 1000, "batch_size": 2048, "lr": 0.001},
    "graphsage": {"epochs": 1000},
    "spectral": {},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--model", default="all", help="lightgcn, graphsage, spectral or all")
    ap.add_argument("--budget-s", type=float, default=1200.0, help="training time per model")
    ap.add_argument("--set", dest="sets", action="append", default=[],
                    help="model setting KEY=VALUE (repeatable)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads (default: torch's choice, 2 here)")
    ap.add_argument("--no-tune", action="store_true",
                    help="spectral: fit train.txt once with the given settings, no tuning split")
    ap.add_argument("--train-file", default="train.txt")
    ap.add_argument("--test-file", default="test.txt")
    args = ap.parse_args()

    import torch

    from shopgraph.config import parse_settings
    from shopgraph.gnn.data import load_lightgcn_split
    from shopgraph.gnn.device import pick_device
    from shopgraph.gnn.metrics import evaluate, popularity_scores
    from shopgraph.gnn.registry import model_class
    from shopgraph.gnn.train import refit

    if args.threads:
        torch.set_num_threads(args.threads)
    folder = args.data / "gowalla"
    train, test = load_lightgcn_split(folder / args.train_file, folder / args.test_file)
    t0 = time.perf_counter()
    pop = evaluate(popularity_scores(train.matrix), train.matrix, test.matrix)
    pop_s = time.perf_counter() - t0
    names = list(SETTINGS) if args.model == "all" else [args.model]
    for name in names:
        cls = model_class(name)
        settings = {**SETTINGS[name], **parse_settings(args.sets)}
        if "max_seconds" in cls.defaults:
            settings.setdefault("max_seconds", args.budget_s)
        model = cls(**settings)
        started = time.perf_counter()
        tuned: dict[str, float] = {}
        if name == "spectral" and model.config.get("tune") and not args.no_tune:
            # As `shopgraph train` does: choose the rank and item scale on a validation split
            # (Gowalla's own: train_split.txt / valid.txt), then refit on all of train.txt at
            # those settings. Both fits are timed.
            part, held = load_lightgcn_split(folder / "train_split.txt", folder / "valid.txt")
            report = model.fit(part, held)
            tuned = {k: v for k, v in report.history[0].items() if k.startswith("tune")}
            model, report = refit(model, train, report)
        else:
            report = model.fit(train, None, progress=False)
        train_s = time.perf_counter() - started
        t1 = time.perf_counter()
        metrics = evaluate(model.score, train.matrix, test.matrix, ks=(20,))
        eval_s = time.perf_counter() - t1
        epochs = len(report.history) if report.history else None
        print(json.dumps({
            "bench": "gowalla", "model": name, "train_file": args.train_file,
            "test_file": args.test_file,
            "recall@20": round(metrics["recall@20"], 4), "ndcg@20": round(metrics["ndcg@20"], 4),
            "precision@20": round(metrics["precision@20"], 4),
            "hitrate@20": round(metrics["hitrate@20"], 4),
            "coverage@20": round(metrics["coverage@20"], 4),
            "train_s": round(train_s, 1), "eval_s": round(eval_s, 1), "epochs": epochs,
            "budget_s": args.budget_s, "settings": model.config, "tuning": tuned,
            "popularity_recall@20": round(pop["recall@20"], 4),
            "popularity_ndcg@20": round(pop["ndcg@20"], 4), "popularity_eval_s": round(pop_s, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "device": str(pick_device(settings.get("device", "auto"))),
            "threads": torch.get_num_threads(), "machine": platform.machine(),
        }, default=str), flush=True)


if __name__ == "__main__":
    main()
