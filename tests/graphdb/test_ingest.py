"""Ingest against the real local server: round trips, idempotence, resume, bad input."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import neo4j
import numpy as np
import pandas as pd
import pytest
from neo4j.exceptions import ConstraintError
from typer.testing import CliRunner

from shopgraph.errors import GraphStoreError, IngestError, ServerError
from shopgraph.graphdb import cypher, export, schema
from shopgraph.graphdb.export import MISSING_TS, export_interactions, export_item_features
from shopgraph.graphdb.formats.lightgcn import load_lightgcn
from shopgraph.graphdb.frames import NodeFrame
from shopgraph.graphdb.ingest import ValueConflict, ingest
from shopgraph.graphdb.server import EmbeddedServer
from shopgraph.graphdb.store import DuplicateKey, GraphStore, duplicate_key
from tests.conftest import workspace_on
from tests.graphdb.helpers import source

PAIRS = [("u1", "i1"), ("u1", "i2"), ("u2", "i1"), ("u3", "i3"), ("u3", "i1")]


def exported_pairs(store: GraphStore, rel: str = "PURCHASED") -> set[tuple[str, str]]:
    x = export_interactions(store, [rel])
    return set(zip(x.user_ids[x.users].tolist(), x.item_ids[x.items].tolist()))


def test_round_trip_keeps_every_field(store: GraphStore, tmp_path: Path) -> None:
    ts = [1_600_000_000, None, 1_600_000_100, 5, 7]
    value = [9.5, 1.0, None, 2.25, 0.0]
    data = source(tmp_path, PAIRS, ts=ts, value=value)
    data.nodes[1].data["category"] = ["shoes", "bags", None]
    data.nodes[1].data["price"] = [10.0, np.nan, 3.5]
    summary = ingest(store, data, batch_size=2)
    assert summary.relationships == {"PURCHASED": 5}
    assert summary.nodes == {"User": 3, "Item": 3}
    x = export_interactions(store, ["PURCHASED"])
    got = {(x.user_ids[u], x.item_ids[i]): (t, v)
           for u, i, t, v in zip(x.users, x.items, x.ts, x.value)}
    for (u, i), t, v in zip(PAIRS, ts, value):
        gt, gv = got[(u, i)]
        assert gt == (MISSING_TS if t is None else t)
        assert (np.isnan(gv) if v is None else gv == v)
    feats = export_item_features(store, x.item_ids)
    by_id = dict(zip(x.item_ids.tolist(), range(len(x.item_ids))))
    assert feats["categories"].tolist() == ["bags", "shoes"]
    assert feats["category"][by_id["i1"]] == 1 and feats["category"][by_id["i3"]] == -1
    assert feats["price"][by_id["i1"]] == 10.0 and np.isnan(feats["price"][by_id["i2"]])


def test_a_type_with_more_edges_than_one_read_holds_is_read_a_batch_of_users_at_a_time(
        store: GraphStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ingest(store, source(tmp_path, PAIRS, ts=[1, 2, 3, 4, 5], value=[1.0, 2.0, None, 4.0, 5.0]))

    def rows(x: export.Interactions) -> list[tuple[str, str, int, float]]:
        return sorted(zip(x.user_ids[x.users].tolist(), x.item_ids[x.items].tolist(),
                          x.ts.tolist(), np.nan_to_num(x.value, nan=-1.0).tolist()))

    whole = export_interactions(store, ["PURCHASED"])
    queries: list[str] = []
    stream = store.stream
    monkeypatch.setattr(store, "stream", lambda text, *a, **kw: (
        queries.append(text), stream(text, *a, **kw))[1])
    monkeypatch.setattr(export, "EDGES_PER_QUERY", 2)  # 5 edges of 3 users: 1 user per read
    batched = export_interactions(store, ["PURCHASED"])
    assert sum(q.startswith("UNWIND $ids") for q in queries) == 3
    assert rows(batched) == rows(whole) and batched.user_ids.tolist() == ["u1", "u2", "u3"]
    with pytest.raises(RuntimeError, match="changed during export"):  # u3's edges not read
        export_interactions(store, ["PURCHASED"], user_ids=np.array(["u1", "u2"]))
    some = export_interactions(store, ["PURCHASED"], user_ids=np.array(["u1", "u2"]),
                               drop_unknown=True)
    assert rows(some) == [r for r in rows(whole) if r[0] != "u3"]


def test_ids_read_as_one_list_equal_those_streamed_a_record_per_node(
        store: GraphStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert export.node_ids(store, "User").tolist() == []  # an empty graph: one empty list
    ingest(store, source(tmp_path, [("u10", "i1"), ("u9", "i1"), ("u2", "i2")]))
    listed = export.node_ids(store, "User")
    monkeypatch.setattr(export, "IDS_PER_QUERY", 2)  # 3 users: streamed
    assert export.node_ids(store, "User").tolist() == listed.tolist() == ["u10", "u2", "u9"]


def test_same_file_twice_changes_nothing(store: GraphStore, tmp_path: Path) -> None:
    data = source(tmp_path, PAIRS)
    first = ingest(store, data, batch_size=2)
    before = store.summary()
    again = ingest(store, data, batch_size=2)
    assert again.relationships_written == 0 and again.batches_already_done == first.batches
    assert store.summary() == before
    # Another batching gives another fingerprint: the guarded path must still add nothing.
    other = ingest(store, data, batch_size=3)
    assert other.relationships_written == 0 and other.already_present == len(PAIRS)
    assert store.summary() == before


def test_overlapping_file_adds_only_new_events(store: GraphStore, tmp_path: Path) -> None:
    ingest(store, source(tmp_path, PAIRS[:3], name="a"))
    s = ingest(store, source(tmp_path, PAIRS[1:], name="b"))
    assert s.relationships_written == 2 and s.already_present == 2
    assert exported_pairs(store) == set(PAIRS)


def test_unknown_id_strict_writes_nothing(store: GraphStore, tmp_path: Path) -> None:
    data = source(tmp_path, PAIRS, with_nodes=False)
    data.nodes = [NodeFrame("User", pd.DataFrame({"id": ["u1", "u2", "u3"], "_line": 0}))]
    ingest(store, source(tmp_path, [("u9", "i1"), ("u9", "i2")], name="items"))
    with pytest.raises(IngestError) as err:
        ingest(store, data)
    assert err.value.field == "dst" and err.value.line == 4  # i3 is unknown
    assert "unknown Item id 'i3'" in str(err.value)
    assert store.count_rels("PURCHASED") == 2 and store.count_nodes("User") == 1


def test_unknown_id_skip_mode_writes_the_rest(store: GraphStore, tmp_path: Path) -> None:
    ingest(store, source(tmp_path, [("u9", "i1"), ("u9", "i2")], name="items"))
    data = source(tmp_path, PAIRS, with_nodes=False)
    data.nodes = [NodeFrame("User", pd.DataFrame({"id": ["u1", "u2", "u3"], "_line": 0}))]
    s = ingest(store, data, strict=False)
    assert s.relationships_written == 4
    assert [(p.line, p.field) for p in s.problems] == [(4, "dst")]
    assert ("u3", "i3") not in exported_pairs(store)
    # Once the missing item exists, the same skip-mode ingest writes the row it left out.
    ingest(store, source(tmp_path, [("u9", "i3")], name="more"))
    again = source(tmp_path, PAIRS, with_nodes=False)
    again.nodes = data.nodes
    s = ingest(store, again, strict=False)
    assert s.problems == [] and s.relationships_written == 1 and s.already_present == 4
    assert exported_pairs(store) >= set(PAIRS)


def test_duplicate_event_in_input_is_rejected_before_writing(store: GraphStore,
                                                             tmp_path: Path) -> None:
    data = source(tmp_path, PAIRS + [("u1", "i1")])
    with pytest.raises(IngestError) as err:
        ingest(store, data)
    assert err.value.field == "eid" and err.value.line == 6
    assert store.count_nodes("User") == 0


def test_event_id_reused_for_other_nodes_is_an_error(store: GraphStore, tmp_path: Path) -> None:
    ingest(store, source(tmp_path, PAIRS, name="a"))
    data = source(tmp_path, [("u2", "i2")], name="b")
    data.edges[0].data["eid"] = ["u1:i1"]  # already the id of (u1, i1)
    with pytest.raises(IngestError) as err:
        ingest(store, data)
    assert err.value.field == "eid" and err.value.line == 1
    assert "'u1:i1' already belongs to a PURCHASED relationship" in str(err.value)
    assert store.count_rels("PURCHASED") == len(PAIRS)


def test_empty_source_is_an_error(store: GraphStore, tmp_path: Path) -> None:
    data = source(tmp_path, PAIRS)
    data.nodes, data.edges = [], []
    with pytest.raises(IngestError, match="nothing to ingest"):
        ingest(store, data)


def test_lastfm_round_trip_is_exact(store: GraphStore, shared_data: Path) -> None:
    data = load_lightgcn(shared_data / "lastfm" / "train.txt")
    s = ingest(store, data)
    assert s.relationships == {"INTERACTED": 64_315}
    x = export_interactions(store)
    assert (len(x.user_ids), len(x.item_ids), len(x)) == (1_885, 13_973, 64_315)
    df = data.edges[0].data
    assert set(zip(x.user_ids[x.users], x.item_ids[x.items])) == set(zip(df.src, df.dst))
    indptr, indices = x.csr()
    assert indptr[-1] == 64_315 and np.all(np.diff(indptr) >= 1)
    # ids are numeric strings: the stable map puts id k at position k
    assert x.user_ids[:3].tolist() == ["0", "1", "2"]


def test_server_stopped_mid_ingest_then_resume(tmp_path: Path) -> None:
    server = EmbeddedServer(tmp_path / "db", heap="512m")
    server.start()
    try:
        server.ensure_database("resume")
        pairs = [(f"u{k % 50}", f"i{k}") for k in range(600)]
        data = source(tmp_path, pairs)
        calls = {"n": 0}

        def crash_after_three(done: int, total: int) -> None:
            calls["n"] += 1
            if calls["n"] == 3:
                server.stop()

        store = GraphStore(server.uri, server.user, server.password(), "resume")
        with pytest.raises(GraphStoreError, match="run the same ingest again to resume"):
            ingest(store, data, batch_size=100, on_progress=crash_after_three)
        store.close()
        server.start()
        with GraphStore(server.uri, server.user, server.password(), "resume") as store:
            s = ingest(store, data, batch_size=100)
            assert s.batches_already_done == 3
            assert store.count_rels("PURCHASED") == 600
            assert exported_pairs(store) == set(pairs)
    finally:
        server.stop()


def test_unreachable_server_says_what_to_do() -> None:
    with pytest.raises(GraphStoreError, match="cannot reach the graph server"):
        GraphStore("bolt://127.0.0.1:9", "root", "x", "nope")


@pytest.mark.parametrize("fmt, rel_path", [
    ("hillstrom", "hillstrom/hillstrom.csv"),
    ("cdnow", "cdnow/CDNOW_master.txt"),
    ("dunnhumby", "dunnhumby_complete_journey"),
    ("ratings", "amazon-sports/valid.txt"),
])
def test_real_formats_land_in_the_graph_exactly(store: GraphStore, shared_data: Path,
                                                fmt: str, rel_path: str) -> None:
    from shopgraph.graphdb.formats import load

    data = load(fmt, shared_data / rel_path)
    expected_rels: dict[str, int] = {}
    for ef in data.edges:
        expected_rels[ef.rel] = expected_rels.get(ef.rel, 0) + len(ef.data)
    expected_nodes: dict[str, set[str]] = {}
    for nf in data.nodes:
        expected_nodes.setdefault(nf.label, set()).update(nf.data["id"])
    s = ingest(store, data)
    assert s.relationships == expected_rels
    assert store.summary() == {"nodes": {k: len(v) for k, v in expected_nodes.items()},
                               "relationships": expected_rels}
    assert ingest(store, data).relationships_written == 0


def test_export_to_torch_edge_index(store: GraphStore, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    ingest(store, source(tmp_path, PAIRS))
    x = export_interactions(store, ["PURCHASED"])
    ei = x.edge_index()
    assert ei.dtype == torch.int64 and tuple(ei.shape) == (2, len(PAIRS))
    x.save(tmp_path / "x.npz")
    y = type(x).load(tmp_path / "x.npz")
    assert np.array_equal(y.users, x.users) and y.rel_types == ("PURCHASED",)


def test_tabular_csv_round_trip(store: GraphStore, tmp_path: Path) -> None:
    from shopgraph.graphdb.formats.tabular import load_tabular

    (tmp_path / "items.csv").write_text("sku,cat,price\n007,shoes,19.99\n008,bags,\n")
    (tmp_path / "orders.csv").write_text(
        "order,customer,sku,at,amount\n"
        "o1,00042,007,2024-03-01T10:00:00,19.99\n"
        "o2,00042,008,2024-03-02,5\n"
        "o3,00043,007,1700000000,\n")
    (tmp_path / "map.toml").write_text(
        'create_missing = true\n'
        '[[nodes]]\nlabel = "Item"\nfile = "items.csv"\nid = "sku"\n'
        'properties = { category = "cat", price = "price" }\n'
        '[[edges]]\nrel = "PURCHASED"\nfile = "orders.csv"\nsrc = "customer"\ndst = "sku"\n'
        'eid = "order"\nts = "at"\nvalue = "amount"\n')
    ingest(store, load_tabular(tmp_path / "map.toml"))
    x = export_interactions(store)
    rows = sorted(zip(x.user_ids[x.users], x.item_ids[x.items], x.ts.tolist(),
                      x.value.tolist()))
    assert rows[:2] == [("00042", "007", 1_709_287_200, 19.99), ("00042", "008", 1_709_337_600,
                                                                  5.0)]
    assert rows[2][:3] == ("00043", "007", 1_700_000_000) and np.isnan(rows[2][3])
    feats = export_item_features(store, x.item_ids)
    assert feats["price"][0] == 19.99 and np.isnan(feats["price"][1])
    assert feats["categories"][feats["category"]].tolist() == ["shoes", "bags"]


# -- corrected values (issue 11): the first write wins, and the conflicts are reported -------

def test_changed_values_are_reported_and_the_stored_ones_kept(store: GraphStore,
                                                              tmp_path: Path) -> None:
    ts = [100, None, 300, None, 500]
    value = [1.0, 2.0, None, None, 5.0]
    ingest(store, source(tmp_path, PAIRS, ts=ts, value=value, name="a"))
    # (u1,i1) value corrected; (u1,i2) the same; (u2,i1) ts corrected; (u3,i3) the same, all
    # missing (NaN in the frame, nothing stored); (u3,i1) value dropped. Plus one new event.
    new_ts = [100, None, 301, None, 500, 7]
    new_value = [1.5, 2.0, None, None, None, 6.0]
    s = ingest(store, source(tmp_path, PAIRS + [("u2", "i3")], ts=new_ts, value=new_value,
                             name="b"), batch_size=2)
    assert s.relationships_written == 1 and s.already_present == 5
    assert s.conflicts == 3
    assert s.first_conflicts == [
        ValueConflict("PURCHASED", "u1:i1", 100, 1.0, 100, 1.5),
        ValueConflict("PURCHASED", "u2:i1", 300, None, 301, None),
        ValueConflict("PURCHASED", "u3:i1", 500, 5.0, 500, None)]
    assert s.as_dict()["conflicts"] == 3
    assert s.as_dict()["first_conflicts"][0] == {
        "rel": "PURCHASED", "eid": "u1:i1", "stored_ts": 100, "stored_value": 1.0,
        "given_ts": 100, "given_value": 1.5}
    x = export_interactions(store, ["PURCHASED"])
    got = {(x.user_ids[u], x.item_ids[i]): (int(t), float(v))
           for u, i, t, v in zip(x.users, x.items, x.ts, x.value)}
    assert got[("u1", "i1")] == (100, 1.0) and got[("u3", "i1")] == (500, 5.0)
    assert got[("u2", "i1")][0] == 300
    # The same events with the same values again: nothing to report.
    again = ingest(store, source(tmp_path, PAIRS, ts=ts, value=value, name="c"))
    assert again.already_present == 5 and again.conflicts == 0 and again.first_conflicts == []


def test_cli_reports_changed_values_as_text_and_json(graph_server: EmbeddedServer,
                                                    tmp_path: Path) -> None:
    from shopgraph.cli.main import app

    first, fixed = tmp_path / "ratings.txt", tmp_path / "fixed.txt"
    first.write_text("u[/x]1 i:b:1 4\nu2 i2 3\n")
    fixed.write_text("u[/x]1 i:b:1 5\nu2 i2 3\n")
    runner = CliRunner()
    with workspace_on(graph_server, tmp_path, "conflicts_cli") as ws:
        assert runner.invoke(app, ["ingest", "ratings", str(first), "-w", str(ws.path)]
                             ).exit_code == 0
        text = runner.invoke(app, ["ingest", "ratings", str(fixed), "-w", str(ws.path)])
        assert text.exit_code == 0, text.output
        assert "1 event(s) already present with another ts or value were left unchanged" \
            in text.output
        assert "RATED 'u[/x]1:i%3Ab%3A1': stored ts None, value 4.0; given ts None, value 5.0" \
            in text.output
        as_json = runner.invoke(app, ["ingest", "ratings", str(fixed), "-w", str(ws.path),
                                      "--batch-size", "100", "--json"])
        assert as_json.exit_code == 0, as_json.output
        summary = json.loads(as_json.stdout[as_json.stdout.index("{"):])
        assert summary["conflicts"] == 1 and summary["already_present"] == 2
        assert summary["first_conflicts"] == [
            {"rel": "RATED", "eid": "u[/x]1:i%3Ab%3A1", "stored_ts": None, "stored_value": 4.0,
             "given_ts": None, "given_value": 5.0}]


# -- schema version (issue 11) ----------------------------------------------------------------

def _set_version(store: GraphStore, version: int | None) -> None:
    """Make the graph look written by another shopgraph: version ``version`` (None: none)."""

    def work(tx: neo4j.Transaction) -> None:
        tx.run("MATCH (m:ShopgraphMeta) DELETE m").consume()
        if version is not None:
            tx.run(cypher.META_WRITE, key=schema.META_SCHEMA_KEY, version=version).consume()

    store.write(work)


def test_first_ingest_records_the_schema_version(store: GraphStore, tmp_path: Path) -> None:
    assert store.schema_version() is None
    ingest(store, source(tmp_path, PAIRS))
    assert store.schema_version() == schema.SCHEMA_VERSION == 3
    assert "ShopgraphMeta" not in store.summary()["nodes"]
    assert store.count_nodes("ShopgraphMeta") == 1


@pytest.mark.parametrize("old", [None, 1])
def test_older_graph_without_colons_or_percents_is_taken_over(store: GraphStore, tmp_path: Path,
                                                              old: int | None) -> None:
    ingest(store, source(tmp_path, PAIRS[:3], name="a"))
    _set_version(store, old)
    s = ingest(store, source(tmp_path, PAIRS, name="b"))
    assert s.relationships_written == 2 and s.already_present == 3
    assert store.schema_version() == schema.SCHEMA_VERSION
    assert store.count_nodes("ShopgraphMeta") == 1


@pytest.mark.parametrize("old, bad_id", [(None, "u:1"), (1, "50%")])
def test_older_graph_with_ambiguous_ids_is_refused(store: GraphStore, tmp_path: Path,
                                                   old: int | None, bad_id: str) -> None:
    ingest(store, source(tmp_path, [(bad_id, "i1"), ("u2", "i1")], name="a"))
    _set_version(store, old)
    before = store.summary()
    with pytest.raises(GraphStoreError) as err:
        ingest(store, source(tmp_path, PAIRS, name="b"))
    message = str(err.value)
    assert "written with ambiguous event ids (ids containing ':' or '%'" in message
    assert f"User id {bad_id!r}" in message and "re-ingest into a fresh database" in message
    assert "\n" not in message
    assert store.summary() == before and store.schema_version() == old


def test_newer_graph_is_refused(store: GraphStore, tmp_path: Path) -> None:
    _set_version(store, schema.SCHEMA_VERSION + 1)
    with pytest.raises(GraphStoreError, match="schema version 4, newer than this shopgraph"):
        ingest(store, source(tmp_path, PAIRS))
    assert store.summary() == {"nodes": {}, "relationships": {}}


def test_sources_may_not_write_internal_labels(store: GraphStore, tmp_path: Path) -> None:
    data = source(tmp_path, PAIRS)
    data.nodes.append(NodeFrame("ShopgraphMeta", pd.DataFrame(
        {"id": ["schema"], "version": [99], "_line": [1]})))
    with pytest.raises(IngestError, match="ShopgraphMeta nodes are shopgraph's own"):
        ingest(store, data)
    assert store.schema_version() is None


# -- writers colliding (issue 11) -------------------------------------------------------------

def _duplicate_item(tx: neo4j.Transaction) -> None:
    tx.run("CREATE (n:Item {id: $id})", id="i:[1]").consume()


def test_a_real_duplicate_key_is_parsed(store: GraphStore) -> None:
    store.ensure_schema()
    store.write(_duplicate_item)
    with pytest.raises(ConstraintError) as err:
        store.write(_duplicate_item)
    assert duplicate_key(err.value) == DuplicateKey("Item", "id", "i:[1]")


def test_a_write_that_keeps_colliding_gives_up_with_one_line(store: GraphStore) -> None:
    store.ensure_schema()
    store.write(_duplicate_item)
    seen: list[Exception] = []
    with pytest.raises(GraphStoreError) as err:
        store.write_retrying(_duplicate_item, "writing items", patience=0.5,
                             retry_constraint=lambda exc: True, on_retry=seen.append)
    assert len(seen) >= 2 and all(isinstance(e, ConstraintError) for e in seen)
    message = str(err.value)
    assert message.startswith("another writer is busy") and "\n" not in message
    assert "run the same command again: it resumes" in message
    # a violation that is no race is not retried
    with pytest.raises(ConstraintError):
        store.write_retrying(_duplicate_item, retry_constraint=lambda exc: False)


def test_streamed_file_is_cut_into_the_same_batches_as_in_memory(tmp_path: Path) -> None:
    """A streamed frame's batch keys (the ledger's) are those of the same rows in memory, so
    an ingest interrupted before streaming resumes with it; small chunks force the regrouping."""
    from shopgraph.graphdb.formats import common
    from shopgraph.graphdb.frames import EdgeFrame
    from shopgraph.graphdb.ingest import _plan

    path = tmp_path / "train.txt"
    path.write_text("".join(f"{u} " + " ".join(str(i) for i in range(u % 7 + 1)) + "\n"
                            for u in range(200)))
    chunk_bytes = common.CHUNK_BYTES
    common.CHUNK_BYTES = 64  # a chunk of a line or two
    try:
        data = load_lightgcn(path)
        assert data.edges[0].streamed and len(list(data.edges[0].chunks())) > 20
        streamed = [(b.key, b.rows.iloc[:, 0].tolist()) for b in _plan(data, 37)]
        data.edges = [EdgeFrame("INTERACTED", data.edges[0].data, str(path))]
        assert not data.edges[0].streamed
        in_memory = [(b.key, b.rows.iloc[:, 0].tolist()) for b in _plan(data, 37)]
    finally:
        common.CHUNK_BYTES = chunk_bytes
    assert streamed == in_memory and sum(len(e) for _, e in streamed) > 2 * 37


def test_file_changed_between_reading_and_writing_is_an_error(store: GraphStore,
                                                              tmp_path: Path) -> None:
    path = tmp_path / "train.txt"
    path.write_text("1 2 3\n4 5\n")
    data = load_lightgcn(path)
    with open(path, "a") as fh:
        fh.write("6 7\n")
    with pytest.raises(IngestError, match="the file changed after it was read"):
        ingest(store, data)
    assert store.count_rels("INTERACTED") == 0


def test_counts_over_arcadedb_http_equal_cypher_counts(store: GraphStore, tmp_path: Path,
                                                       graph_server: EmbeddedServer) -> None:
    """The embedded server's SQL type count (HTTP) is Cypher's ``count(r)``, for a written
    type, an empty one and one written since; a server that does not answer falls back to
    Cypher."""
    ingest(store, source(tmp_path, PAIRS))
    args = (graph_server.uri, graph_server.user, graph_server.password(), store.database)
    type_count = partial(graph_server.type_count, store.database)
    with GraphStore(*args, type_count=type_count) as fast:
        counted: list[str] = []
        fast.query = lambda text, *a, **k: counted.append(text)  # type: ignore[method-assign]
        assert fast.count_rels("PURCHASED") == len(PAIRS)
        assert fast.count_rels("RATED") == 0
        assert counted == []  # answered over HTTP, not by Cypher
    ingest(store, source(tmp_path, [("u9", "i9")], name="more"))
    with GraphStore(*args, type_count=type_count) as fast:
        assert fast.count_rels("PURCHASED") == len(PAIRS) + 1 == store.count_rels("PURCHASED")
        assert fast.summary() == store.summary()
        with pytest.raises(ValueError, match="relationship type"):
            fast.count_rels("PURCHASED` ; DROP")
    with pytest.raises(ValueError, match="not a type name"):
        graph_server.type_count(store.database, "PURCHASED` ; DROP")
    stopped = EmbeddedServer(tmp_path / "never-started")  # nothing runs there
    with pytest.raises(ServerError, match="no ArcadeDB server is running"):
        stopped.type_count(store.database, "PURCHASED")
    with GraphStore(*args, type_count=partial(stopped.type_count, store.database)) as broken:
        assert broken.count_rels("PURCHASED") == len(PAIRS) + 1
