"""Benchmark: the simulator's event stream, the step whose cost grows with users x items (issue 14).

Draws the stream (:func:`shopgraph.simulator.stream.draw_stream`) of ``--users`` users over a
catalogue of ``--items`` items in this process and, with ``--engine``, on a Dask cluster (a
scheduler's address, or ``local-cluster`` for a two-worker cluster started here), and checks
that both give the same events. Prints one JSON line: per run the wall seconds, this process's
CPU seconds and the nanoseconds per user x item cell; ``ratio`` is in-process wall seconds over
the engine's.

    python bench/simulate.py [--users 4000] [--items 100000] [--engine local-cluster]

Without ``--engine`` it also runs on an older tree (``PYTHONPATH=<tree>``), for a before/after.

Never run by the tests.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from contextlib import ExitStack
from typing import Any

import numpy as np

from shopgraph.parallel import Engine, LocalEngine, open_engine
from shopgraph.simulator.params import SimParams
from shopgraph.simulator.stream import Stream, draw_lives, draw_stream, events_per_session
from shopgraph.simulator.world import draw_world, seasonality


def timed(run: Any) -> tuple[Stream, dict[str, float]]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = run()
    return out, {"seconds": round(time.perf_counter() - wall, 2),
                 "cpu_s": round(time.process_time() - cpu, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=4000)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--interactions-per-user", type=float, default=25.0)
    ap.add_argument("--engine", default=None,
                    help="a Dask scheduler address, or local-cluster (two workers started here)")
    args = ap.parse_args()
    p, days, seed = SimParams(), 365, 0
    world = draw_world(p, args.users, args.items, 24, days, seed)
    season = seasonality(np.arange(days + 90), p)
    lives = draw_lives(world, season, days, seed)
    scale = args.interactions_per_user * args.users / (
        events_per_session(world, lives, seed) * lives.expected.sum())
    cells = args.users * args.items

    def draw(engine: Engine) -> Stream:
        if isinstance(engine, LocalEngine):  # the call of older trees too (PYTHONPATH=<tree>)
            return draw_stream(world, lives, season, scale, days, 0, seed)
        return draw_stream(world, lives, season, scale, days, 0, seed, engine)

    runs: dict[str, Any] = {}
    here, runs["local"] = timed(lambda: draw(LocalEngine()))
    result: dict[str, Any] = {"users": args.users, "items": args.items,
                              "events": int(len(here.user)), "runs": runs}
    if args.engine:
        with ExitStack() as stack:
            address = args.engine
            if address == "local-cluster":
                from distributed import LocalCluster

                cluster = stack.enter_context(LocalCluster(
                    n_workers=2, threads_per_worker=1, dashboard_address=":0"))
                address = cluster.scheduler_address
            engine = stack.enter_context(open_engine(address))
            draw(engine)  # the workers import the simulator once
            there, runs["engine"] = timed(lambda: draw(engine))
        result["identical"] = all(np.array_equal(getattr(here, f), getattr(there, f))
                                  for f in ("user", "item", "ts", "kind", "logsumexp",
                                            "p_no_purchase"))
        result["ratio"] = round(runs["local"]["seconds"] / runs["engine"]["seconds"], 2)
    for run in runs.values():
        run["ns_per_cell"] = round(run["seconds"] / cells * 1e9, 2)
    result.update(date=dt.date.today().isoformat(), load_average=[round(x, 1) for x in
                                                                  os.getloadavg()],
                  machine=f"{platform.machine()}, {os.cpu_count()} cores",
                  command=" ".join(["python", *sys.argv]))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
