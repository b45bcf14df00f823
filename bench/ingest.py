"""Benchmark: ingest Gowalla's training set into a fresh embedded server and export it back.

Prints one JSON line. Peers, measured in the same run and on the same server: an idempotent
ingest written the obvious way (``MERGE`` every node and every relationship on its key, same
batches; on the first ``--peer-edges`` edges, default all), and an export that returns one edge
per row instead of one ``collect`` list per user. Both ingests run after the same JIT warm-up
(the first 50,000 edges into a scratch database, each way), and the order is ours first.

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
    """Edges/s of an ingest that MERGEs every node and relationship (same batches)."""
    store.ensure_schema()
    frame = data.edges[0]
    start = time.perf_counter()
    rows = edge_rows(frame, 0, n)
    for label, col in (("User", "s"), ("Item", "d")):
        ids = sorted({r[col] for r in rows})
        query = f"UNWIND $ids AS id MERGE (:{label} {{id: id}})"
        for i in range(0, len(ids), batch_size):
            chunk = ids[i:i + batch_size]
            store.write(lambda tx, q=query, c=chunk: tx.run(q, ids=c).consume())
    query = ("UNWIND $rows AS row MATCH (s:User {id: row.s}) MATCH (d:Item {id: row.d}) "
             "MERGE (s)-[r:INTERACTED {eid: row.e}]->(d) SET r.ts = row.t, r.value = row.v")
    for i in range(0, n, batch_size):
        store.write(lambda tx, i=i: tx.run(query, rows=rows[i:i + batch_size]).consume())
    return n / (time.perf_counter() - start)


def _warm_up(server: EmbeddedServer, data, batch_size: int) -> None:
    """Run both write paths once on a scratch database so that neither pays for the JIT."""
    from shopgraph.graphdb.formats.common import nodes_from_ids
    from shopgraph.graphdb.frames import EdgeFrame, SourceData

    part = data.edges[0].data.iloc[:50_000]
    warm = SourceData("warm-up", data.files, options={"warm-up": True},
                      nodes=[nodes_from_ids("User", part["src"]),
                             nodes_from_ids("Item", part["dst"])],
                      edges=[EdgeFrame("INTERACTED", part)])
    for name in ("warm1", "warm2"):
        server.ensure_database(name)
    with GraphStore(server.uri, server.user, server.password(), "warm1") as store:
        ingest(store, warm, batch_size=batch_size)
    with GraphStore(server.uri, server.user, server.password(), "warm2") as store:
        _peer_merge(store, warm, len(part), batch_size)
    for name in ("warm1", "warm2"):
        server.drop_database(name)


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
    ap.add_argument("--peer-edges", type=int, default=None, help="default: all")
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
            _warm_up(server, data, args.batch_size)
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
                peer_n = min(args.peer_edges or n_edges, n_edges)
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
