"""Benchmark: all-user top-k in user blocks, in this process and on local two-worker clusters.

Synthetic embeddings (``--users`` x ``--items``, ``--dim``-d float32 around 512 shared tastes,
1% of users all-zero) and about ``--seen`` seen items per user drawn from a skewed
popularity; the item index is built as ``shopgraph index build`` would (``auto``: HNSW tuned to
recall@20 >= 0.98 at this size). Each engine scores the same blocks
(:func:`shopgraph.retrieval.partitions.top_items`); its results are compared bit for bit with the
in-process run. Per engine: cluster start-up seconds, per-task overhead (a no-op mapped over 200
small parts), seconds for all users, peak RSS of this process and every process it started.
Prints one JSON line.

``--engines`` picks among ``local`` (always run, the reference), ``dask`` (the engine shopgraph
uses: ``distributed.LocalCluster``), ``ray`` and ``spark`` (``local[N]``), the last two only for
the comparison that chose Dask (adapters here, not in shopgraph).

    python bench/engine.py [--users 1000000] [--items 100000] [--dim 64] [--k 20]
                           [--block-size 65536] [--workers 2] [--engines local,dask]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from collections import deque
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]


class PeakRss:
    """Peak summed RSS (MB) of this process and its descendants, sampled every 0.2 s."""

    def __init__(self):
        import psutil

        self.me, self.peak, self._stop = psutil.Process(), 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self):
        total = 0
        for proc in [self.me, *self.me.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except Exception:  # noqa: BLE001 - a process that just ended
                pass
        self.peak = max(self.peak, total / 2**20)

    def _run(self):
        while not self._stop.wait(0.2):
            self._sample()

    def __enter__(self):
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()


def synthetic(users, items, dim, seen, seed=0):
    """User and item vectors, the seen matrix and the cold flags of a synthetic shop: users and
    items drawn around 512 shared tastes (cluster centres), as trained embeddings group (on
    isotropic random vectors inner-product HNSW cannot reach recall 0.98 at any efSearch)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((512, dim), dtype=np.float32)

    def draw(n):
        noise = rng.standard_normal((n, dim), dtype=np.float32)
        return (centres[rng.integers(0, len(centres), n)] + 0.5 * noise) / np.sqrt(dim)

    item_emb, user_emb = draw(items), draw(users)
    cold = rng.random(users) < 0.01
    user_emb[cold] = 0
    counts = rng.poisson(seen, users)
    popularity = 1 / (np.arange(items) + 10.0) ** 0.8
    cols = rng.choice(items, int(counts.sum()), p=popularity / popularity.sum())
    rows = np.repeat(np.arange(users), counts)
    matrix = sp.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)),
                           shape=(users, items))
    matrix.data[:] = 1
    return user_emb, item_emb, matrix, cold


def noop(shared, part):
    return part


# -- the peers, for the choice of engine ---------------------------------------------------------

class RayEngine:
    """``shared`` put once in Ray's object store; one task per part, a bounded window."""

    def __init__(self, workers):
        self.workers = workers

    def map(self, fn, shared, parts):
        import ray

        held, task = ray.put(shared), ray.remote(num_cpus=1)(fn)
        pending = deque()
        for part in parts:
            pending.append(task.remote(held, part))
            if len(pending) >= 2 * self.workers:
                yield ray.get(pending.popleft())
        while pending:
            yield ray.get(pending.popleft())


class SparkEngine:
    """``shared`` as a Spark broadcast variable; one partition per part."""

    def __init__(self, sc):
        self.sc = sc

    def map(self, fn, shared, parts):
        held = self.sc.broadcast(shared)
        parts = list(parts)
        rdd = self.sc.parallelize(parts, len(parts))
        yield from rdd.map(lambda part: fn(held.value, part)).toLocalIterator()


@contextmanager
def cluster(name, workers):
    """A local cluster of ``workers`` single-threaded workers, as an engine."""
    if name == "dask":
        from distributed import LocalCluster

        from shopgraph.parallel import open_engine

        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=":0") as local, \
                open_engine(local.scheduler_address) as engine:
            yield engine
    elif name == "ray":
        import ray

        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        try:
            engine = RayEngine(workers)
            list(engine.map(noop, None, range(2 * workers)))  # the workers are up
            yield engine
        finally:
            ray.shutdown()
    elif name == "spark":
        from pyspark.sql import SparkSession

        os.environ["OMP_NUM_THREADS"] = "1"  # Spark's Python workers inherit it (Dask and Ray
        os.environ["PYSPARK_PYTHON"] = sys.executable  # set it on their workers themselves)
        spark = (SparkSession.builder.master(f"local[{workers}]")
                 .config("spark.driver.memory", "2g")
                 .config("spark.ui.enabled", "false").getOrCreate())
        try:
            engine = SparkEngine(spark.sparkContext)
            list(engine.map(noop, None, range(workers)))  # the Python workers are up
            yield engine
        finally:
            spark.stop()
    else:
        raise SystemExit(f"unknown engine {name!r}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--seen", type=float, default=20)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--block-size", type=int, default=65536)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--engines", default="local,dask")
    args = parser.parse_args()

    from shopgraph.retrieval.index import EmbeddingIndex
    from shopgraph.retrieval.partitions import ItemSearch, top_items

    started = time.perf_counter()
    user_emb, item_emb, seen, cold = synthetic(args.users, args.items, args.dim, args.seen)
    data_s = time.perf_counter() - started
    started = time.perf_counter()
    index = EmbeddingIndex.build(item_emb, tune_queries=user_emb[:100_000])
    build_s = time.perf_counter() - started
    popularity = np.asarray(seen.sum(axis=0)).ravel().astype(np.float32)
    search = ItemSearch(index, popularity, args.k)

    def run(engine):
        ids, scores = [], []
        t = time.perf_counter()
        for _, found in top_items(search, user_emb, seen, cold, block_size=args.block_size,
                                  engine=engine):
            ids.append(found.ids)
            scores.append(found.scores)
        return time.perf_counter() - t, np.concatenate(ids), np.concatenate(scores)

    def overhead(engine):
        t = time.perf_counter()
        list(engine.map(noop, None, range(200)))
        return round(1e3 * (time.perf_counter() - t) / 200, 2)

    from shopgraph.parallel import LocalEngine

    line = {"users": args.users, "items": args.items, "dim": args.dim, "k": args.k,
            "seen_pairs": int(seen.nnz), "block_size": args.block_size,
            "blocks": -(-args.users // args.block_size), "workers": args.workers,
            "index": index.factory, "params": index.params,
            "recall@20": index.info.get("recall@20"), "data_s": round(data_s, 1),
            "index_build_s": round(build_s, 1)}
    with PeakRss() as rss:
        seconds, ref_ids, ref_scores = run(LocalEngine())
    line["local"] = {"seconds": round(seconds, 1), "peak_rss_mb": round(rss.peak)}
    print(f"local: {line['local']}", file=sys.stderr, flush=True)
    for name in [e for e in args.engines.split(",") if e and e != "local"]:
        with PeakRss() as rss:
            t = time.perf_counter()
            with cluster(name, args.workers) as engine:
                start_s = time.perf_counter() - t
                task_ms = overhead(engine)
                seconds, ids, scores = run(engine)
        line[name] = {"start_s": round(start_s, 1), "task_overhead_ms": task_ms,
                      "seconds": round(seconds, 1),
                      "ratio_to_local": round(seconds / line["local"]["seconds"], 2),
                      "peak_rss_mb": round(rss.peak),
                      "identical": bool(np.array_equal(ids, ref_ids)
                                        and np.array_equal(scores, ref_scores, equal_nan=True))}
        print(f"{name}: {line[name]}", file=sys.stderr, flush=True)
    line["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs"
    line["load_average_1min"] = round(os.getloadavg()[0], 1)  # others' work makes times noisy
    print(json.dumps(line))


if __name__ == "__main__":
    main()
