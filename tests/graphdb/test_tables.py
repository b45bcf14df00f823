"""The strategy layer's tables read from the graph equal those read from the files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from shopgraph.graphdb import export, schema, tables
from shopgraph.graphdb.formats import load
from shopgraph.graphdb.ingest import ingest
from shopgraph.graphdb.store import GraphStore
from tests.graphdb.helpers import source


def head_of(src: Path, dest: Path, lines: int) -> Path:
    dest.write_text("".join(src.open().readlines()[:lines]))
    return dest


@pytest.mark.parametrize("edges_per_query", [None, 0], ids=["columns", "a record per edge"])
def test_hillstrom_campaign_log_and_features_from_graph_equal_the_file(
        store: GraphStore, shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        edges_per_query: int | None) -> None:
    if edges_per_query is not None:  # every type over the limit: read a record per edge
        monkeypatch.setattr(export, "EDGES_PER_QUERY", edges_per_query)
    csv = head_of(shared_data / "hillstrom" / "hillstrom.csv", tmp_path / "h.csv", 2001)
    source = load("hillstrom", csv)
    from_file = tables.campaign_log(source)
    assert len(from_file) == 2000 and set(from_file["arm"]) == {
        "Mens E-Mail", "Womens E-Mail", "No E-Mail"}
    assert from_file["treated"].sum() == (from_file["arm"] != "No E-Mail").sum()
    assert from_file["converted"].sum() <= from_file["visited"].sum()
    assert (from_file.loc[from_file["converted"] == 1, "value"] > 0).all()
    ingest(store, source)
    from_graph = tables.campaign_log(store)
    pd.testing.assert_frame_equal(from_graph, from_file)
    feats = tables.user_features(store)
    assert len(feats) == 2000 and {"recency", "history", "channel"} <= set(feats.columns)
    pd.testing.assert_frame_equal(feats.sort_index()[["recency", "history"]],
                                  tables.user_features(source).sort_index()[["recency", "history"]])


def test_cdnow_purchases_from_graph_equal_the_file(store: GraphStore, shared_data: Path,
                                                   tmp_path: Path) -> None:
    txt = head_of(shared_data / "cdnow" / "CDNOW_sample.txt", tmp_path / "c.txt", 500)
    source = load("cdnow", txt)
    from_file = tables.purchases(source)
    assert len(from_file) == 500 and from_file["ts"].is_monotonic_increasing is False
    ingest(store, source)
    pd.testing.assert_frame_equal(tables.purchases(store), from_file)
    with pytest.raises(ValueError, match="no properties"):
        tables.user_features(source, ["shoe_size"])


@pytest.mark.parametrize("edges_per_query", [None, 1], ids=["one read", "a read per user"])
def test_grouped_purchases_read_equals_the_files_rows_with_gaps_and_two_types(
        store: GraphStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        edges_per_query: int | None) -> None:
    if edges_per_query is not None:
        monkeypatch.setattr(export, "EDGES_PER_QUERY", edges_per_query)
    assert tables.purchases(store).empty  # nothing ingested yet: an empty, typed table
    assert list(tables.purchases(store).columns) == ["user_id", "ts", "value"]
    bought = source(tmp_path, [("u2", "i1"), ("u1", "i1"), ("u1", "i2"), ("u1", "i3"),
                               ("u3", "i2")], name="buys",
                    ts=[500, 300, 100, None, 100], value=[5.0, None, 2.5, 1.0, 7.0])
    carted = source(tmp_path, [("u1", "i4"), ("u3", "i1")], name="carts", rel="CARTED",
                    ts=[300, 50], value=[None, 4.0])
    for part in (bought, carted):
        ingest(store, part)
    for rels in (("PURCHASED",), ("PURCHASED", "CARTED")):
        want = pd.concat([tables.purchases(bought, rels[:1]), *(
            [tables.purchases(carted, ("CARTED",))] if len(rels) > 1 else [])])
        want = want.sort_values(["user_id", "ts", "value"], kind="stable").reset_index(drop=True)
        got = tables.purchases(store, rels)
        pd.testing.assert_frame_equal(got, want)
    assert len(tables.purchases(store)) == 4  # u1's purchase without a time is left out
    assert tables.purchases(store)["value"].isna().sum() == 1  # a missing value stays NaN


@pytest.mark.parametrize("ids_per_query", [None, 3], ids=["gathered", "a record per node"])
def test_node_properties_read_as_maps_equal_a_field_per_property(
        store: GraphStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        ids_per_query: int | None) -> None:
    """Users read as one property map each (gathered into one record, or a record per node
    past the limit of one ``collect``) give the frame a field per allowed property gives:
    missing flags None, missing numbers and texts NaN, never-set properties None throughout."""
    if ids_per_query is not None:
        monkeypatch.setattr(export, "IDS_PER_QUERY", ids_per_query)
    data = source(tmp_path, [("u1", "i1"), ("u2", "i1"), ("u3", "i2"), ("u4", "i2")])
    users = data.nodes[0].data
    assert data.nodes[0].label == "User" and list(users["id"]) == ["u1", "u2", "u3", "u4"]
    users["email"] = ["a@x.org", None, "c@x.org", "d@x.org"]
    users["consent"] = [True, None, False, True]
    users["recency"] = [1.5, None, 3.0, 0.0]
    users["newbie"] = [1, 0, None, 1]
    users["age"] = ["25-34", "65+", None, None]
    ingest(store, data)
    props = list(schema.NODE_PROPERTIES["User"])
    fields = ", ".join(f"n.{p} AS {p}" for p in props)
    by_field = tables._records(store, f"MATCH (n:User) RETURN n.id AS id, {fields}",
                               ["id", *props])
    by_field["id"] = by_field["id"].astype(str)
    expected = by_field.set_index("id").sort_index()
    got = tables.node_table(store, "User", props).sort_index()
    pd.testing.assert_frame_equal(got, expected)
    assert got.loc["u2", "consent"] is None and pd.isna(got.loc["u3", "age"])
    assert pd.isna(got.loc["u2", "recency"]) and (got["zip_code"].to_numpy() == None).all()  # noqa: E711
    feats = tables.user_features(store)
    assert set(feats.columns) == {"email", "consent", "recency", "newbie", "age"}
