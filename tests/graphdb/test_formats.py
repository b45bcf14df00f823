"""Tests for the ratings, Hillstrom, CDNOW and dunnhumby loaders: real-data counts (skipped when
../shared/data is absent) and bad input on small files written to tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shopgraph.errors import IngestError
from shopgraph.graphdb.formats.cdnow import load_cdnow
from shopgraph.graphdb.formats.dunnhumby import load_dunnhumby
from shopgraph.graphdb.formats.hillstrom import load_hillstrom
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
