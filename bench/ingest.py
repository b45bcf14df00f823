"""Benchmark: ingest Gowalla's training set into a fresh embedded server and export it back.

Prints one JSON line. Peers, measured in the same run on the first ``--peer-edges`` edges: an
idempotent ingest written the obvious way (``MERGE`` per relationship on its event id) and an
export that returns one edge per row instead of one ``collect`` list per user.

    python bench/ingest.py [--limit N] [--data ../shared/data] [--batch-size 10000]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import tempfile
import time
from pathlib import Path

from shopgraph.graphdb.export import export_interactions
from shopgraph.graphdb.formats.lightgcn import load_lightgcn
from shopgraph.graphdb.ingest import edge_rows, ingest
from shopgraph.graphdb.server import EmbeddedServer
from shopgraph.graphdb.store import GraphStore

ROOT = Path(__file__).resolve().parents[1]


def _peer_merge(store: GraphStore, data, n: int, batch_size: int) -> float:
    """Edges/s of MERGE-per-relationship on a fresh database (nodes already there)."""
    frame = data.edges[0]
    rows = edge_rows(frame, 0, n)
    query = ("UNWIND $rows AS row MATCH (s:User {id: row.s}) MATCH (d:Item {id: row.d}) "
             "MERGE (s)-[r:INTERACTED {eid: row.e}]->(d)")
    start = time.perf_counter()
    for i in range(0, n, batch_size):
        store.write(lambda tx, i=i: tx.run(query, rows=rows[i:i + batch_size]).consume())
    return n / (time.perf_counter() - start)


def _peer_rows_export(store: GraphStore) -> float:
    """Edges/s when every edge comes back as its own record."""
    start = time.perf_counter()
    n = sum(1 for _ in store.stream(
        "MATCH (s:User)-[r:INTERACTED]->(d:Item) RETURN s.id AS s, d.id AS d, r.ts AS t"))
    return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--limit", type=int, default=None, help="ingest only the first N edges")
    ap.add_argument("--batch-size", type=int, default=10_000)
    ap.add_argument("--peer-edges", type=int, default=50_000)
    ap.add_argument("--heap", default="2g")
    args = ap.parse_args()

    t0 = time.perf_counter()
    data = load_lightgcn(args.data / "gowalla" / "train.txt")
    if args.limit:
        from shopgraph.graphdb.formats.common import nodes_from_ids

        frame = data.edges[0]
        frame.data = frame.data.iloc[: args.limit]
        data.nodes = [nodes_from_ids("User", frame.data["src"]),
                      nodes_from_ids("Item", frame.data["dst"])]
        data.options["limit"] = args.limit
    parse_s = time.perf_counter() - t0
    edges = data.edges[0].data
    n_edges = len(edges)

    with tempfile.TemporaryDirectory(prefix="shopgraph-bench-") as tmp:
        server = EmbeddedServer(Path(tmp) / "graphdb", heap=args.heap)
        server.start()
        try:
            server.ensure_database("bench")
            with GraphStore(server.uri, server.user, server.password(), "bench") as store:
                summary = ingest(store, data, batch_size=args.batch_size)
                t1 = time.perf_counter()
                rerun = ingest(store, data, batch_size=args.batch_size)
                rerun_s = time.perf_counter() - t1
                t2 = time.perf_counter()
                arrays = export_interactions(store, ["INTERACTED"])
                export_s = time.perf_counter() - t2
                exact = (len(arrays) == n_edges and
                         set(zip(arrays.user_ids[arrays.users], arrays.item_ids[arrays.items]))
                         == set(zip(edges["src"], edges["dst"])))
                peer_rows = _peer_rows_export(store)
            server.ensure_database("peer")
            with GraphStore(server.uri, server.user, server.password(), "peer") as peer:
                peer_n = min(args.peer_edges, n_edges)
                head = type(data)(data.name + "-peer", data.files, nodes=data.nodes, edges=[],
                                  options={"peer": True})
                ingest(peer, head)
                peer_merge = _peer_merge(peer, data, peer_n, args.batch_size)
        finally:
            server.stop()

    rate = summary.relationships_written / summary.seconds
    export_rate = len(arrays) / export_s
    print(json.dumps({
        "bench": "ingest", "dataset": "gowalla/train.txt", "interactions": n_edges,
        "users": len(arrays.user_ids), "items": len(arrays.item_ids),
        "parse_s": round(parse_s, 2), "ingest_s": round(summary.seconds, 2),
        "interactions_per_s": round(rate), "rerun_s": round(rerun_s, 2),
        "rerun_written": rerun.relationships_written,
        "export_s": round(export_s, 2), "export_edges_per_s": round(export_rate),
        "roundtrip_exact": bool(exact),
        "peer_merge_per_s": round(peer_merge), "ratio_vs_merge": round(rate / peer_merge, 2),
        "peer_row_export_per_s": round(peer_rows),
        "ratio_vs_row_export": round(export_rate / peer_rows, 2),
        "batch_size": args.batch_size, "heap": args.heap,
        "peak_rss_mb_client": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "machine": f"{platform.machine()} {platform.processor() or ''} cpus="
                   f"{len(__import__('os').sched_getaffinity(0))}".strip(),
    }))


if __name__ == "__main__":
    main()
