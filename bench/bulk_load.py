"""Benchmark: the bulk first load (``shopgraph ingest --bulk``) against the row-by-row ingest,
on a simulated shop, in one run on one fresh embedded server (issue 14).

Both paths load the same parsed source (``shopgraph ingest tabular <shop>/mapping.toml``) into an
empty database of their own: the row-by-row ingest (:func:`shopgraph.graphdb.ingest.ingest`) and
the bulk load (:func:`shopgraph.graphdb.bulk.bulk_load`: JSON lines, ArcadeDB's importer,
constraints, ledger). The row-by-row path can be run on a share of the users only
(``--normal-fraction``: those users, all their events, every other node and structural edge);
its rate is then measured on that share, and the line says so. After the bulk load the same
ingest runs again on top of it and must write nothing (the ledger), and the graph's counts are
checked against the source's.

Prints one JSON line: per path ``rows`` (nodes + relationships), ``relationships``,
``seconds``, ``rows_per_s``, ``interactions_per_s`` (relationships per second, as ``shopgraph
ingest`` reports) and ``cpu_s`` (this process, the server and, for the bulk load, the
importer's JVM); ``ratio`` (bulk over row-by-row interactions per second), ``reingest``
(relationships written and seconds of the ingest run again after the bulk load) and the
machine's load average (other work on the machine slows both paths).

    python bench/bulk_load.py --shop DIR [--normal-fraction 1.0] [--server-heap 2g]
                              [--importer-heap auto] [--folder DIR]

Make the shop first, e.g. ``shopgraph simulate --users 200000 --items 20000 --interactions
5000000 --out DIR``. Never run by the tests.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shopgraph.graphdb.bulk import bulk_load
from shopgraph.graphdb.formats import load
from shopgraph.graphdb.frames import SourceData
from shopgraph.graphdb.ingest import IngestSummary, ingest
from shopgraph.graphdb.server import EmbeddedServer
from shopgraph.graphdb.store import GraphStore


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of this process and its finished children, or of ``pid``."""
    if pid is None:
        me, kids = resource.getrusage(resource.RUSAGE_SELF), \
            resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def share(data: SourceData, fraction: float) -> SourceData:
    """The first ``fraction`` of the users with their events, every other node and edge."""
    if fraction >= 1:
        return data
    kept: set[str] = set()
    for nf in data.nodes:
        if nf.label == "User":
            nf.data = nf.data.iloc[:int(len(nf.data) * fraction)]
            kept.update(nf.data["id"].astype(str))
    for ef in data.edges:
        if ef.src_label == "User":
            ef.data = ef.data.loc[ef.data["src"].astype(str).isin(kept)]
    return data


def measure(run: Callable[[], IngestSummary], server_pid: int) -> tuple[IngestSummary,
                                                                        dict[str, Any]]:
    """Run one path; its figures."""
    cpu0, server0, start = cpu_seconds(), cpu_seconds(server_pid), time.perf_counter()
    summary = run()
    seconds = time.perf_counter() - start
    cpu = cpu_seconds() - cpu0 + cpu_seconds(server_pid) - server0
    rels = summary.relationships_written
    rows = rels + sum(summary.nodes.values())
    return summary, {"rows": rows, "relationships": rels, "seconds": round(seconds, 1),
                     "rows_per_s": round(rows / seconds), "interactions_per_s":
                     round(rels / seconds), "cpu_s": round(cpu, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shop", type=Path, required=True, help="a simulated shop's folder")
    ap.add_argument("--normal-fraction", type=float, default=1.0,
                    help="share of the users the row-by-row ingest loads (default: all)")
    ap.add_argument("--server-heap", default="2g", help="the embedded server's heap")
    ap.add_argument("--importer-heap", default=None, help="the importer's heap (default: "
                                                          "sized to the input)")
    ap.add_argument("--folder", type=Path, default=None,
                    help="the server's folder (default: a temporary one, removed)")
    args = ap.parse_args()
    mapping = args.shop / "mapping.toml"
    folder = args.folder or Path(tempfile.mkdtemp(prefix="bulk-bench-"))
    server = EmbeddedServer(folder / "graphdb", heap=args.server_heap)
    server.start()
    try:
        pid = server.status().pid
        assert pid is not None
        stores = {}
        for name in ("normal", "bulk"):
            server.ensure_database(name)
            stores[name] = GraphStore(server.uri, server.user, server.password(), name)
        data = share(load("tabular", mapping), args.normal_fraction)
        _, normal = measure(lambda: ingest(stores["normal"], data), pid)
        started = time.perf_counter()
        data = load("tabular", mapping)  # (loading is not timed in either path)
        load_s = time.perf_counter() - started
        bulk_summary, bulk = measure(lambda: bulk_load(stores["bulk"], data, server=server,
                                                       heap=args.importer_heap), pid)
        bulk["importer_peak_rss_mb"] = round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
        counts = stores["bulk"].summary()
        expected = {"nodes": {k: v for k, v in bulk_summary.nodes.items() if v},
                    "relationships": bulk_summary.relationships}
        start = time.perf_counter()
        data = load("tabular", mapping)
        again = ingest(stores["bulk"], data)
        reingest = {"written": again.relationships_written,
                    "seconds": round(time.perf_counter() - start, 1)}
        for store in stores.values():
            store.close()
    finally:
        server.stop()
        if args.folder is None:
            shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps({
        "shop": str(args.shop), "users": bulk_summary.nodes.get("User", 0),
        "relationships": bulk_summary.relationships_written, "load_s": round(load_s, 1),
        "normal": normal | {"fraction": args.normal_fraction}, "bulk": bulk,
        "ratio": round(bulk["interactions_per_s"] / normal["interactions_per_s"], 2),
        "counts_match": counts == expected, "reingest": reingest,
        "load_average": [round(x, 1) for x in os.getloadavg()],
        "date": dt.date.today().isoformat(), "machine": f"{platform.machine()}, "
        f"{os.cpu_count()} cores", "command": " ".join(["python", *sys.argv])}), flush=True)


if __name__ == "__main__":
    main()
