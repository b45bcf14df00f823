"""The strategy layer's tables read from the graph equal those read from the files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from shopgraph.graphdb import export, tables
from shopgraph.graphdb.formats import load
from shopgraph.graphdb.ingest import ingest
from shopgraph.graphdb.store import GraphStore
from tests.graphdb.helpers import source


def head_of(src: Path, dest: Path, lines: int) -> Path:
    dest.write_text("".join(src.open().readlines()[:lines]))
    return dest


def test_hillstrom_campaign_log_and_features_from_graph_equal_the_file(
        store: GraphStore, shared_data: Path, tmp_path: Path) -> None:
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
