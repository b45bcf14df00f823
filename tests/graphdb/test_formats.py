"""Tests for the lightgcn, ratings, Hillstrom, CDNOW and dunnhumby loaders: real-data counts
(skipped when ../shared/data is absent), bad input on small files written to tmp_path, and the
shared helpers (event ids, quoting, encodings; issue 11)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shopgraph.errors import IngestError
from shopgraph.graphdb.formats import common
from shopgraph.graphdb.formats.cdnow import load_cdnow
from shopgraph.graphdb.formats.common import event_id, event_ids, quote, repeats
from shopgraph.graphdb.formats.dunnhumby import load_dunnhumby
from shopgraph.graphdb.formats.hillstrom import load_hillstrom
from shopgraph.graphdb.formats.lightgcn import load_lightgcn
from shopgraph.graphdb.formats.ratings import load_ratings
from shopgraph.graphdb.frames import SourceData

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="module")
def shared_data() -> Path:
    """The shared real datasets, or skip."""
    if not DATA.is_dir():
        pytest.skip(f"shared data not found at {DATA}")
    return DATA


def edges(data: SourceData, rel: str) -> pd.DataFrame:
    return pd.concat([e.data for e in data.edges if e.rel == rel], ignore_index=True)


def nodes(data: SourceData, label: str) -> pd.DataFrame:
    return pd.concat([n.data for n in data.nodes if n.label == label], ignore_index=True)


def assert_unique_ids(data: SourceData) -> None:
    for rel in {e.rel for e in data.edges}:
        assert edges(data, rel)["eid"].is_unique, rel
    for label in {n.label for n in data.nodes}:
        assert nodes(data, label)["id"].is_unique, label


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def expect_error(fn, *args, file: Path, line: int | None, field: str | None) -> IngestError:
    with pytest.raises(IngestError) as info:
        fn(*args, strict=True)
    err = info.value
    assert (err.file, err.line, err.field) == (str(file), line, field), str(err)
    return err


def only_problem(data: SourceData, file: Path, line: int, field: str) -> None:
    assert [(p.file, p.line, p.field) for p in data.problems] == [(str(file), line, field)]


# --- real data ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def amazon(shared_data: Path) -> SourceData:
    return load_ratings(shared_data / "amazon-sports" / "train.txt")


@pytest.fixture(scope="module")
def hillstrom(shared_data: Path) -> SourceData:
    return load_hillstrom(shared_data / "hillstrom" / "hillstrom.csv")


@pytest.fixture(scope="module")
def cdnow(shared_data: Path) -> SourceData:
    return load_cdnow(shared_data / "cdnow" / "CDNOW_master.txt")


@pytest.fixture(scope="module")
def dunnhumby(shared_data: Path) -> SourceData:
    return load_dunnhumby(shared_data / "dunnhumby_complete_journey")


@pytest.mark.shared_data
def test_amazon_counts(amazon: SourceData, shared_data: Path) -> None:
    rated = edges(amazon, "RATED")
    assert amazon.name == "amazon-sports" and not amazon.problems
    assert len(rated) == 211_807
    assert len(nodes(amazon, "User")) == 35_598 and len(nodes(amazon, "Item")) == 18_349
    assert (rated["value"] == 1.0).all() and rated["ts"].isna().all()
    assert (rated["eid"] == rated["src"] + ":" + rated["dst"]).all()
    assert_unique_ids(amazon)
    valid = edges(load_ratings(shared_data / "amazon-sports" / "valid.txt"), "RATED")
    assert len(valid) == 23_809
    assert not set(valid["eid"]) & set(rated["eid"])  # no pair in two splits


@pytest.mark.shared_data
def test_hillstrom_counts(hillstrom: SourceData) -> None:
    assert not hillstrom.problems
    users = nodes(hillstrom, "User")
    assert len(users) == 64_000 and users["id"].iloc[0] == "h1" and users["id"].iloc[-1] == "h64000"
    first = users.iloc[0]
    assert (first["recency"], first["history"], first["mens"], first["zip_code"]) == (
        10.0, 142.44, 1, "Surburban")
    received = edges(hillstrom, "RECEIVED")
    assert received["arm"].value_counts().to_dict() == {"Womens E-Mail": 21_387,
                                                        "Mens E-Mail": 21_307}
    assert (received["dst"] == "hillstrom-2008:" + received["arm"].map(
        {"Womens E-Mail": "womens", "Mens E-Mail": "mens"})).all()
    held = edges(hillstrom, "HELD_OUT")
    assert len(held) == 21_306 and (held["arm"] == "No E-Mail").all()
    assert set(held["src"]).isdisjoint(received["src"])
    assert len(held) + len(received) == 64_000
    assert len(edges(hillstrom, "VISITED")) == 9_394
    converted = edges(hillstrom, "CONVERTED")
    assert len(converted) == 578
    assert converted["value"].sum() == pytest.approx(67_258.13, abs=0.01)
    assert converted["eid"].iloc[0] == f"hillstrom-2008:{converted['src'].iloc[0]}:converted"
    assert len(nodes(hillstrom, "Campaign")) == 1 and len(edges(hillstrom, "INCLUDES")) == 2
    assert list(nodes(hillstrom, "Offer")["id"]) == ["hillstrom-2008:mens",
                                                     "hillstrom-2008:womens"]
    assert_unique_ids(hillstrom)


@pytest.mark.shared_data
def test_cdnow_master_counts(cdnow: SourceData) -> None:
    bought = edges(cdnow, "PURCHASED")
    assert not cdnow.problems and len(bought) == 69_659
    users = nodes(cdnow, "User")
    assert len(users) == 23_570 and users["id"].iloc[0] == "00001"
    assert bought["value"].sum() == pytest.approx(2_500_315.63, abs=0.01)
    assert bought["quantity"].sum() == 167_881
    assert (bought["value"] == 0).sum() == 80
    assert bought["ts"].min() == 852_076_800  # 1997-01-01
    assert bought["ts"].max() == 899_164_800  # 1998-06-30
    assert list(nodes(cdnow, "Item")["id"]) == ["cdnow:any"]
    assert_unique_ids(cdnow)


@pytest.mark.shared_data
def test_cdnow_sample_matches_master(cdnow: SourceData, shared_data: Path) -> None:
    sample = load_cdnow(shared_data / "cdnow" / "CDNOW_sample.txt")
    bought = edges(sample, "PURCHASED")
    assert len(bought) == 6_919 and len(nodes(sample, "User")) == 2_357
    assert bought["value"].sum() == pytest.approx(244_091.94, abs=0.01)
    master = edges(cdnow, "PURCHASED").set_index("eid")
    assert bought["eid"].isin(master.index).all()  # the same events get the same ids
    same = master.loc[bought["eid"]]
    assert np.allclose(same["value"].to_numpy(), bought["value"].to_numpy())


@pytest.mark.shared_data
def test_dunnhumby_counts(dunnhumby: SourceData, shared_data: Path) -> None:
    folder = shared_data / "dunnhumby_complete_journey"
    coupon = pd.read_csv(folder / "coupon.csv")
    table = pd.read_csv(folder / "campaign_table.csv")
    red = pd.read_csv(folder / "coupon_redempt.csv")
    assert not dunnhumby.problems
    camps = nodes(dunnhumby, "Campaign")
    assert len(camps) == 30
    assert camps["type"].value_counts().to_dict() == {"TypeB": 19, "TypeC": 6, "TypeA": 5}
    assert len(edges(dunnhumby, "EXPOSED")) == 7_208
    done = edges(dunnhumby, "COMPLETED")
    assert len(done) == 2_318 and done["src"].nunique() == 434
    n_offers = len(coupon.drop_duplicates(["campaign", "coupon_upc"]))
    assert len(nodes(dunnhumby, "Offer")) == n_offers == len(edges(dunnhumby, "INCLUDES"))
    assert len(edges(dunnhumby, "APPLIES_TO")) == len(coupon.drop_duplicates())
    assert len(nodes(dunnhumby, "Item")) == coupon["product_id"].nunique() == 44_133
    users = nodes(dunnhumby, "User")
    assert users["age"].notna().sum() == 801
    households = set(table["household_key"]) | set(red["household_key"])
    assert set(users["id"]) == {str(h) for h in households} | set(
        users.loc[users["age"].notna(), "id"])
    # every redemption lies inside its campaign's days
    start = camps.set_index("id")["start_day"]
    end = camps.set_index("id")["end_day"]
    campaign = done["eid"].str.split(":").str[0]
    assert ((done["ts"] >= campaign.map(start) * 86400)
            & (done["ts"] <= campaign.map(end) * 86400)).all()
    assert_unique_ids(dunnhumby)


# --- ratings: bad input ---------------------------------------------------------------------

def test_ratings_small_file(tmp_path: Path) -> None:
    p = write(tmp_path, "r.txt", "u1 i1 4\n\nu1 i2 2.5\r\nu2 i1 5\n")
    data = load_ratings(p, rel="PURCHASED", name="shop")
    e = edges(data, "PURCHASED")
    assert list(e["eid"]) == ["u1:i1", "u1:i2", "u2:i1"]
    assert list(e["value"]) == [4.0, 2.5, 5.0] and list(e["_line"]) == [1, 3, 4]
    assert data.name == "shop"


@pytest.mark.parametrize("line, field", [
    ("u3 i9", "rating"),            # a field missing
    ("u3", "item"),
    ("u3 i9 5 extra", "rating"),    # one too many
    ("u3 i9 five", "rating"),       # not a number
    ("u1 i1 3", "item"),            # the same pair again
])
def test_ratings_bad_line(tmp_path: Path, line: str, field: str) -> None:
    p = write(tmp_path, "r.txt", f"u1 i1 4\nu2 i2 1\n{line}\nu4 i4 2\n")
    expect_error(load_ratings, p, file=p, line=3, field=field)
    data = load_ratings(p, strict=False)
    assert list(edges(data, "RATED")["eid"]) == ["u1:i1", "u2:i2", "u4:i4"]
    only_problem(data, p, 3, field)


def test_ratings_empty_and_missing(tmp_path: Path) -> None:
    empty = write(tmp_path, "empty.txt", "")
    expect_error(load_ratings, empty, file=empty, line=None, field=None)
    blank = write(tmp_path, "blank.txt", "\n  \n")
    expect_error(load_ratings, blank, file=blank, line=1, field="user")
    assert load_ratings(blank, strict=False).edges == []
    expect_error(load_ratings, tmp_path / "nope.txt", file=tmp_path / "nope.txt", line=None,
                 field=None)
    with pytest.raises(ValueError):
        load_ratings(blank, rel="EXPOSED")


# --- hillstrom: bad input -------------------------------------------------------------------

H_HEADER = ("recency,history_segment,history,mens,womens,zip_code,newbie,channel,segment,visit,"
            "conversion,spend\n")
H_ROWS = ["10,2) $100 - $200,142.44,1,0,Surburban,0,Phone,Womens E-Mail,0,0,0",
          "6,3) $200 - $350,329.08,1,1,Rural,1,Web,No E-Mail,1,1,29.99",
          '2,"7) $1,000 +",1500,0,1,Urban,0,Multichannel,Mens E-Mail,1,0,0']


def test_hillstrom_small_file(tmp_path: Path) -> None:
    p = write(tmp_path, "h.csv", H_HEADER + "\n".join(H_ROWS) + "\r\n")
    data = load_hillstrom(p, campaign_id="c1")
    assert list(nodes(data, "User")["id"]) == ["h1", "h2", "h3"]
    assert list(edges(data, "RECEIVED")["dst"]) == ["c1:womens", "c1:mens"]
    assert list(edges(data, "HELD_OUT")["eid"]) == ["c1:h2:held_out"]
    assert list(edges(data, "VISITED")["arm"]) == ["No E-Mail", "Mens E-Mail"]
    assert list(edges(data, "CONVERTED")["value"]) == [29.99]
    assert data.options["campaign_id"] == "c1"


@pytest.mark.parametrize("bad, field", [
    ("1,x,5,0,0,Urban,0,Web,Kids E-Mail,0,0,0", "segment"),
    ("1,x,5,0,0,Urban,0,Web,Mens E-Mail,2,0,0", "visit"),
    ("1,x,5,yes,0,Urban,0,Web,Mens E-Mail,0,0,0", "mens"),
    ("1,x,lots,0,0,Urban,0,Web,Mens E-Mail,0,0,0", "history"),
    ("1,x,5,0,0,Urban,0,Web,Mens E-Mail,0,1,", "spend"),
    ("1,x,5,0,0,Urban,0,Web,Mens E-Mail,0,0,0,9", "spend"),  # a field too many
])
def test_hillstrom_bad_row(tmp_path: Path, bad: str, field: str) -> None:
    p = write(tmp_path, "h.csv", H_HEADER + "\n".join([H_ROWS[0], bad, *H_ROWS[1:]]) + "\n")
    expect_error(load_hillstrom, p, file=p, line=3, field=field)
    data = load_hillstrom(p, strict=False)
    assert list(nodes(data, "User")["id"]) == ["h1", "h3", "h4"]  # row numbers kept
    only_problem(data, p, 3, field)


def test_hillstrom_header_and_empty(tmp_path: Path) -> None:
    p = write(tmp_path, "h.csv", H_HEADER.replace("segment,visit", "arm,visit") + H_ROWS[0])
    err = expect_error(load_hillstrom, p, file=p, line=1, field="segment")
    assert "missing column" in str(err)
    empty = write(tmp_path, "e.csv", "")
    expect_error(load_hillstrom, empty, file=empty, line=None, field=None)
    header_only = write(tmp_path, "ho.csv", H_HEADER)
    expect_error(load_hillstrom, header_only, file=header_only, line=1, field="segment")


# --- cdnow: bad input -----------------------------------------------------------------------

C_HEADER = " customer_id  date number_of_cds  dollar_value\r\n"
C_ROWS = [" 00001 19970101  1   11.77", " 00002 19970112  1   12.00",
          " 00002 19970112  5   77.00", " 00003 19970102  2   20.76"]


def test_cdnow_small_files(tmp_path: Path) -> None:
    p = write(tmp_path, "m.txt", C_HEADER + "\r\n".join(C_ROWS) + "\r\n")
    e = edges(load_cdnow(p), "PURCHASED")
    assert list(e["eid"]) == ["00001:19970101:0", "00002:19970112:0", "00002:19970112:1",
                              "00003:19970102:0"]
    assert list(e["quantity"]) == [1, 1, 5, 2] and e["ts"].iloc[0] == 852_076_800
    headerless = write(tmp_path, "n.txt", "\n".join(C_ROWS))
    assert list(edges(load_cdnow(headerless), "PURCHASED")["eid"]) == list(e["eid"])
    sample = write(tmp_path, "s.txt", " 00002 0001 19970112  1   12.00\n"
                                      " 00002 0001 19970112  5   77.00\n")
    s = edges(load_cdnow(sample), "PURCHASED")
    assert list(s["eid"]) == ["00002:19970112:0", "00002:19970112:1"]
    assert list(s["value"]) == [12.0, 77.0]


@pytest.mark.parametrize("bad, field", [
    (" 00002 19971345  1   1.00", "date"),       # impossible month
    (" 00002 1997-01-12  1   1.00", "date"),     # wrong layout
    (" 00002 19970112  two   1.00", "number_of_cds"),
    (" 00002 19970112  1.5   1.00", "number_of_cds"),
    (" 00002 19970112  1   $1", "dollar_value"),
    (" 00002 19970112  1", "dollar_value"),     # a field missing
])
def test_cdnow_bad_row(tmp_path: Path, bad: str, field: str) -> None:
    p = write(tmp_path, "m.txt", C_HEADER + "\r\n".join([C_ROWS[0], bad, *C_ROWS[1:]]) + "\r\n")
    expect_error(load_cdnow, p, file=p, line=3, field=field)
    data = load_cdnow(p, strict=False)
    only_problem(data, p, 3, field)
    e = edges(data, "PURCHASED")
    assert len(e) == 4 and e["eid"].is_unique


def test_cdnow_header_and_empty(tmp_path: Path) -> None:
    p = write(tmp_path, "m.txt", " customer_id date cds dollar_value\n" + C_ROWS[0])
    expect_error(load_cdnow, p, file=p, line=1, field="number_of_cds")
    odd = write(tmp_path, "o.txt", "a b c d e f\n")
    expect_error(load_cdnow, odd, file=odd, line=1, field=None)
    empty = write(tmp_path, "e.txt", "")
    expect_error(load_cdnow, empty, file=empty, line=None, field=None)
    header_only = write(tmp_path, "h.txt", C_HEADER)
    expect_error(load_cdnow, header_only, file=header_only, line=1, field="customer_id")


# --- dunnhumby: bad input -------------------------------------------------------------------

D_FILES = {
    "campaign_desc.csv": "description,campaign,start_day,end_day\nTypeA,1,10,20\nTypeB,2,15,30\n",
    "campaign_table.csv": "description,household_key,campaign\nTypeA,7,1\nTypeA,8,1\nTypeB,7,2\n",
    "coupon.csv": ("coupon_upc,product_id,campaign\n100,500,1\n100,501,1\n100,500,1\n"
                   "200,500,2\n"),
    "coupon_redempt.csv": "household_key,day,coupon_upc,campaign\n7,12,100,1\n8,16,200,2\n",
    "hh_demographic.csv": ("household_key,age_desc,marital_status_code,income_desc,"
                           "homeowner_desc,hh_comp_desc,household_size_desc,kid_category_desc\n"
                           "7,65+,A,35-49K,Homeowner,2 Adults No Kids,2,None/Unknown\n"
                           "9,25-34,B,50-74K,Renter,Single Male,1,None/Unknown\n"),
}


def write_dunnhumby(tmp_path: Path, **replace: str) -> Path:
    for name, text in D_FILES.items():
        write(tmp_path, name, replace.get(name.removesuffix(".csv"), text))
    return tmp_path


def test_dunnhumby_small_folder(tmp_path: Path) -> None:
    data = load_dunnhumby(write_dunnhumby(tmp_path))
    assert list(nodes(data, "Offer")["id"]) == ["1:100", "2:200"]
    assert list(edges(data, "APPLIES_TO")["eid"]) == ["1:100:500", "1:100:501", "2:200:500"]
    assert list(nodes(data, "Item")["id"]) == ["500", "501"]
    assert list(edges(data, "EXPOSED")["eid"]) == ["1:7:exposed", "1:8:exposed", "2:7:exposed"]
    done = edges(data, "COMPLETED")
    assert list(done["eid"]) == ["1:7:100:12:0", "2:8:200:16:0"]
    assert list(done["dst"]) == ["1:100", "2:200"] and list(done["ts"]) == [12 * 86400,
                                                                          16 * 86400]
    users = nodes(data, "User")
    assert sorted(users["id"]) == ["7", "8", "9"]
    assert users.set_index("id").loc["7", "household_comp"] == "2 Adults No Kids"
    camp = nodes(data, "Campaign").set_index("id")
    assert camp.loc["2", "type"] == "TypeB" and camp.loc["2", "end_day"] == 30


@pytest.mark.parametrize("table, text, field, message", [
    ("coupon_redempt", "household_key,day,coupon_upc,campaign\n7,12,100,1\n8,16,200,3\n",
     "campaign", "unknown id"),    # campaign 3 is not in campaign_desc.csv
    ("coupon_redempt", "household_key,day,coupon_upc,campaign\n7,12,100,1\n8,16,100,2\n",
     "coupon_upc", "unknown id"),  # coupon 100 is not in campaign 2
    ("coupon_redempt", "household_key,day,coupon_upc,campaign\n7,12,100,1\n8,x,200,2\n",
     "day", "integer"),
    ("campaign_table", "description,household_key,campaign\nTypeA,7,1\nTypeA,8,5\n",
     "campaign", "unknown id"),
    ("coupon", "coupon_upc,product_id,campaign\n100,500,1\nABC,500,2\n200,500,2\n",
     "coupon_upc", "integer"),
])
def test_dunnhumby_bad_row(tmp_path: Path, table: str, text: str, field: str,
                           message: str) -> None:
    folder = write_dunnhumby(tmp_path, **{table: text})
    p = folder / f"{table}.csv"
    err = expect_error(load_dunnhumby, folder, file=p, line=3, field=field)
    assert message in str(err)
    data = load_dunnhumby(folder, strict=False)
    only_problem(data, p, 3, field)
    assert_unique_ids(data)
    assert len(nodes(data, "Campaign")) == 2


def test_dunnhumby_missing_file_and_column(tmp_path: Path) -> None:
    folder = write_dunnhumby(tmp_path)
    (folder / "coupon.csv").unlink()
    err = expect_error(load_dunnhumby, folder, file=folder / "coupon.csv", line=None,
                       field=None)
    assert "coupon.csv" in str(err)
    folder = write_dunnhumby(tmp_path, campaign_table="description,household,campaign\n")
    expect_error(load_dunnhumby, folder, file=folder / "campaign_table.csv", line=1,
                 field="household_key")
    with pytest.raises(IngestError):
        load_dunnhumby(tmp_path / "nowhere")


# --- shared helpers (issue 11) --------------------------------------------------------------

def unescape(eid: str) -> list[str]:
    return [p.replace("%3A", ":").replace("%25", "%") for p in eid.split(":")]


def test_event_id_escapes_percent_and_colon_only_11() -> None:
    assert event_id("u1", "i2") == "u1:i2" and event_id("00042", 7, "x") == "00042:7:x"
    assert event_id("é中 Ω", "-_.") == "é中 Ω:-_."  # nothing else is touched
    assert (event_id("a:b", "c"), event_id("a", "b:c")) == ("a%3Ab:c", "a:b%3Ac")
    assert event_id("50%", "x") == "50%25:x"
    assert event_id("a%3Ab", "c") == "a%253Ab:c" != event_id("a:b", "c")
    parts = ["a:b", "%", "%3A", ":", "", "x%25:y"]
    assert unescape(event_id(*parts)) == parts


def test_event_ids_is_event_id_row_by_row_11() -> None:
    users = pd.Series(["u1", "a:b", "a", "50%", "é"], index=[5, 6, 7, 8, 9])
    items = pd.Series(["i", "c", "b:c", "%3A", "中"], index=[0, 1, 2, 3, 4])  # other index
    nth = pd.Series(np.arange(5))
    got = event_ids(users, items, "k:1", nth)
    assert list(got.index) == [5, 6, 7, 8, 9]
    assert got.tolist() == [event_id(u, i, "k:1", n) for u, i, n in
                            zip(users, items, range(5))]
    assert event_ids(pd.Series(["1", "2"]), pd.Series(["3", "4"])).tolist() == ["1:3", "2:4"]
    with pytest.raises(ValueError):
        event_ids("a", "b")


def test_quote_cuts_long_values_11() -> None:
    assert quote("abc") == "'abc'" and quote(42) == "'42'"
    assert quote("x" * 40) == repr("x" * 40)
    long = quote("y" * 10_000_000)
    assert long == repr("y" * 40) + "…(10000000 chars)"


def test_repeats_is_duplicated_even_when_hashes_collide_11(
        monkeypatch: pytest.MonkeyPatch) -> None:
    values = pd.Series(["a", "b", "a", "c", "b", "a", "d"], dtype="str")
    want = values.duplicated(keep="first").tolist()
    assert repeats(values).tolist() == want
    assert repeats(values, slice_rows=2).tolist() == want
    monkeypatch.setattr(pd.util, "hash_array", lambda v, **kw: np.zeros(len(v), np.uint64))
    assert repeats(values).tolist() == want  # every hash equal: values decide
    assert repeats(pd.Series([], dtype="str")).tolist() == []


# --- lightgcn -------------------------------------------------------------------------------

def test_lightgcn_small_file(tmp_path: Path) -> None:
    p = write(tmp_path, "train.txt", "\ufeff1 10 11\n\n2\t10\r\n5\n007 7  8\n")
    data = load_lightgcn(p, name="g")
    e = edges(data, "INTERACTED")
    assert list(e["eid"]) == ["1:10", "1:11", "2:10", "007:7", "007:8"]
    assert list(e["_line"]) == [1, 1, 3, 5, 5] and e["ts"].isna().all()
    assert list(nodes(data, "User")["id"]) == ["1", "2", "007"]  # no BOM in the first id
    assert data.name == "g" and not data.problems


@pytest.mark.parametrize("chunk", [1, 5, 64])
def test_lightgcn_chunks_change_nothing(tmp_path: Path, chunk: int,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    text = "\ufeff1 10 11\n\n2 10 x\n3 30\n1 12 10\n4 40 41 42\n"
    p = write(tmp_path, "train.txt", text)
    whole = load_lightgcn(p, strict=False)
    monkeypatch.setattr(common, "CHUNK_BYTES", chunk)
    chunked = load_lightgcn(p, strict=False)
    pd.testing.assert_frame_equal(edges(whole, "INTERACTED"), edges(chunked, "INTERACTED"))
    assert [str(x) for x in whole.problems] == [str(x) for x in chunked.problems]
    assert [(x.line, x.field) for x in chunked.problems] == [(3, "item[2]"), (5, "item")]


@pytest.mark.parametrize("token, index", [("x", 1), ("١٢", 2), ("²", 0), ("-1", 1), ("1.5", 2),
                                          ("٣", 1)])
def test_lightgcn_ids_are_ascii_digits_11(tmp_path: Path, token: str, index: int) -> None:
    fields = ["3", "30", "31"]
    fields[index] = token
    p = write(tmp_path, "train.txt", f"1 10\n2 20\n{' '.join(fields)}\n4 40\n")
    field = "user" if index == 0 else f"item[{index}]"
    err = expect_error(load_lightgcn, p, file=p, line=3, field=field)
    assert repr(token) in str(err)
    data = load_lightgcn(p, strict=False)
    only_problem(data, p, 3, field)
    assert list(edges(data, "INTERACTED")["eid"]) == ["1:10", "2:20", "4:40"]


def test_lightgcn_same_pair_twice(tmp_path: Path) -> None:
    p = write(tmp_path, "train.txt", "1 10 11\n2 10\n1 11 12\n")
    expect_error(load_lightgcn, p, file=p, line=3, field="item")
    data = load_lightgcn(p, strict=False)
    only_problem(data, p, 3, "item")
    assert list(edges(data, "INTERACTED")["eid"]) == ["1:10", "1:11", "2:10", "1:12"]


def test_lightgcn_nothing_to_read(tmp_path: Path) -> None:
    p = write(tmp_path, "train.txt", "1\n\n2\n")
    expect_error(load_lightgcn, p, file=p, line=1, field="user")
    assert load_lightgcn(p, strict=False).edges == []


# --- echoes, encodings, BOMs (issue 11) -----------------------------------------------------

GIANT = 10_000_000


@pytest.mark.parametrize("loader, text, field", [
    (load_lightgcn, "1 10\n2 9{giant}\n", "item[1]"),
    (load_ratings, "u1 i1 1\nu2 i2 {giant}\n", "rating"),
])
def test_giant_bad_token_is_echoed_short_11(tmp_path: Path, loader, text: str,
                                            field: str) -> None:
    p = write(tmp_path, "t.txt", text.format(giant="x" * GIANT))
    err = expect_error(loader, p, file=p, line=2, field=field)
    assert len(str(err)) < 250 + len(str(p)), len(str(err))
    assert "…(" in str(err) and "chars)" in str(err)
    data = loader(p, strict=False)
    assert len(data.problems) == 1 and len(data.problems[0].message) < 250


@pytest.mark.parametrize("loader, raw, line, field, column", [
    (load_lightgcn, b"1 10\n2 2\xff0\n3 30\n", 2, "item[1]", 4),
    (load_lightgcn, b"1 10\n\xc32 20\n3 30\n", 2, "user", 1),
    (load_ratings, b"u1 i1 1\nu2 i\xe92 1\nu3 i3 2\n", 2, "item", 5),
    (load_ratings, b"\xef\xbb\xbfu\xff1 i1 1\nu2 i2 1\n", 1, "user", 5),  # BOM bytes count
    (load_ratings, b"u1 i1 1\nu2 i2 1\xed\xa0\x80\n", 2, "rating", 8),  # a surrogate
    (load_cdnow, b" 00001 19970101 1 1.00\n 0\xf10002 19970101 1 2.00\n 00003 19970101 1 3.00\n",
     2, "customer_id", 3),
])
def test_not_utf8_names_file_line_field_and_column_11(tmp_path: Path, loader, raw: bytes,
                                                      line: int, field: str,
                                                      column: int) -> None:
    p = tmp_path / "f.txt"
    p.write_bytes(raw)
    err = expect_error(loader, p, file=p, line=line, field=field)
    assert f"column {column} (counted in bytes from 1)" in str(err) and "UTF-8" in str(err)
    data = loader(p, strict=False)
    only_problem(data, p, line, field)
    assert len(data.edges[0].data) == raw.count(b"\n") - 1  # the other lines are read


def test_not_utf8_in_csv_loaders_11(tmp_path: Path) -> None:
    bad = H_ROWS[1].replace("Rural", "Rur\xe9l").encode("latin-1")
    p = tmp_path / "h.csv"
    p.write_bytes(H_HEADER.encode() + H_ROWS[0].encode() + b"\n" + bad + b"\n"
                  + H_ROWS[2].encode() + b"\n")
    err = expect_error(load_hillstrom, p, file=p, line=3, field="zip_code")
    assert f"column {bad.index(0xE9) + 1} (counted in bytes from 1)" in str(err)
    data = load_hillstrom(p, strict=False)
    only_problem(data, p, 3, "zip_code")
    assert list(nodes(data, "User")["id"]) == ["h1", "h3"]
    header = tmp_path / "header.csv"
    header.write_bytes(H_HEADER.replace("spend", "sp\xe9nd").encode("latin-1") + bad)
    for strict in (True, False):
        with pytest.raises(IngestError, match="header") as info:
            load_hillstrom(header, strict=strict)
        assert (info.value.file, info.value.line) == (str(header), 1)
    (tmp_path / "d").mkdir()
    folder = write_dunnhumby(tmp_path / "d")
    red = folder / "coupon_redempt.csv"
    red.write_bytes(b"household_key,day,coupon_upc,campaign\n7,12,100,1\n8,1\xff6,200,2\n")
    expect_error(load_dunnhumby, folder, file=red, line=3, field="day")
    only_problem(load_dunnhumby(folder, strict=False), red, 3, "day")


def test_bom_is_not_part_of_the_first_id_11(tmp_path: Path) -> None:
    r = edges(load_ratings(write(tmp_path, "r.txt", "\ufeffu1 i1 4\nu2 i2 5\n")), "RATED")
    assert list(r["src"]) == ["u1", "u2"] and r["eid"].iloc[0] == "u1:i1"
    c = edges(load_cdnow(write(tmp_path, "c.txt", "\ufeff" + C_HEADER + C_ROWS[0])), "PURCHASED")
    assert list(c["eid"]) == ["00001:19970101:0"]
    h = load_hillstrom(write(tmp_path, "h.csv", "\ufeff" + H_HEADER + H_ROWS[0]))
    assert list(nodes(h, "User")["recency"]) == [10.0]
    (tmp_path / "d").mkdir()
    folder = write_dunnhumby(tmp_path / "d", campaign_desc="\ufeff" + D_FILES["campaign_desc.csv"])
    assert list(nodes(load_dunnhumby(folder), "Campaign")["id"]) == ["1", "2"]


def test_ids_with_colons_do_not_collide_11(tmp_path: Path) -> None:
    p = write(tmp_path, "r.txt", "a:b c 1\na b:c 2\n50% x 3\n")
    data = load_ratings(p)
    assert not data.problems
    assert list(edges(data, "RATED")["eid"]) == ["a%3Ab:c", "a:b%3Ac", "50%25:x"]
    c = edges(load_cdnow(write(tmp_path, "c.txt", " a:1 19970101 1 1.00\n")), "PURCHASED")
    assert list(c["eid"]) == ["a%3A1:19970101:0"] and list(c["src"]) == ["a:1"]
    h = load_hillstrom(write(tmp_path, "h.csv", H_HEADER + "\n".join(H_ROWS)), campaign_id="c:1")
    assert list(edges(h, "HELD_OUT")["eid"]) == ["c%3A1:h2:held_out"]
    assert list(edges(h, "INCLUDES")["eid"]) == ["c%3A1:mens:includes", "c%3A1:womens:includes"]
    assert list(nodes(h, "Offer")["id"]) == ["c:1:mens", "c:1:womens"]  # node ids as before


@pytest.mark.parametrize("table, text, field", [
    ("coupon", "coupon_upc,product_id,campaign\n100,500,1\n١٢,500,2\n200,500,2\n",
     "coupon_upc"),
    ("campaign_table", "description,household_key,campaign\nTypeA,7,1\nTypeA,²,1\n",
     "household_key"),
])
def test_dunnhumby_ids_are_ascii_digits_11(tmp_path: Path, table: str, text: str,
                                           field: str) -> None:
    folder = write_dunnhumby(tmp_path, **{table: text})
    p = folder / f"{table}.csv"
    expect_error(load_dunnhumby, folder, file=p, line=3, field=field)
    only_problem(load_dunnhumby(folder, strict=False), p, 3, field)


def test_cdnow_dates_are_ascii_digits_11(tmp_path: Path) -> None:
    p = write(tmp_path, "m.txt", C_ROWS[0] + "\n 00002 ١٩٩٧٠١١٢  1   1.00\n")
    expect_error(load_cdnow, p, file=p, line=2, field="date")
