"""Benchmark: retrieval over Gowalla embeddings, beside brute-force PyTorch matmul top-k, and a
scale check on random vectors.

Embeddings: the spectral model fitted on Gowalla's train.txt (``--set k=64`` for 64 dimensions).
Exclusions: each user's train.txt items; quality: Recall@20 on test.txt. Prints one JSON line.

    python bench/retrieval.py [--kind hnsw] [--factory F] [--set k=64] [--scale-n 1000000]
                              [--scale-factory HNSW48]
                              [--scale-ef-construction 80] [--threads 2] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def matmul_top_k(users, items, k, seen=None, rows=None, block=2048):
    """The peer: brute-force PyTorch matmul, seen items set to -inf, torch.topk."""
    import torch

    rows = np.arange(len(users)) if rows is None else rows
    out = []
    for s in range(0, len(rows), block):
        r = rows[s:s + block]
        scores = users[torch.from_numpy(r)] @ items.T
        if seen is not None:
            sub = seen[r]
            scores[torch.from_numpy(np.repeat(np.arange(len(r)), np.diff(sub.indptr))),
                   torch.from_numpy(sub.indices.astype(np.int64))] = float("-inf")
        out.append(torch.topk(scores, k, dim=1).indices.numpy())
    return np.concatenate(out)


def test_recall(ids, test):
    """Recall@k of ranked item ids against test.txt (users with test items)."""
    hits, per_user = 0.0, 0
    for u in range(test.shape[0]):
        truth = test.indices[test.indptr[u]:test.indptr[u + 1]]
        if len(truth):
            hits += np.intersect1d(ids[u], truth).size / len(truth)
            per_user += 1
    return hits / per_user


def latencies(fn, n):
    times = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t)
    times = np.array(times)
    return {"qps": round(1 / times.mean(), 1), "p50_ms": round(1e3 * np.median(times), 3),
            "p99_ms": round(1e3 * np.percentile(times, 99), 3)}


def gowalla(args):
    import torch

    from shopgraph.config import parse_settings
    from shopgraph.gnn.data import load_lightgcn_split
    from shopgraph.gnn.registry import model_class
    from shopgraph.retrieval.exact import recall_at_k
    from shopgraph.retrieval.index import EmbeddingIndex

    folder = args.data / "gowalla"
    train, test = load_lightgcn_split(folder / "train.txt", folder / "test.txt")
    model = model_class("spectral")(**parse_settings(args.sets))
    t = time.perf_counter()
    model.fit(train)
    fit_s = time.perf_counter() - t
    users, items = model.embeddings()
    seen, k = train.matrix.tocsr(), 20
    tu, ti = torch.from_numpy(users), torch.from_numpy(items)

    t = time.perf_counter()
    index = EmbeddingIndex.build(items, kind=args.kind, factory=args.factory, tune_queries=users)
    build_s = time.perf_counter() - t
    exact_raw = matmul_top_k(tu, ti, k)
    ann_raw = index.search(users, k).ids
    ann_recall = recall_at_k(ann_raw, exact_raw)

    rng = np.random.default_rng(0)
    sample = rng.choice(len(users), 1000, replace=False)
    single = latencies(lambda i: index.search(users[sample[i]:sample[i] + 1], k,
                                              exclude=seen[sample[i]:sample[i] + 1]), 1000)
    single_peer = latencies(lambda i: matmul_top_k(tu, ti, k, seen, sample[i:i + 1]), 1000)
    batch = rng.choice(len(users), 1024, replace=False)

    def timed(fn, reps=3):
        best = np.inf
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
        return best

    batch_s = timed(lambda: index.search(users[batch], k, exclude=seen[batch]))
    batch_peer_s = timed(lambda: matmul_top_k(tu, ti, k, seen, batch))

    t = time.perf_counter()
    ann_all = index.search(users, k, exclude=seen).ids
    all_s = time.perf_counter() - t
    t = time.perf_counter()
    exact_all = matmul_top_k(tu, ti, k, seen)
    exact_all_s = time.perf_counter() - t
    r_ann, r_exact = test_recall(ann_all, test.matrix), test_recall(exact_all, test.matrix)
    return {
        "embeddings": f"spectral {users.shape[1]}-d ({fit_s:.1f} s fit)",
        "users": len(users), "items": len(items), "factory": index.factory,
        "params": index.params, "tuned_recall@20": index.info.get("recall@20"),
        "ann_recall@20_vs_exact": round(ann_recall, 4),
        "qps_single": single["qps"], "p50_ms_single": single["p50_ms"],
        "p99_ms_single": single["p99_ms"], "matmul_qps_single": single_peer["qps"],
        "matmul_p50_ms_single": single_peer["p50_ms"],
        "matmul_p99_ms_single": single_peer["p99_ms"],
        "qps_batch": round(len(batch) / batch_s),
        "matmul_qps_batch": round(len(batch) / batch_peer_s),
        "p50_ms_batch1024": round(1e3 * batch_s, 1),
        "all_users_top20_s": round(all_s, 2),
        "exact_matmul_all_users_top20_s": round(exact_all_s, 2),
        "speedup_all_users": round(exact_all_s / all_s, 2),
        "recall@20_ann": round(r_ann, 4), "recall@20_exact": round(r_exact, 4),
        "recall@20_delta": round(r_ann - r_exact, 4),
        "build_s": round(build_s, 2), "index_mb": round(index.nbytes / 2**20, 1),
        "exact_mb": round(items.nbytes / 2**20, 1),
    }


def scale(args):
    import torch

    from shopgraph.retrieval.exact import recall_at_k
    from shopgraph.retrieval.index import EmbeddingIndex

    rng = np.random.default_rng(1)
    base = rng.standard_normal((args.scale_n, 64), dtype=np.float32)
    queries = rng.standard_normal((1000, 64), dtype=np.float32)
    t = time.perf_counter()
    truth = matmul_top_k(torch.from_numpy(queries), torch.from_numpy(base), 20, block=256)
    exact_s = time.perf_counter() - t
    t = time.perf_counter()
    index = EmbeddingIndex.build(base, factory=args.scale_factory, tune_queries=queries,
                                 target_recall=0.95, ef_construction=args.scale_ef_construction)
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    found = index.search(queries, 20).ids
    batch_s = time.perf_counter() - t
    single = latencies(lambda i: index.search(queries[i:i + 1], 20), 1000)
    return {"n": args.scale_n, "d": 64, "factory": index.factory,
            "ef_construction": args.scale_ef_construction, "params": index.params,
            "recall@20": round(recall_at_k(found, truth), 4), "build_s": round(build_s, 1),
            "index_mb": round(index.nbytes / 2**20, 1),
            "qps_single": single["qps"], "p50_ms_single": single["p50_ms"],
            "p99_ms_single": single["p99_ms"], "qps_batch": round(1000 / batch_s),
            "matmul_qps_batch": round(1000 / exact_s)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--kind", default="hnsw", help="index kind for Gowalla (default hnsw)")
    ap.add_argument("--factory", default=None, help="FAISS factory string instead of --kind")
    ap.add_argument("--set", dest="sets", action="append", default=[],
                    help="spectral model setting KEY=VALUE, e.g. k=64")
    ap.add_argument("--scale-n", type=int, default=1_000_000, help="0 skips the scale check")
    ap.add_argument("--scale-factory", default="HNSW48",
                    help="FAISS factory string of the scale check, tuned to recall 0.95")
    ap.add_argument("--scale-ef-construction", type=int, default=80)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    import faiss
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
        faiss.omp_set_num_threads(args.threads)
    result = {"bench": "retrieval", "date": time.strftime("%Y-%m-%d"),
              "machine": f"{platform.machine()} {torch.get_num_threads()} threads",
              "faiss": faiss.__version__, "gpus": faiss.get_num_gpus(), **gowalla(args)}
    if args.scale_n:
        result["scale"] = scale(args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
