"""Benchmark: how each pipeline step's cost grows with the shop, from 20k to 1M users (issue 14).

For each size a shop is simulated (``shopgraph simulate``; items and interactions grow with the
users: 5k items / 0.5M interactions at 20k users, then users/10 items and 25 interactions per
user), and every step runs as the command a user would type, in a fresh workspace with its own
embedded server, one process per step:

    simulate, ingest, export, train, index, recommend (all users, top 20), heads, target,
    offers, report

(``ingest`` .. ``report`` except ``export`` and ``recommend`` are ``shopgraph run run.toml
--step NAME``; ``export`` is ``shopgraph export``; ``recommend`` is ``shopgraph recommend --all
-k 20 --output``). A step's ``peak_rss_mb`` is the client process's own peak (``os.wait4``'s
``ru_maxrss``); the embedded server's JVM is sampled every 0.5 s and reported apart
(``server_peak_rss_mb``), and the size's ``peak_rss_mb`` is the client's largest step plus the
server's peak (both run at once).

One JSON line per size (``users``, ``items``, ``interactions``, ``steps``: name ->
``seconds``, ``peak_rss_mb``; ``total_s``, ``peak_rss_mb``), then a summary line with
``growth_exponent`` (step -> the least-squares slope of log seconds on log interactions across
the sizes) and ``bulk_speedup`` (size -> the row-by-row ``ingest`` step's seconds over the bulk
first load's; null without ``--bulk``). With ``--bulk`` each size also loads the shop with
``shopgraph ingest tabular <shop>/mapping.toml --bulk`` into a fresh workspace of its own, after
the steps (its line's ``bulk``: ``seconds``, ``peak_rss_mb``, the server's and the ratio).

    python bench/scale.py [--sizes 20000,200000,1000000] [--folder DIR] [--heap 4g]
                          [--steps ingest,train,...] [--bulk] [--first-load rows|bulk]
                          [--keep] [--resume]

``--folder`` keeps the simulated shops (reused when present) and workspaces; by default both go
to a temporary folder removed at the end; ``--resume`` runs ``--steps`` in the workspaces an
earlier ``--keep`` run left there (its line has ``"resumed": true`` and only those steps). Never
run by the tests.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

STEPS = ("simulate", "ingest", "export", "train", "index", "recommend", "heads", "target",
         "offers", "report")
BIN = Path(sys.executable).with_name("shopgraph")


def shape(users: int) -> tuple[int, int]:
    """``(items, interactions)`` of the shop simulated for ``users`` users."""
    if users <= 20_000:
        return 5_000, 25 * users
    return users // 10, 25 * users


class ServerWatch:
    """Samples the resident memory of a workspace's embedded server (its pid file) until
    stopped; the JVM is started by the first step and outlives it."""

    def __init__(self, workspace: Path) -> None:
        self.state = workspace / "graphdb" / "server.json"
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ServerWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                pid = json.loads(self.state.read_text())["pid"]
                rss = psutil.Process(pid).memory_info().rss / 2**20
            except (OSError, ValueError, KeyError, psutil.Error):
                continue
            self.peak_mb = max(self.peak_mb, rss)


def timed(cmd: list[str], log: Path) -> dict[str, float]:
    """Run ``cmd`` (its output to ``log``); its wall seconds and its own peak RSS. A failing
    command stops the benchmark with its log's tail."""
    t0 = time.perf_counter()
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{' '.join(cmd)} failed ({code}):\n{tail}")
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def step_command(step: str, shop: Path, ws: Path, out: Path, first_load: str = "rows"
                 ) -> list[str]:
    """The command a user would type for ``step``."""
    common = ["--workspace", str(ws)]
    if step == "export":
        return [str(BIN), "export", *common, "--out", str(out / "interactions.npz")]
    if step == "recommend":
        return [str(BIN), "recommend", "--all", "-k", "20", "--output",
                str(out / "recommendations.parquet"), *common]
    return [str(BIN), "run", str(shop / f"run-{first_load}.toml"), "--step", step, *common]


def load_config(shop: Path, first_load: str) -> None:
    """``run-<first_load>.toml``: the shop's ``run.toml`` with that ``first_load``, so the
    ``ingest`` step is the row-by-row ingest at every size unless ``--first-load bulk``."""
    text = (shop / "run.toml").read_text()
    (shop / f"run-{first_load}.toml").write_text(
        text.replace("[run]\n", f'[run]\nfirst_load = "{first_load}"\n', 1))


def run_size(users: int, folder: Path, steps: tuple[str, ...], heap: str,
             bulk: bool = False, first_load: str = "rows", resume: bool = False
             ) -> dict[str, Any]:
    """Simulate (or reuse) the shop of ``users`` users and time every step on it (``resume``:
    in the workspace an earlier run kept, for the steps it did not finish)."""
    items, interactions = shape(users)
    shop, ws, out = folder / f"shop{users}", folder / f"ws{users}", folder / f"out{users}"
    log = folder / f"scale{users}.log"
    result: dict[str, Any] = {"users": users, "items": items, "steps": {}}
    if not (shop / "run.toml").is_file():
        result["steps"]["simulate"] = timed(
            [str(BIN), "simulate", "--out", str(shop), "--users", str(users), "--items",
             str(items), "--interactions", str(interactions)], log)
    load_config(shop, first_load)
    result["first_load"] = first_load
    if resume:
        result["resumed"] = True
        out.mkdir(parents=True, exist_ok=True)
    else:
        for path in (ws, out):
            shutil.rmtree(path, ignore_errors=True)
        out.mkdir(parents=True)
        ws.mkdir(parents=True)
    (ws / "shopgraph.toml").write_text(f'[db]\nheap = "{heap}"\n')
    try:
        with ServerWatch(ws) as watch:
            for step in steps:
                if step != "simulate":
                    result["steps"][step] = timed(
                        step_command(step, shop, ws, out, first_load), log)
    finally:
        subprocess.run([str(BIN), "db", "stop", "--workspace", str(ws)], check=False,
                       capture_output=True)
    result["interactions"] = _interactions(out / "interactions.npz")
    result["total_s"] = round(sum(s["seconds"] for s in result["steps"].values()), 1)
    client = max((s["peak_rss_mb"] for s in result["steps"].values()), default=0.0)
    result["server_peak_rss_mb"] = round(watch.peak_mb, 1)
    result["peak_rss_mb"] = round(client + watch.peak_mb, 1)
    if bulk:
        result["bulk"] = bulk_load(shop, folder / f"ws{users}-bulk", log, heap)
        if "ingest" in result["steps"]:
            result["bulk"]["speedup"] = round(
                result["steps"]["ingest"]["seconds"] / result["bulk"]["seconds"], 2)
    return result


def bulk_load(shop: Path, ws: Path, log: Path, heap: str) -> dict[str, Any]:
    """The bulk first load of ``shop`` into the fresh workspace ``ws`` (removed after)."""
    shutil.rmtree(ws, ignore_errors=True)
    ws.mkdir(parents=True)
    (ws / "shopgraph.toml").write_text(f'[db]\nheap = "{heap}"\n')
    try:
        with ServerWatch(ws) as watch:
            done: dict[str, Any] = timed([str(BIN), "ingest", "tabular", str(shop / "mapping.toml"),
                                          "--bulk", "--workspace", str(ws)], log)
    finally:
        subprocess.run([str(BIN), "db", "stop", "--workspace", str(ws)], check=False,
                       capture_output=True)
        shutil.rmtree(ws, ignore_errors=True)
    done["server_peak_rss_mb"] = round(watch.peak_mb, 1)
    return done


def _interactions(path: Path) -> int | None:
    """The number of exported user-item pairs (None without the export step)."""
    if not path.is_file():
        return None
    import numpy as np

    with np.load(path, allow_pickle=False) as arrays:
        return int(len(arrays["users"]))


def growth(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """Per step, the least-squares slope of log seconds on log interactions (None where fewer
    than two sizes ran the step)."""
    slopes: dict[str, float | None] = {}
    for step in STEPS:
        pts = [(math.log(r["interactions"] or 25 * r["users"]),
                math.log(r["steps"][step]["seconds"]))
               for r in rows if step in r["steps"] and r["steps"][step]["seconds"] > 0]
        if len(pts) < 2:
            slopes[step] = None
            continue
        mx = sum(x for x, _ in pts) / len(pts)
        my = sum(y for _, y in pts) / len(pts)
        sxx = sum((x - mx) ** 2 for x, _ in pts)
        slopes[step] = round(sum((x - mx) * (y - my) for x, y in pts) / sxx, 3) if sxx else None
    return slopes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="20000,200000,1000000")
    ap.add_argument("--folder", type=Path, help="keep shops and workspaces here (reused)")
    ap.add_argument("--heap", default="4g", help="the embedded server's Java heap")
    ap.add_argument("--steps", default=",".join(STEPS))
    ap.add_argument("--bulk", action="store_true",
                    help="also time the bulk first load of each shop (a workspace of its own)")
    ap.add_argument("--first-load", choices=("rows", "bulk"), default="rows",
                    help="the ingest step's first load ([run] first_load)")
    ap.add_argument("--keep", action="store_true", help="keep the workspaces")
    ap.add_argument("--resume", action="store_true",
                    help="run --steps in the workspaces a --keep run left (in --folder)")
    args = ap.parse_args()
    steps = tuple(s for s in args.steps.split(",") if s)
    unknown = set(steps) - set(STEPS)
    if unknown:
        ap.error(f"unknown steps {sorted(unknown)}; choose from {', '.join(STEPS)}")
    folder = args.folder or Path(tempfile.mkdtemp(prefix="shopgraph-scale-"))
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for users in (int(s) for s in args.sizes.split(",")):
            row = run_size(users, folder, steps, args.heap, args.bulk, args.first_load,
                           args.resume)
            rows.append(row)
            print(json.dumps(row), flush=True)
            if not args.keep:
                shutil.rmtree(folder / f"ws{users}", ignore_errors=True)
    finally:
        if args.folder is None:
            shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps({"sizes": [r["users"] for r in rows], "growth_exponent": growth(rows),
                      "bulk_speedup": ({str(r["users"]): r["bulk"].get("speedup") for r in rows}
                                       if args.bulk else None), "date": dt.date.today().isoformat(),
                      "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                      "command": " ".join(["python", *sys.argv])}), flush=True)


if __name__ == "__main__":
    main()
