"""Tests for the CSV/Parquet loader with a declared column mapping."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shopgraph.errors import IngestError
from shopgraph.graphdb.export import export_interactions
from shopgraph.graphdb.formats.tabular import load_tabular, mapping_from_dict, read_mapping
from shopgraph.graphdb.ingest import ingest
from shopgraph.graphdb.store import GraphStore

MAPPING = """\
name = "myshop"

[[nodes]]
label = "Item"
file = "items.{ext}"
id = "sku"
properties = {{ category = "cat", price = "unit_price" }}

[[nodes]]
label = "User"
file = "users.{ext}"
id = "uid"
properties = {{ consent = "opt_in", mens = "mens" }}

[[edges]]
rel = "PURCHASED"
file = "orders.{ext}"
src = "uid"
dst = "sku"
eid = "line_id"
ts = "at"
value = "amount"
properties = {{ arm = "variant" }}

[[edges]]
rel = "VIEWED"
file = "views.{ext}"
src = "uid"
dst = "sku"
ts = "at"
"""

ITEMS = "sku,cat,unit_price\n00042,shoes,19.5\n7,hats,5\n"
USERS = "uid,opt_in,mens\nu1,yes,1\nu2,False,\n"
ORDERS = ("line_id,uid,sku,at,amount,variant\n"
          "o1,u1,00042,2024-01-05,19.5,A\n"
          "o2,u2,7,2024-01-05T10:00:00+02:00,5,B\n")
VIEWS = "uid,sku,at\nu1,00042,2024-01-04T12:00:00\nu1,7,1704370000\n"
D0105 = 1704412800  # 2024-01-05T00:00:00Z


def write_shop(tmp: Path, ext: str = "csv", **overrides: str) -> Path:
    """Write the small shop (CSV text, converted to Parquet when asked) and its mapping."""
    files = {"items": ITEMS, "users": USERS, "orders": ORDERS, "views": VIEWS, **overrides}
    for stem, text in files.items():
        if ext == "csv":
            (tmp / f"{stem}.csv").write_text(text)
        else:
            pd.read_csv(io.StringIO(text), dtype=str).to_parquet(tmp / f"{stem}.parquet")
    (tmp / "mapping.toml").write_text(MAPPING.format(ext=ext))
    return tmp / "mapping.toml"


@pytest.mark.parametrize("ext", ["csv", "parquet"])
def test_round_trip(tmp_path: Path, ext: str) -> None:
    data = load_tabular(write_shop(tmp_path, ext))
    assert data.name == "myshop" and not data.problems
    assert data.files[0] == tmp_path / "mapping.toml"
    assert [p.name for p in data.files[1:]] == [f"{s}.{ext}" for s in
                                                ("items", "users", "orders", "views")]
    assert data.options["format"] == "tabular"
    assert data.options["mapping"]["edges"][1] == {"rel": "VIEWED", "file": f"views.{ext}",
                                                   "src": "uid", "dst": "sku", "ts": "at",
                                                   "properties": {}}
    items, users = (nf.data for nf in data.nodes)
    assert [nf.label for nf in data.nodes] == ["Item", "User"]
    pd.testing.assert_frame_equal(items, pd.DataFrame(
        {"id": ["00042", "7"], "category": ["shoes", "hats"], "price": [19.5, 5.0],
         "_line": np.array([2, 3] if ext == "csv" else [1, 2], np.int64)}), check_dtype=False)
    assert list(users["id"]) == ["u1", "u2"]
    assert list(users["consent"]) == [True, False]
    assert users["mens"].tolist()[0] == 1 and pd.isna(users["mens"].iloc[1])
    buys, views = data.edges
    assert (buys.rel, buys.src_label, buys.dst_label) == ("PURCHASED", "User", "Item")
    pd.testing.assert_frame_equal(buys.data, pd.DataFrame(
        {"src": ["u1", "u2"], "dst": ["00042", "7"], "eid": ["o1", "o2"],
         "ts": pd.array([D0105, D0105 + 8 * 3600], dtype="Int64"), "value": [19.5, 5.0],
         "arm": ["A", "B"], "_line": np.array([2, 3] if ext == "csv" else [1, 2], np.int64)}),
        check_dtype=False)
    assert str(buys.data["ts"].dtype) == "Int64" and buys.data["value"].dtype == np.float64
    assert views.data["ts"].tolist() == [D0105 - 12 * 3600, 1704370000]
    assert views.data["value"].isna().all()
    key = "\x1f".join(["u1", "00042", str(D0105 - 12 * 3600), ""])  # value missing
    assert views.data["eid"][0] == "VIEWED:" + hashlib.sha256(key.encode()).hexdigest()[:20]
    assert views.data["eid"].nunique() == 2


def test_derived_eid_same_for_csv_and_parquet(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    csv = load_tabular(write_shop(tmp_path / "a", "csv")).edges[1].data["eid"]
    pq = load_tabular(write_shop(tmp_path / "b", "parquet")).edges[1].data["eid"]
    assert csv.tolist() == pq.tolist()


def test_parquet_int_ids_and_datetimes(tmp_path: Path) -> None:
    pd.DataFrame({"uid": [1, 2], "sku": [42.0, None],
                  "at": pd.to_datetime(["2024-01-05 00:00", "2024-01-05 01:00"])}
                 ).to_parquet(tmp_path / "v.parquet")
    m = {"edges": [{"rel": "VIEWED", "file": "v.parquet", "src": "uid", "dst": "sku",
                    "ts": "at"}]}
    data = load_tabular(m, base_dir=tmp_path, strict=False)
    df = data.edges[0].data
    assert df[["src", "dst"]].values.tolist() == [["1", "42"]]
    assert df["ts"].tolist() == [D0105]
    assert [(p.line, p.field) for p in data.problems] == [(2, "sku")]
    assert data.name == tmp_path.name and data.files == [tmp_path / "v.parquet"]


def test_csv_gz_bom_crlf_and_null_tokens(tmp_path: Path) -> None:
    text = "\ufeffsku,cat,unit_price\r\nNA,NA,NA\r\n002,,null\r\n003,x,1.5\r\n"
    (tmp_path / "i.csv.gz").write_bytes(gzip.compress(text.encode()))
    m = {"nodes": [{"label": "Item", "file": "i.csv.gz", "id": "sku",
                    "properties": {"category": "cat", "price": "unit_price"}}]}
    df = load_tabular(m, base_dir=tmp_path).nodes[0].data
    assert df["id"].tolist() == ["NA", "002", "003"]  # ids and text are kept as written
    assert df["category"].tolist()[0] == "NA" and pd.isna(df["category"][1])
    assert df["price"].isna().tolist() == [True, True, False]  # NA/null: a missing number
    assert df["_line"].tolist() == [2, 3, 4]


def test_parquet_typed_columns(tmp_path: Path) -> None:
    at = pd.to_datetime(["2024-01-05 01:00", "2024-01-05 02:00"]).tz_localize("Europe/Berlin")
    pd.DataFrame({"uid": ["u1", "u2"], "ok": [True, None], "mens": [1, 2], "at": at,
                  "spend": [3, 4]}).to_parquet(tmp_path / "u.parquet")
    m = {"nodes": [{"label": "User", "file": "u.parquet", "id": "uid",
                    "properties": {"consent": "ok", "mens": "mens", "zip_code": "mens"}}],
         "edges": [{"rel": "CONVERTED", "file": "u.parquet", "src": "uid", "dst": "uid",
                    "ts": "at", "value": "spend", "properties": {"run_id": "mens"}}]}
    data = load_tabular(m, base_dir=tmp_path)
    users, conv = data.nodes[0].data, data.edges[0].data
    assert users["consent"].tolist()[0] is True and pd.isna(users["consent"][1])
    assert users["mens"].tolist() == [1, 2] and users["zip_code"].tolist() == ["1", "2"]
    assert conv["ts"].tolist() == [D0105, D0105 + 3600]  # 01:00 Berlin = 00:00 UTC
    assert conv["value"].tolist() == [3.0, 4.0] and conv["run_id"].tolist() == ["1", "2"]


def test_create_missing(tmp_path: Path) -> None:
    path = write_shop(tmp_path, views="uid,sku,at\nu9,00042,1\nu1,x1,2\nu9,x1,3\n")
    text = path.read_text().replace('name = "myshop"', "create_missing = true")
    path.write_text(text)
    data = load_tabular(path)
    extra = {nf.label: nf.data["id"].tolist() for nf in data.nodes[2:]}
    assert extra == {"User": ["u9"], "Item": ["x1"]}
    assert all((nf.data["_line"] == 0).all() for nf in data.nodes[2:])
    assert data.name == tmp_path.name
    # without it the unknown ends stay in the edges for ingest to check
    assert len(load_tabular(write_shop(tmp_path, views="uid,sku,at\nu9,x1,1\n")).nodes) == 2


def test_multiline_quoted_and_blank_lines_keep_line_numbers(tmp_path: Path) -> None:
    items = 'sku,cat,unit_price\n"a","two\nlines",1\n\nb,c,oops\n'
    data = load_tabular(write_shop(tmp_path, items=items), strict=False)
    assert [(p.line, p.field) for p in data.problems] == [(5, "unit_price")]
    assert data.nodes[0].data["_line"].tolist() == [2]


def test_ragged_row(tmp_path: Path) -> None:
    items = 'sku,cat,unit_price\na,"x\ny",1\nb,c,2,extra\nc,d,3\n'
    with pytest.raises(IngestError) as e:
        load_tabular(write_shop(tmp_path, items=items))
    assert e.value.line == 4
    data = load_tabular(write_shop(tmp_path, items=items), strict=False)
    assert [(p.line, p.field) for p in data.problems] == [(4, "unit_price")]
    assert data.nodes[0].data[["id", "_line"]].values.tolist() == [["a", 2], ["c", 5]]


# each case: (file stem, bad text, line, field); the good rows must survive in skip mode
BAD_ROWS = [
    ("items", "sku,cat,unit_price\nk1,a,1\nk2,b,cheap\nk3,c,3\n", 3, "unit_price", "Item", 2),
    ("items", "sku,cat,unit_price\nk1,a,1\n,b,2\nk3,c,3\n", 3, "sku", "Item", 2),
    ("items", "sku,cat,unit_price\nk1,a,1\nk1,b,2\nk3,c,3\n", 3, "sku", "Item", 2),
    ("users", "uid,opt_in,mens\nu1,yes,1\nu2,maybe,1\n", 3, "opt_in", "User", 1),
    ("users", "uid,opt_in,mens\nu1,yes,1\nu2,no,1.5\n", 3, "mens", "User", 1),
    ("orders", ORDERS + "o3,u1,7,yesterday,1,A\n", 4, "at", "PURCHASED", 2),
    ("orders", ORDERS + "o3,u1,7,2024-01-05,1 EUR,A\n", 4, "amount", "PURCHASED", 2),
    ("orders", ORDERS + "o2,u1,7,2024-01-05,1,A\n", 4, "line_id", "PURCHASED", 2),
    ("orders", ORDERS + "o3,,7,2024-01-05,1,A\n", 4, "uid", "PURCHASED", 2),
    ("orders", ORDERS + "o3,u1,,2024-01-05,1,A\n", 4, "sku", "PURCHASED", 2),
    ("orders", ORDERS + ",u1,7,2024-01-05,1,A\n", 4, "line_id", "PURCHASED", 2),
    ("views", VIEWS + "u1,00042,2024-01-04T12:00:00\n", 4, "uid", "VIEWED", 2),
]


@pytest.mark.parametrize("ext", ["csv", "parquet"])
@pytest.mark.parametrize(("stem", "text", "line", "col", "typ", "kept"), BAD_ROWS)
def test_bad_rows(tmp_path: Path, ext: str, stem: str, text: str, line: int, col: str,
                  typ: str, kept: int) -> None:
    path = write_shop(tmp_path, ext, **{stem: text})
    row = line if ext == "csv" else line - 1
    with pytest.raises(IngestError) as e:
        load_tabular(path)
    assert (e.value.file, e.value.line, e.value.field) == (
        str(tmp_path / f"{stem}.{ext}"), row, col)
    data = load_tabular(path, strict=False)
    assert [(p.file, p.line, p.field) for p in data.problems] == [
        (str(tmp_path / f"{stem}.{ext}"), row, col)]
    frame = next(f for f in [*data.nodes, *data.edges] if getattr(f, "label", None) == typ
                 or getattr(f, "rel", None) == typ)
    assert len(frame.data) == kept and row not in frame.data["_line"].tolist()


@pytest.mark.parametrize("text", ["", "sku,cat,unit_price\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    path = write_shop(tmp_path, items=text)
    with pytest.raises(IngestError) as e:
        load_tabular(path)
    assert (e.value.file, e.value.line, e.value.field) == (str(tmp_path / "items.csv"), 1, "sku")
    data = load_tabular(path, strict=False)
    assert [(p.line, p.field) for p in data.problems] == [(1, "sku")]
    assert [nf.label for nf in data.nodes] == ["User"] and len(data.edges) == 2


def test_empty_parquet(tmp_path: Path) -> None:
    path = write_shop(tmp_path, "parquet")
    pd.DataFrame({"sku": pd.Series([], dtype=str), "cat": [], "unit_price": []}).to_parquet(
        tmp_path / "items.parquet")
    with pytest.raises(IngestError, match="no data rows") as e:
        load_tabular(path)
    assert (e.value.line, e.value.field) == (1, "sku")


@pytest.mark.parametrize("ext", ["csv", "parquet"])
def test_missing_column(tmp_path: Path, ext: str) -> None:
    path = write_shop(tmp_path, ext, items="sku,category,unit_price\na,b,1\n")
    for strict in (True, False):
        with pytest.raises(IngestError) as e:
            load_tabular(path, strict=strict)
        assert (e.value.file, e.value.line, e.value.field) == (
            str(tmp_path / f"items.{ext}"), 1, "cat")


@pytest.mark.parametrize(("edit", "fieldname", "match"), [
    (('rel = "VIEWED"', 'rel = "LIKED"'), "edges[1].rel", "unknown rel 'LIKED'"),
    (('label = "Item"', 'label = "Product"'), "nodes[0].label", "unknown label"),
    (("category =", "colour ="), "nodes[0].properties.colour", "no property 'colour'"),
    (('{ arm = "variant" }', '{ ts = "at" }'), "edges[0].properties.ts", "ts/value keys"),
    (('dst = "sku"\neid', 'eid'), "edges[0].dst", "needs the key 'dst'"),
    (('file = "views.csv"', 'file = "views.xlsx"'), "edges[1].file", "not one of"),
    (('name = "myshop"', 'nmae = "x"'), "nmae", "unknown key"),
])
def test_bad_mapping_fails_before_reading(tmp_path: Path, edit: tuple[str, str],
                                          fieldname: str, match: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_shop(tmp_path)
    path.write_text(path.read_text().replace(*edit, 1))
    monkeypatch.setattr(pd, "read_csv", lambda *a, **k: pytest.fail("a data file was read"))
    with pytest.raises(IngestError, match=match) as e:
        load_tabular(path, strict=False)
    assert (e.value.file, e.value.field) == (str(path), fieldname)


def test_mapping_from_dict(tmp_path: Path) -> None:
    m = mapping_from_dict({"nodes": [{"label": "Item", "file": "i.csv", "id": "sku",
                                      "properties": {"price": "p"}}]}, tmp_path)
    assert m.tables[0].file == tmp_path / "i.csv"
    assert m.tables[0].columns == {"id": "sku", "price": "p"}
    assert m.normalised == {"name": None, "create_missing": False, "edges": [], "nodes": [
        {"label": "Item", "file": "i.csv", "id": "sku", "properties": {"price": "p"}}]}
    for bad, fieldname in [({}, "nodes"), ({"create_missing": "yes"}, "create_missing"),
                           ({"nodes": {"label": "Item"}}, "nodes"),
                           ({"edges": [{"rel": "VIEWED", "file": "v.csv", "src": 1,
                                        "dst": "d"}]}, "edges[0].src"),
                           ({"nodes": [{"label": "IngestLog", "file": "i.csv", "id": "x"}]},
                            "nodes[0].label")]:
        with pytest.raises(IngestError) as e:
            mapping_from_dict(bad, tmp_path)
        assert e.value.field == fieldname and e.value.file is None


def test_missing_data_file_and_bad_toml(tmp_path: Path) -> None:
    path = write_shop(tmp_path)
    (tmp_path / "views.csv").unlink()
    with pytest.raises(IngestError, match="no such file") as e:
        load_tabular(path, strict=False)
    assert e.value.file == str(tmp_path / "views.csv")
    path.write_text(textwrap.dedent("""\
        name = "x"
        [[nodes]
        """))
    with pytest.raises(IngestError, match="TOML") as e:
        read_mapping(path)
    assert e.value.line == 2


# --- issue 11: event ids, encodings, echoed values ------------------------------------------

def test_derived_eids_keep_fields_apart_11(tmp_path: Path) -> None:
    views = "uid,sku,at\na,bc,1\nab,c,1\nu:1,50%,1\n"
    path = write_shop(tmp_path, views=views)
    path.write_text(path.read_text().replace('name = "myshop"', "create_missing = true"))
    data = load_tabular(path)
    eids = data.edges[1].data["eid"].tolist()
    assert not data.problems and len(set(eids)) == 3
    # fields joined by U+001F, which no id holds (':' and '%' included): "<rel>:" + digest
    for eid, (uid, sku) in zip(eids, [("a", "bc"), ("ab", "c"), ("u:1", "50%")]):
        key = "\x1f".join([uid, sku, "1", ""])
        assert eid == "VIEWED:" + hashlib.sha256(key.encode()).hexdigest()[:20]


@pytest.mark.parametrize("gz", [False, True])
def test_not_utf8_row_is_a_bad_row_11(tmp_path: Path, gz: bool) -> None:
    raw = "sku,cat,unit_price\nk1,a,1\nk2,b\xe9,2\n\"k3\",\"c\nd\",3\nk4,\"xy\nz\xff\",4\nk5,e,5\n"
    path = write_shop(tmp_path)
    name = "items.csv.gz" if gz else "items.csv"
    body = raw.encode("latin-1")
    (tmp_path / name).write_bytes(gzip.compress(body) if gz else body)
    path.write_text(path.read_text().replace('"items.csv"', f'"{name}"'))
    with pytest.raises(IngestError) as e:
        load_tabular(path)
    assert (e.value.file, e.value.line, e.value.field) == (str(tmp_path / name), 3, "cat")
    assert "column 5 (counted in bytes from 1)" in str(e.value)
    data = load_tabular(path, strict=False)
    assert [(p.line, p.field) for p in data.problems] == [(3, "cat"), (7, "cat")]
    items = data.nodes[0].data
    assert items["id"].tolist() == ["k1", "k3", "k5"]  # k4's bad byte is on its 2nd line
    assert items["_line"].tolist() == [2, 4, 8]


def test_not_utf8_header_11(tmp_path: Path) -> None:
    path = write_shop(tmp_path)
    (tmp_path / "items.csv").write_bytes(b"sku,c\xe9t,unit_price\nk1,a,1\n")
    for strict in (True, False):
        with pytest.raises(IngestError, match="header") as e:
            load_tabular(path, strict=strict)
        assert (e.value.file, e.value.line) == (str(tmp_path / "items.csv"), 1)
    (tmp_path / "items.csv").write_bytes(b"\xef\xbb\xbfsku,cat,unit_price\n" + b"k,a,1\n" * 40_000
                                         + b"k9,\xff,1\n")  # far beyond pandas' first buffer
    with pytest.raises(IngestError) as e:
        load_tabular(path)
    assert (e.value.line, e.value.field) == (40_002, "cat")


def test_long_values_are_echoed_short_11(tmp_path: Path) -> None:
    giant = "9" * 10 + "x" * 5_000_000
    path = write_shop(tmp_path, items=f"sku,cat,unit_price\nk1,a,{giant}\n")
    with pytest.raises(IngestError) as e:
        load_tabular(path)
    assert e.value.field == "unit_price" and len(str(e.value)) < 300 + len(str(path))
    assert "…(5000010 chars)" in str(e.value)
    path = write_shop(tmp_path, items=f"sku,cat,unit_price\n{giant},a,1\n{giant},b,2\n")
    with pytest.raises(IngestError, match="duplicate") as e:
        load_tabular(path)
    assert len(str(e.value)) < 300 + len(str(path))
    for bad in ({"nodes": [{"label": "L" * 100_000, "file": "i.csv", "id": "x"}]},
                {"nodes": [{"label": "Item", "file": "i.csv", "id": "x",
                            "properties": {"p" * 100_000: "c"}}]},
                {"k" * 100_000: 1}):
        with pytest.raises(IngestError) as e:
            mapping_from_dict(bad, tmp_path)
        assert len(str(e.value)) < 500


@pytest.mark.parametrize("price", ["١٢", "²", "٣.٥"])
def test_numbers_are_ascii_digits_11(tmp_path: Path, price: str) -> None:
    path = write_shop(tmp_path, items=f"sku,cat,unit_price\nk1,a,1\nk2,b,{price}\n")
    with pytest.raises(IngestError) as e:
        load_tabular(path)
    assert (e.value.line, e.value.field) == (3, "unit_price")


# --- issue 11: ragged rows, ids exactly as written, control characters ----------------------

def csv_text(rows: list[list[str]]) -> str:
    """Rows written as the csv module writes them by default (quoting what needs it)."""
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue()


# items file, bad line, field blamed, the (id, line)s kept in skip mode
RAGGED = [
    # a short row is not filled with NA: it is blamed on its first missing field
    ("sku,cat,unit_price\nk1,a,1\nk2,b\nk3,c,3\n", 3, "unit_price", [["k1", 2], ["k3", 4]]),
    ("sku,cat,unit_price\nk1,a,1\nk2\nk3,c,3\n", 3, "cat", [["k1", 2], ["k3", 4]]),
    # a long first row (pandas took its first field for an index and shifted the others)
    ("sku,cat,unit_price\nk1,a,1,x\nk2,b,2\n", 2, "unit_price", [["k2", 3]]),
    ("sku,cat,unit_price\nk1,a,1,\nk2,b,2\n", 2, "unit_price", [["k2", 3]]),
    # after a quoted line break; empty fields are fields, a line of commas is blank
    ('sku,cat,unit_price\nk1,"a\nb",1\nk2,b\nk3,,\n,,\n', 4, "unit_price", [["k1", 2], ["k3", 5]]),
]


@pytest.mark.parametrize(("items", "line", "col", "kept"), RAGGED)
def test_ragged_rows_are_bad_rows_11(tmp_path: Path, items: str, line: int, col: str,
                                     kept: list[list[object]]) -> None:
    path = write_shop(tmp_path, items=items)
    with pytest.raises(IngestError, match="wrong number of fields") as e:
        load_tabular(path)
    assert (e.value.file, e.value.line, e.value.field) == (str(tmp_path / "items.csv"), line, col)
    data = load_tabular(path, strict=False)
    assert [(p.line, p.field) for p in data.problems] == [(line, col)]
    assert data.nodes[0].data[["id", "_line"]].values.tolist() == kept


ODD_IDS = ['"', '""', '"a', 'a"b', "000", "007", "0", "00", " x ", "x,y", "é中", "NA", "1e3"]


@pytest.mark.parametrize("writer", ["csv", "csv-all", "pandas", "parquet"])
def test_ids_round_trip_as_written_11(tmp_path: Path, store: GraphStore, writer: str) -> None:
    """Quote characters and leading zeros survive CSV quoting, the loader, ingest and export."""
    pairs = list(zip(ODD_IDS, reversed(ODD_IDS)))
    rows = [["uid", "sku", "amount"], *([u, i, "1"] for u, i in pairs)]
    ext = "parquet" if writer == "parquet" else "csv"
    if writer == "parquet":
        pd.DataFrame(rows[1:], columns=rows[0]).to_parquet(tmp_path / "b.parquet")
    elif writer == "pandas":
        pd.DataFrame(rows[1:], columns=rows[0]).to_csv(tmp_path / "b.csv", index=False)
    else:
        with open(tmp_path / "b.csv", "w", newline="") as fh:
            quoting = csv.QUOTE_ALL if writer == "csv-all" else csv.QUOTE_MINIMAL
            csv.writer(fh, quoting=quoting).writerows(rows)
    m = {"create_missing": True, "edges": [{"rel": "PURCHASED", "file": f"b.{ext}",
                                            "src": "uid", "dst": "sku", "value": "amount"}]}
    data = load_tabular(m, base_dir=tmp_path)
    assert not data.problems
    assert data.edges[0].data[["src", "dst"]].values.tolist() == [list(p) for p in pairs]
    ingest(store, data)
    x = export_interactions(store, ["PURCHASED"])
    assert set(zip(x.user_ids[x.users].tolist(), x.item_ids[x.items].tolist())) == set(pairs)


# file, rows (CONTROL marks where the character goes), bad line (CSV), field, frame, rows kept
CONTROL = "\0"
CONTROL_ROWS = [
    ("items", [["sku", "cat", "unit_price"], ["k1", "a", "1"], ["k\0 2", "b", "2"],
               ["k3", "c", "3"]], 3, "sku", "Item", 2),
    ("orders", [ORDERS.split("\n")[0].split(","), ["o1", "u1", "00042", "1", "2", "A"],
                ["o2", "u\0", "7", "1", "2", "A"], ["o3", "u2", "7", "1", "2", "B"]],
     3, "uid", "PURCHASED", 2),
    ("orders", [ORDERS.split("\n")[0].split(","), ["o1", "u1", "00042", "1", "2", "A"],
                ["o\0", "u1", "7", "1", "2", "A"]], 3, "line_id", "PURCHASED", 1),
    ("views", [["uid", "sku", "at"], ["u1", "00042", "1"], ["u1", "\0" + "7", "2"]],
     3, "sku", "VIEWED", 1),
]


@pytest.mark.parametrize("ext", ["csv", "parquet"])
@pytest.mark.parametrize(("char", "stem", "rows", "line", "col", "typ", "kept"), [
    (char, *case) for char, case in zip("\x00\x1f\t\x1e\n\x01\r\x1b", CONTROL_ROWS * 2)])
def test_ids_with_control_characters_are_bad_rows_11(
        tmp_path: Path, ext: str, char: str, stem: str, rows: list[list[str]], line: int,
        col: str, typ: str, kept: int) -> None:
    path = write_shop(tmp_path, ext)
    rows = [[f.replace(CONTROL, char) for f in r] for r in rows]
    bad_file = tmp_path / f"{stem}.{ext}"
    if ext == "csv":
        bad_file.write_text(csv_text(rows), newline="")
    else:
        pd.DataFrame(rows[1:], columns=rows[0]).to_parquet(bad_file)
        line -= 1
    with pytest.raises(IngestError, match=f"U\\+{ord(char):04X} at character") as e:
        load_tabular(path)
    assert (e.value.file, e.value.line, e.value.field) == (str(bad_file), line, col)
    assert "ids may not hold control characters" in str(e.value)
    data = load_tabular(path, strict=False)
    assert [(p.file, p.line, p.field) for p in data.problems] == [(str(bad_file), line, col)]
    frame = next(f for f in [*data.nodes, *data.edges] if getattr(f, "label", None) == typ
                 or getattr(f, "rel", None) == typ)
    assert len(frame.data) == kept and line not in frame.data["_line"].tolist()


def test_echoed_ids_and_columns_are_cut_11(tmp_path: Path) -> None:
    """A giant id with a control character, and a giant column name in a duplicate's message:
    each is shown in about 40 characters."""
    giant = "x" * 1_000_000 + "\x1f"
    path = write_shop(tmp_path, items=f"sku,cat,unit_price\n{giant},a,1\n")
    with pytest.raises(IngestError, match=r"U\+001F at character 1000001") as e:
        load_tabular(path)
    assert len(str(e.value)) < 300 + len(str(path))
    col = "c" * 100_000
    (tmp_path / "v.csv").write_text(f"{col},sku,at\nu1,k,1\nu1,k,1\n")
    m = {"edges": [{"rel": "VIEWED", "file": "v.csv", "src": col, "dst": "sku", "ts": "at"}]}
    with pytest.raises(IngestError, match="duplicate") as e:
        load_tabular(m, base_dir=tmp_path)
    assert e.value.line == 3 and len(str(e.value)) < 400 + len(str(tmp_path))


def test_lone_carriage_return_is_a_bad_row_11(tmp_path: Path) -> None:
    path = write_shop(tmp_path, items="sku,cat,unit_price\nk1,a\rb,1\nk2,b,2\n")
    with pytest.raises(IngestError, match="not valid CSV") as e:
        load_tabular(path)
    assert (e.value.line, e.value.field) == (2, "unit_price")
    data = load_tabular(path, strict=False)
    assert data.nodes[0].data[["id", "_line"]].values.tolist() == [["k2", 3]]
