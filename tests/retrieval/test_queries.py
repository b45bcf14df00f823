"""Queries through ``shopgraph.open(workspace)`` on a small shop in the real local graph server:
recommendations with exclusions and filters, neighbours, audiences, edge cases, mismatches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shopgraph.errors import IndexMismatchError, UnknownIdError
from shopgraph.graphdb.formats.common import nodes_from_ids
from shopgraph.graphdb.frames import EdgeFrame, NodeFrame, SourceData
from shopgraph.graphdb.server import EmbeddedServer
from shopgraph.workspace import Workspace
from tests.conftest import workspace_on
from tests.graphdb.helpers import edges_frame

N_USERS, N_ITEMS, BOUGHT = 60, 40, 8


def taste_shop(folder: Path) -> SourceData:
    """Even users buy books (i0-i19), odd users games (i20-i39); u0 also viewed two games;
    user "newbie" has no interactions yet. Campaign c1's offer applies to games i25 and i26;
    campaign c2 has an offer on no item."""
    rng = np.random.default_rng(0)
    bought = sorted((f"u{u}", f"i{(u % 2) * 20 + i}") for u in range(N_USERS)
                    for i in rng.choice(20, BOUGHT, replace=False))
    folder.mkdir(parents=True, exist_ok=True)
    f = folder / "shop.txt"
    f.write_text("\n".join(f"{a} {b}" for a, b in bought))
    items = pd.DataFrame({"id": [f"i{j}" for j in range(N_ITEMS)],
                          "category": ["books"] * 20 + ["games"] * 20,
                          "price": [float(5 + j) for j in range(N_ITEMS - 1)] + [np.nan],
                          "_line": np.zeros(N_ITEMS, np.int64)})
    offers = pd.DataFrame({"id": ["c1:o", "c2:o"], "_line": [0, 0]})
    links = lambda pairs: edges_frame(pairs)  # noqa: E731
    buys = edges_frame(bought)
    return SourceData("taste", [f], nodes=[
        nodes_from_ids("User", pd.concat([buys["src"], pd.Series(["newbie"])])),
        NodeFrame("Item", items),
        nodes_from_ids("Campaign", pd.Series(["c1", "c2"])), NodeFrame("Offer", offers)],
        edges=[EdgeFrame("PURCHASED", buys),
               EdgeFrame("VIEWED", links([("u0", "i30"), ("u0", "i31")])),
               EdgeFrame("INCLUDES", links([("c1", "c1:o"), ("c2", "c2:o")])),
               EdgeFrame("APPLIES_TO", links([("c1:o", "i25"), ("c1:o", "i26")]))])


@pytest.fixture(scope="module")
def shop_ws(graph_server: EmbeddedServer, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Workspace]:
    """A workspace on the shared server with spectral embeddings and exact indexes."""
    folder = tmp_path_factory.mktemp("retrieval")
    with workspace_on(graph_server, folder, "retrieval") as ws:
        ws.ingest(taste_shop(folder))
        ws.train("spectral", progress=False, k=16, tune=False)  # a fixed model: not tuning
        ws.build_index("spectral")
        yield ws


def bought_by(ws: Workspace, user: str) -> set[str]:
    r = ws.retriever()
    row = r.bundle.seen[r._users.get_loc(user)]
    return set(r.item_ids[row.indices])


def test_recommend_leaves_out_purchases_not_views_and_follows_taste(shop_ws: Workspace) -> None:
    recs = shop_ws.recommend("u0", k=5)
    assert len(recs) == 5 and not {m.id for m in recs} & bought_by(shop_ws, "u0")
    ids = {m.id for m in recs}
    assert {"i30", "i31"} <= ids  # viewed, not bought: views are not excluded
    assert all(int(i[1:]) < 20 for i in ids - {"i30", "i31"})  # else books, like even users
    assert all(int(m.id[1:]) < 20 for m in shop_ws.recommend("u2", k=5))
    assert [m.score for m in recs] == sorted((m.score for m in recs), reverse=True)
    assert shop_ws.retriever().bundle.seen_rel_types == ("PURCHASED",)
    everything = shop_ws.recommend("u0", k=BOUGHT, exclude_seen=False)
    assert len({m.id for m in everything} & bought_by(shop_ws, "u0")) >= BOUGHT - 2


def test_filters_category_price_and_allow_list(shop_ws: Workspace) -> None:
    games = shop_ws.recommend("u0", k=30, category="games")
    assert len(games) == 20 and all(int(m.id[1:]) >= 20 for m in games)  # u0 bought no games
    cheap = shop_ws.recommend("u1", k=50, price_max=30.0)
    prices = {f"i{j}": 5 + j for j in range(N_ITEMS - 1)}
    assert cheap and all(prices[m.id] <= 30 for m in cheap)
    assert len(cheap) == 26 - len({i for i in bought_by(shop_ws, "u1") if prices[i] <= 30})
    priced = shop_ws.recommend("u1", k=50, price_min=0)
    assert "i39" not in {m.id for m in priced}  # no price: fails any price bound
    allowed = shop_ws.recommend("u0", k=10, items=["i1", "i2", "i3", "i21"])
    assert {m.id for m in allowed} == {"i1", "i2", "i3", "i21"} - bought_by(shop_ws, "u0")
    with pytest.warns(UserWarning, match="1 of 2 allowed items"):
        shop_ws.recommend("u0", k=3, items=["i21", "nope"])
    with pytest.raises(ValueError, match="no item .* passes the filters"):
        shop_ws.recommend("u0", category="games", price_max=10)
    with pytest.raises(UnknownIdError, match="category 'toys' is not in the catalogue"):
        shop_ws.recommend("u0", category="toys")


def test_k_beyond_the_catalogue_and_unknown_ids(shop_ws: Workspace) -> None:
    assert len(shop_ws.recommend("u3", k=1000)) == N_ITEMS - BOUGHT
    with pytest.raises(UnknownIdError, match="user 'ghost' not known to the spectral model"):
        shop_ws.recommend("ghost")
    batch = shop_ws.recommend_batch(["u1", "ghost", "u2"], k=3, skip_unknown=True)
    assert batch.queries.tolist() == ["u1", "u2"]
    with pytest.raises(UnknownIdError, match="ghost"):
        shop_ws.recommend_batch(["u1", "ghost"], k=3)
    with pytest.raises(ValueError, match="k must be"):
        shop_ws.recommend("u1", k=0)


def test_batch_forms_equal_single_queries_and_convert_to_tables(shop_ws: Workspace) -> None:
    every = shop_ws.recommend_batch(k=4)
    assert every.positions.shape == (N_USERS + 1, 4) and len(every) == N_USERS + 1
    row, single = every.queries.tolist().index("u7"), shop_ws.recommend("u7", k=4)
    assert [m.id for m in every[row]] == [m.id for m in single]
    assert [m.score for m in every[row]] == pytest.approx([m.score for m in single], rel=1e-5)
    table = every.to_pandas()
    assert list(table.columns) == ["query", "rank", "item_id", "score"]
    assert len(table) == (N_USERS + 1) * 4 and table["rank"].max() == 4
    assert every.to_arrow().num_rows == (N_USERS + 1) * 4
    sims = shop_ws.similar_items_batch(["i0", "i30"], k=3)
    assert sims.ids.shape == (2, 3)
    assert [m.id for m in sims[0]] == [m.id for m in shop_ws.similar_items("i0", k=3)]


def test_a_user_without_interactions_gets_popular_items_and_no_neighbours(
        shop_ws: Workspace) -> None:
    r = shop_ws.retriever()
    counts = dict(zip(r.item_ids, r.popularity))
    recs = shop_ws.recommend("newbie", k=5)
    assert len(recs) == 5 and [m.score for m in recs] == sorted(counts.values())[::-1][:5]
    games = shop_ws.recommend("newbie", k=3, category="games")
    assert all(int(m.id[1:]) >= 20 for m in games) and games[0].score == max(
        v for i, v in counts.items() if int(i[1:]) >= 20)
    assert shop_ws.similar_users("newbie") == []


def test_similar_items_and_users_exclude_themselves_and_share_taste(shop_ws: Workspace) -> None:
    items = shop_ws.similar_items("i0", k=5)
    assert "i0" not in {m.id for m in items} and all(int(m.id[1:]) < 20 for m in items)
    assert all(-1.0001 <= m.score <= 1.0001 for m in items)  # cosine
    users = shop_ws.similar_users("u1", k=5)
    assert "u1" not in {m.id for m in users} and all(int(m.id[1:]) % 2 == 1 for m in users)
    vec = shop_ws.embedding("item", "i0")
    assert vec.shape == (shop_ws.retriever().ckpt.item_emb.shape[1],)


def test_audience_of_a_campaign_items_and_category(shop_ws: Workspace) -> None:
    aud = shop_ws.audience("c1", n=10)
    assert len(aud) == 10 and all(int(m.id[1:]) % 2 == 1 for m in aud)  # gamers
    assert sorted(shop_ws.campaign_items("c1")) == ["i25", "i26"]
    same = shop_ws.audience(items=["i25", "i26"], n=10)
    assert [m.id for m in same] == [m.id for m in aud]
    fresh = shop_ws.audience("c1", n=10, exclude_buyers=True)
    buyers = {u for u in (f"u{j}" for j in range(N_USERS)) if bought_by(shop_ws, u) &
              {"i25", "i26"}}
    assert buyers and not {m.id for m in fresh} & buyers
    books = shop_ws.audience(category="books", n=100)
    assert len(books) == N_USERS + 1 and int(books[0].id[1:]) % 2 == 0
    with pytest.raises(ValueError, match="promotes no items"):
        shop_ws.audience("c2")
    with pytest.raises(UnknownIdError, match="campaign 'c9' is not in the graph"):
        shop_ws.audience("c9")
    with pytest.raises(ValueError, match="exactly one"):
        shop_ws.audience("c1", items=["i1"])


def test_approximate_index_agrees_with_exact_and_a_new_checkpoint_is_refused(
        shop_ws: Workspace) -> None:
    exact = shop_ws.recommend_batch(k=5)
    info = shop_ws.build_index("spectral", kind="hnsw")
    assert info.indexes["items"]["factory"] == "HNSW32"
    assert info.indexes["items"]["recall@20"] >= 0.98
    approx = shop_ws.recommend_batch(k=5)
    assert (approx.positions == exact.positions).mean() > 0.95
    leftovers = list(shop_ws.layout.indexes.glob(".*tmp"))
    assert leftovers == []
    shop_ws.train("spectral", progress=False, k=8)  # a new checkpoint, the old index
    fresh = Workspace(shop_ws.path)
    with pytest.raises(IndexMismatchError, match="rebuild it with `shopgraph index build"):
        fresh.recommend("u0")
    fresh.build_index("spectral")
    assert len(fresh.recommend("u0", k=3)) == 3
    fresh.close()
