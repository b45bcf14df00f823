"""The bulk first load against the real local server: the graph, ledger and constraints the
normal ingest writes; refusals before anything is written; the neo4j-admin files."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shopgraph.errors import GraphStoreError, IngestError
from shopgraph.graphdb import schema
from shopgraph.graphdb.bulk import BulkImportPending, bulk_load, write_neo4j_import
from shopgraph.graphdb.export import export_interactions
from shopgraph.graphdb.formats.lightgcn import load_lightgcn
from shopgraph.graphdb.frames import EdgeFrame, NodeFrame, SourceData
from shopgraph.graphdb.ingest import ingest
from shopgraph.graphdb.journal import journalled_users
from shopgraph.graphdb.server import EmbeddedServer
from shopgraph.graphdb.store import Capabilities, GraphStore
from tests.conftest import workspace_on
from tests.graphdb.helpers import source

ODD = ['plain', 'a "quote"', "back\\slash", "new\nline", "tab\tbell\x07", "", "ünï😀", "a,b"]


def shop(tmp_path: Path) -> SourceData:
    """A source with every case the loader must keep exact: missing numbers and strings, an
    empty string, odd characters, nullable ints, booleans, a second User frame that repeats
    ids (its values set over the first's), edges with and without ts, value and extras."""
    f = tmp_path / "shop.txt"
    f.write_text("the input's bytes\n")
    n = len(ODD)
    users = pd.DataFrame({
        "id": [f"u{k}" for k in range(n)], "email": ODD,
        "recency": [1.5, np.nan, 0.1 + 0.2, np.nan, 1e20, -0.0, 3.0, np.nan],
        "newbie": pd.array([1, None, 0, 1, None, 1, 0, 1], dtype="Int64"),
        "consent": pd.array([True, False, None, True, True, False, True, None], dtype="boolean"),
        "channel": ["web"] * n, "_line": np.arange(1, n + 1)})
    more_users = pd.DataFrame({"id": ["u1", "u9"], "channel": ["phone", None],
                               "history": [2.0, 7.25], "_line": [1, 2]})
    items = pd.DataFrame({"id": ["i1", "i2", "i:3%"], "price": [9.99, 1.0, 2.5],
                          "name": ["x", None, 'y"z'], "_line": [1, 2, 3]})
    pairs = [(f"u{k % n}", ["i1", "i2", "i:3%"][k % 3]) for k in range(40)]
    bought = pd.DataFrame({
        "src": [u for u, _ in pairs], "dst": [i for _, i in pairs],
        "eid": [f"e{k}" for k in range(len(pairs))],
        "ts": pd.array([None if k % 5 == 0 else 1_700_000_000 + k for k in range(40)],
                       dtype="Int64"),
        "value": [np.nan if k % 4 == 0 else k / 3 for k in range(40)],
        "quantity": pd.array([None if k % 7 == 0 else k for k in range(40)], dtype="Int64"),
        "arm": [None if k % 3 else ("" if k == 6 else "a") for k in range(40)],
        "_line": np.arange(1, 41)})
    viewed = bought[["src", "dst", "eid", "ts", "value", "_line"]].assign(
        eid=[f"v{k}" for k in range(40)], ts=pd.array([None] * 40, dtype="Int64"))
    return SourceData("shop", [f], nodes=[
        NodeFrame("User", users, str(f)), NodeFrame("Item", items, str(f)),
        NodeFrame("User", more_users, str(f))],
        edges=[EdgeFrame("PURCHASED", bought, str(f)), EdgeFrame("VIEWED", viewed, str(f))])


@pytest.fixture()
def second(graph_server: EmbeddedServer) -> Iterator[GraphStore]:
    """A second database on the test server, for the other path."""
    graph_server.ensure_database("bulk2")
    with GraphStore(graph_server.uri, graph_server.user, graph_server.password(),
                    "bulk2") as s:
        yield s
    graph_server.drop_database("bulk2")


def graph(store: GraphStore) -> tuple[list[str], list[str]]:
    """Every node (labels, properties) and relationship (ends, type, properties), sorted."""
    nodes = sorted(json.dumps([r["l"], r["p"]], sort_keys=True) for r in store.query(
        "MATCH (n) RETURN labels(n) AS l, properties(n) AS p"))
    rels = sorted(json.dumps([r["a"], r["t"], r["b"], r["p"]], sort_keys=True)
                  for r in store.query("MATCH (a)-[r]->(b) RETURN a.id AS a, type(r) AS t, "
                                       "b.id AS b, properties(r) AS p"))
    return nodes, rels


def summary_of(s: object) -> dict[str, object]:
    out = dict(s.as_dict())  # type: ignore[attr-defined]
    out.pop("seconds")
    return out


def test_bulk_load_writes_what_ingest_writes(store: GraphStore, second: GraphStore,
                                             graph_server: EmbeddedServer,
                                             tmp_path: Path) -> None:
    normal = ingest(store, shop(tmp_path), batch_size=7)
    bulk = bulk_load(second, shop(tmp_path), server=graph_server, batch_size=7,
                     journal=tmp_path / "changes")
    assert summary_of(bulk) == summary_of(normal)
    assert graph(second) == graph(store)  # nodes incl. ledger and schema version, edges
    users = {u["id"]: u for u in (r["p"] for r in second.query(
        "MATCH (n:User) RETURN properties(n) AS p"))}
    assert users["u1"]["channel"] == "phone" and users["u1"]["history"] == 2.0
    assert "recency" not in users["u1"] and users["u2"]["recency"] == 0.1 + 0.2
    assert [users[f"u{k}"]["email"] for k in range(len(ODD))] == ODD
    a, b = export_interactions(store), export_interactions(second)
    assert a.user_ids.tolist() == b.user_ids.tolist() and a.item_ids.tolist() == b.item_ids.tolist()

    def edges(x: object) -> list[tuple[object, ...]]:
        return sorted(zip(x.users.tolist(), x.items.tolist(), x.ts.tolist(),  # type: ignore
                          np.nan_to_num(x.value, nan=-1).tolist(), x.rel.tolist()))  # type: ignore
    assert edges(a) == edges(b) and len(a) == 80
    entries = [json.loads(p.read_text()) for p in (tmp_path / "changes").glob("*.json")]
    assert [e["batch"] for e in entries] == ["bulk"] and entries[0]["users"] == {
        "PURCHASED": [f"u{k}" for k in range(len(ODD))],
        "VIEWED": [f"u{k}" for k in range(len(ODD))]}
    users_of = {f"u{k}" for k in range(len(ODD))}  # the journal began before the load
    assert journalled_users(tmp_path / "changes", entries[0]["at"] - 1e-3) == {
        "PURCHASED": users_of, "VIEWED": users_of}


def test_ingest_on_top_of_a_bulk_load(store: GraphStore, graph_server: EmbeddedServer,
                                      tmp_path: Path) -> None:
    bulk_load(store, shop(tmp_path), server=graph_server)
    before = graph(store)
    again = ingest(store, shop(tmp_path))
    assert again.relationships_written == 0 and again.batches_already_done == again.batches
    assert graph(store) == before
    # A new file: its new events are appended, the one already loaded is found through the
    # eid constraint (the fast write hits it and the guarded one skips it).
    extra = source(tmp_path, [("u0", "i2"), ("u1", "i1")], name="more")
    extra.edges[0].data["eid"] = ["new-1", "e0"]
    extra.edges[0].data["src"] = ["u0", "u0"]
    extra.edges[0].data["dst"] = ["i2", "i1"]
    added = ingest(store, extra)
    assert added.relationships_written == 1 and added.already_present == 1
    assert store.count_rels("PURCHASED") == 41


def test_lightgcn_file_streamed_into_an_empty_database(store: GraphStore, second: GraphStore,
                                                       graph_server: EmbeddedServer,
                                                       tmp_path: Path) -> None:
    path = tmp_path / "train.txt"
    path.write_text("".join(f"{u} " + " ".join(str(i) for i in range(u % 5 + 1)) + "\n"
                            for u in range(50)))
    data = load_lightgcn(path)
    assert data.edges[0].streamed
    normal = ingest(store, load_lightgcn(path), batch_size=40)
    bulk = bulk_load(second, data, server=graph_server, batch_size=40)
    assert summary_of(bulk) == summary_of(normal) and bulk.relationships == {"INTERACTED": 150}
    assert graph(second) == graph(store)


def test_a_database_with_data_is_refused(store: GraphStore, graph_server: EmbeddedServer,
                                         tmp_path: Path) -> None:
    ingest(store, source(tmp_path, [("u1", "i1")], name="first"))
    before = graph(store)
    with pytest.raises(IngestError, match=r"not empty.*use the normal ingest"):
        bulk_load(store, shop(tmp_path), server=graph_server)
    assert graph(store) == before


@pytest.mark.parametrize("fault", ["unknown end", "infinite value", "event twice"])
def test_bad_input_fails_before_anything_is_written(store: GraphStore,
                                                    graph_server: EmbeddedServer,
                                                    tmp_path: Path, fault: str) -> None:
    data = shop(tmp_path)
    bought = data.edges[0].data
    if fault == "unknown end":
        bought.loc[3, "dst"] = "i404"
        match = "unknown Item id 'i404'"
    elif fault == "infinite value":
        bought.loc[3, "value"] = np.inf
        match = "infinite value"
    else:  # the same event from two inputs of one type
        data.edges.append(EdgeFrame("PURCHASED", bought.iloc[:2].copy(), "other.txt"))
        match = "given by two inputs"
    with pytest.raises(IngestError, match=match):
        bulk_load(store, data, server=graph_server)
    assert store.is_empty() and graph(store) == ([], [])
    store.ensure_schema()  # the database is open and usable


def test_arcadedb_without_its_server_is_refused(graph_server: EmbeddedServer,
                                                tmp_path: Path) -> None:
    with workspace_on(graph_server, tmp_path, "bulkws") as ws:
        with pytest.raises(GraphStoreError, match="embedded server"):
            ws.ingest(shop(tmp_path), bulk=True)
        assert ws.store().is_empty()


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="") as fh:
        return list(csv.reader(fh))


def test_neo4j_import_files(tmp_path: Path) -> None:
    folder = write_neo4j_import(shop(tmp_path), tmp_path / "neo4j", batch_size=7)
    users = read_csv(folder / "nodes-User.csv")
    assert users[0] == ["id:ID(User)", "email:string", "recency:double", "newbie:long",
                        "consent:boolean", "channel:string", "history:double", ":LABEL"]
    rows = {r[0]: dict(zip(users[0], r)) for r in users[1:]}
    assert len(rows) == 9  # u0..u7 and u9, once each
    assert rows["u1"]["channel:string"] == "phone" and rows["u1"]["history:double"] == "2"
    assert rows["u1"]["recency:double"] == "" and rows["u2"]["recency:double"] == repr(0.1 + 0.2)
    assert [rows[f"u{k}"]["email:string"] for k in range(len(ODD))] == ODD
    assert rows["u0"]["consent:boolean"] == "true" and rows["u0"][":LABEL"] == "User"
    raw = (folder / "nodes-User.csv").read_text()
    assert ',"",' in raw  # an empty string is quoted (a property), a missing value is not
    bought = read_csv(folder / "relationships-PURCHASED.csv")
    assert bought[0] == [":START_ID(User)", ":END_ID(Item)", ":TYPE", "eid:string", "ts:long",
                         "value:double", "quantity:long", "arm:string"]
    assert len(bought) == 41 and bought[1][:6] == ["u0", "i1", "PURCHASED", "e0", "", ""]
    assert bought[2][3:6] == ["e1", "1700000001", repr(1 / 3)]
    items = read_csv(folder / "nodes-Item.csv")
    assert items[0][0] == "id:ID(Item)" and [r[0] for r in items[1:]] == ["i1", "i2", "i:3%"]
    post = (folder / "post-import.cypher").read_text()
    assert all(c.cypher in post for c in schema.constraints())
    assert '"n0:0", "n0:7", "n1:0", "n2:0", "e0:0"' in post and "ShopgraphMeta" in post
    script = (folder / "import.sh").read_text()
    assert "neo4j-admin database import full" in script
    assert "--nodes=nodes-User.csv" in script
    assert "--relationships=relationships-VIEWED.csv" in script


def test_on_neo4j_the_files_are_written_and_the_load_left_to_neo4j_admin(
        store: GraphStore, tmp_path: Path) -> None:
    store.capabilities = Capabilities("neo4j", "5.20", True)  # as a Neo4j server answers
    with pytest.raises(BulkImportPending) as err:
        bulk_load(store, shop(tmp_path), neo4j_folder=tmp_path / "out")
    assert err.value.folder == tmp_path / "out" and "neo4j-admin" in str(err.value)
    assert (tmp_path / "out" / "relationships-VIEWED.csv").is_file()
    assert store.is_empty()
