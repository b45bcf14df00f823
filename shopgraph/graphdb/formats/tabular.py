"""CSV and Parquet tables with a declared column mapping (a TOML file or a dict).

File paths are relative to the mapping file (or to ``base_dir`` for a dict)::

    name = "myshop"            # optional; default: the mapping's folder name
    create_missing = false     # optional: add id-only nodes for edge ends no table has
    [[nodes]]
    label = "Item"             # a label of schema.NODE_PROPERTIES
    file = "items.csv"         # .csv, .csv.gz, .parquet or .pq
    id = "sku"
    properties = { category = "cat", price = "unit_price" }   # property -> column
    [[edges]]
    rel = "PURCHASED"          # a type of schema.RELATIONSHIPS (it implies the end labels)
    file = "orders.parquet"
    src = "customer_id"
    dst = "sku"
    eid = "order_line"         # optional, as are ts, value and properties (arm, run_id)
    ts = "ordered_at"          # epoch seconds or ISO-8601 (naive = UTC)
    value = "amount"

Ids (id, src, dst, eid) are text exactly as written: ``"00042"`` stays, and so does a value
that is a double-quote character (quoted and doubled in the file, as ``csv`` and pandas write
it). An id holding a C0 control character (U+0000-U+001F) is a bad row. Without ``eid`` the
event id is ``event_id(rel, digest)`` = ``"<rel>:<digest>"``, the digest being the first 20 hex
digits of the SHA-256 of src, dst, ts and value joined by U+001F (which no id holds, so no two
rows' fields run together). Identical rows are one event, so a repeat is a duplicate (strict:
error; else skipped and reported). ``_line``: the CSV line (header = 1) where the record starts,
or the Parquet row (from 1). Edge ends absent from the node tables are no error here: ingest
checks the graph.

CSV files are UTF-8 (a BOM is dropped) with standard quoting (``"`` around a field, ``""``
inside one), read by Python's ``csv`` module: a record with more or fewer fields than the header
is a bad row (a short one is not filled with NA), as is a line that is not UTF-8 (named by line,
column and byte position); a record whose fields are all empty is a blank line. Values quoted
in messages are cut to a short prefix.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import re
import tomllib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pandas.api.types import is_numeric_dtype as is_num

from shopgraph.errors import IngestError
from shopgraph.graphdb import schema
from shopgraph.graphdb.formats.common import (
    RowSink,
    control_char_error,
    control_char_ids,
    csv_utf8_errors,
    event_id,
    missing_ts,
    nodes_from_ids,
    quote,
    require_columns,
    require_file,
    shorten,
)
from shopgraph.graphdb.frames import EDGE_COLUMNS, EdgeFrame, NodeFrame, SourceData

if TYPE_CHECKING:
    from _csv import Reader

SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")
_KEYS = {"nodes": (("label", "file", "id", "properties"),
                   [lab for lab in schema.NODE_PROPERTIES if lab != "IngestLog"]),
         "edges": (("rel", "file", "src", "dst", "eid", "ts", "value", "properties"),
                   list(schema.RELATIONSHIPS))}
_ROLES = {"id": "id", "src": "id", "dst": "id", "eid": "id", "ts": "ts", "value": float}
_EDGE_PROPS = {k: t for k, t in schema.REL_PROPERTIES.items() if k not in ("ts", "value")}
_NULLS = ("", "na", "n/a", "nan", "null", "none")  # missing, in typed columns (not ids, text)
_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
_EXPECT = {float: "a number", int: "an integer", bool: "true/false/1/0/yes/no",
           "ts": "epoch seconds or an ISO-8601 date"}
_FIELD_LIMIT = 2**31 - 1  # characters a CSV field may have (csv's default, 128 KiB, is too few)
_CHUNK_ROWS = 1 << 16  # CSV records held as Python lists before they become Arrow columns
BadRow = tuple[int, str, str]  # line, field, message


@dataclass(frozen=True)
class Table:
    """One table: ``kind`` (nodes/edges), label or type, file, and target -> column."""

    kind: str
    type: str
    file: Path
    columns: dict[str, str]  # id | src, dst, eid, ts, value | a property -> the file's column


@dataclass(frozen=True)
class Mapping:
    """A validated mapping; ``normalised`` is what goes into ``SourceData.options``."""

    name: str | None
    create_missing: bool
    tables: tuple[Table, ...]
    normalised: dict[str, Any]
    source: Path | None = None


def mapping_from_dict(d: dict[str, Any], base_dir: str | Path,
                      source: str | Path | None = None) -> Mapping:
    """Validate a mapping (shaped like the TOML file) without reading any data file.

    Args:
        d: the mapping.
        base_dir: the folder relative file paths are resolved against.
        source: the mapping file, named in errors.

    Raises:
        IngestError: a malformed mapping; ``field`` names the key, e.g. ``nodes[0].label``.
    """
    def need(ok: object, where: str, msg: str) -> None:
        if not ok:
            raise IngestError(f"bad mapping: {msg}", file=None if source is None else str(source),
                              field=where)

    def keys_ok(tab: dict[str, Any], allowed: Sequence[str], where: str) -> None:
        extra = next(iter(sorted(set(tab) - set(allowed))), "")
        need(not extra, where + shorten(extra),
             f"unknown key {quote(extra)}; allowed: {', '.join(allowed)}")

    def text(tab: dict[str, Any], key: str, where: str) -> str:
        v = tab.get(key)
        need(isinstance(v, str) and v, f"{where}.{key}", f"{key} must be a non-empty string, "
             f"got {quote(v)}" if key in tab else f"{where} needs the key {key!r}")
        assert isinstance(v, str)  # need() raised otherwise
        return v

    keys_ok(d, ("name", "create_missing", "nodes", "edges"), "")
    name, create = d.get("name"), d.get("create_missing", False)
    need(name is None or isinstance(name, str) and name, "name", "name must be a string")
    need(isinstance(create, bool), "create_missing", "create_missing must be true or false")
    tables, norm = [], {"name": name, "create_missing": create, "nodes": [], "edges": []}
    for kind, (keys, allowed) in _KEYS.items():
        tabs = d.get(kind, [])
        need(isinstance(tabs, list) and all(isinstance(t, dict) for t in tabs), kind,
             f"{kind} must be a list of tables ([[{kind}]])")
        for i, tab in enumerate(tabs):
            where, tkey = f"{kind}[{i}]", keys[0]
            keys_ok(tab, keys, where + ".")
            typ, file = text(tab, tkey, where), text(tab, "file", where)
            need(typ in allowed, f"{where}.{tkey}",
                 f"unknown {tkey} {quote(typ)}; allowed: {', '.join(allowed)}")
            need(file.lower().endswith(SUFFIXES), f"{where}.file",
                 f"{quote(file)} is not one of {', '.join(SUFFIXES)}")
            cols = {k: text(tab, k, where) for k in keys[2:-1]
                    if k in tab or k in ("id", "src", "dst")}
            props = tab.get("properties", {})
            need(isinstance(props, dict), f"{where}.properties",
                 "properties must be a table: property = column")
            known = schema.NODE_PROPERTIES[typ] if kind == "nodes" else _EDGE_PROPS
            for p in props:
                hint = " (use the ts/value keys)" if p in ("ts", "value") else ""
                need(p in known, f"{where}.properties.{shorten(p)}",
                     f"{typ} has no property {quote(p)}{hint}; allowed: {', '.join(known)}")
                text(props, p, f"{where}.properties")
            tables.append(Table(kind, typ, Path(base_dir) / file, {**cols, **props}))
            norm[kind].append({tkey: typ, "file": Path(file).as_posix(), **cols,
                               "properties": dict(sorted(props.items()))})
    need(tables, "nodes", "the mapping declares no [[nodes]] or [[edges]] tables")
    return Mapping(name, create, tuple(tables), norm, Path(source) if source else None)


def read_mapping(path: str | Path) -> Mapping:
    """Read and validate a TOML mapping file; paths in it are relative to its folder."""
    p = require_file(path)
    try:
        d = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        m = re.search(r"line (\d+)", str(e))
        raise IngestError(f"not a valid TOML file: {shorten(e, 200)}", file=str(p),
                          line=m and int(m[1])) from e
    return mapping_from_dict(d, p.parent, p)


def load_tabular(mapping: str | Path | dict[str, Any] | Mapping, *, strict: bool = True,
                 base_dir: str | Path | None = None, name: str | None = None) -> SourceData:
    """Load the CSV and Parquet tables a mapping declares.

    Args:
        mapping: a TOML mapping file, a mapping dict or a :class:`Mapping`.
        strict: raise on the first bad row instead of skipping it.
        base_dir: the folder a dict's file paths are relative to (default: the current one).
        name: the source's name (default: the mapping's ``name``, else its folder's name).

    Returns:
        Validated frames; ``files``: the mapping and data files; ``options["mapping"]``.

    Raises:
        IngestError: a bad mapping, missing file or column (any mode); strict: a bad row.
    """
    if isinstance(mapping, dict):
        mapping = mapping_from_dict(mapping, Path(base_dir or "."))
    elif not isinstance(mapping, Mapping):
        mapping = read_mapping(mapping)
    for t in mapping.tables:  # fail fast on mapping mistakes, before reading any data
        if not t.file.is_file():
            raise IngestError("no such file; check the mapping", file=str(t.file))
        if not t.file.stat().st_size:
            continue  # an empty file is reported as a bad row below
        try:
            names = (_csv_header(t.file) if _is_csv(t.file)
                     else pq.read_schema(t.file).names)
        except (ValueError, OSError, EOFError, csv.Error) as e:
            raise IngestError(f"unreadable: {shorten(e, 200)}", file=str(t.file), line=1) from e
        require_columns(pd.DataFrame(columns=names), list(t.columns.values()), str(t.file))
    folder = (src.parent if (src := mapping.source) else Path(base_dir or ".")).resolve()
    data = SourceData(name or mapping.name or folder.name,
                      ([src] if src else []) + list(dict.fromkeys(t.file for t in mapping.tables)),
                      options={"format": "tabular", "mapping": mapping.normalised})
    for t in mapping.tables:
        sink = RowSink(t.file, strict)
        if (df := _read(t.file, sink, list(dict.fromkeys(t.columns.values())))) is not None:
            if t.kind == "nodes":
                data.nodes.append(NodeFrame(t.type, _frame(t, df, sink), str(t.file)))
            else:
                data.edges.append(EdgeFrame(t.type, _frame(t, df, sink), str(t.file)))
        data.problems += sink.problems
    ends = [(lab, ef.data[end]) for ef in data.edges for end, lab in
            (("src", ef.src_label), ("dst", ef.dst_label))] if mapping.create_missing else []
    for label in dict.fromkeys(lab for lab, _ in ends):  # id-only nodes for unknown edge ends
        ids = pd.concat([ids for lab, ids in ends if lab == label], ignore_index=True)
        known = [nf.data["id"] for nf in data.nodes if nf.label == label]
        if len(ids := ids[~ids.isin(pd.concat(known) if known else [])]):
            data.nodes.append(nodes_from_ids(label, ids, str(src or "")))
    data.validate()
    return data


def _is_csv(path: Path) -> bool:
    """Whether ``path`` is a CSV file (``.csv`` or ``.csv.gz``), not Parquet."""
    return path.name.lower().endswith(SUFFIXES[:2])


@contextmanager
def _csv_reader(path: Path, errors: str) -> Iterator[Reader]:
    """A ``csv.reader`` of ``path`` (``.gz`` too), UTF-8 (``errors``: how to decode bytes that
    are not), a BOM dropped; its ``line_num`` counts lines ended by ``\\n`` alone."""
    how: dict[str, Any] = {"encoding": "utf-8-sig", "errors": errors, "newline": "\n"}
    text: TextIO = (gzip.open(path, "rt", **how) if path.name.lower().endswith(".gz")
                    else open(path, **how))
    with text:
        limit = csv.field_size_limit(_FIELD_LIMIT)
        try:
            yield csv.reader(text)
        finally:
            csv.field_size_limit(limit)


def _csv_header(path: Path) -> list[str]:
    """The CSV's column names; a header line that is not UTF-8 raises."""
    try:
        with _csv_reader(path, "strict") as reader:
            return next(reader, [])
    except UnicodeDecodeError:
        csv_utf8_errors(path, RowSink(path, strict=False), stop=1)  # raises if it is line 1
    with _csv_reader(path, "replace") as reader:
        return next(reader, [])


def _csv_rows(path: Path, columns: Sequence[str], not_utf8: set[int], strict: bool
              ) -> tuple[pd.DataFrame, list[BadRow]]:
    """:func:`_read_csv` in one pass: the rows, and the bad ones (strict: up to the first). The
    records on ``not_utf8`` lines are left out (reported already), as are blank ones."""
    bad: list[BadRow] = []
    parts: list[pa.Table] = []
    rows: list[list[str]] = []
    lines: list[int] = []
    with _csv_reader(path, "replace" if not_utf8 else "strict") as reader:
        header = next(reader, [])
        k, pick, chunk = len(header), [header.index(c) for c in columns], _CHUNK_ROWS
        first = reader.line_num + 1  # the line the next record starts on
        while True:
            try:
                for row in reader:
                    if not any(row) or not_utf8 and not not_utf8.isdisjoint(
                            range(first, reader.line_num + 1)):
                        pass  # no field holds a character (a blank line), or not UTF-8
                    elif len(row) == k:
                        rows.append(row)
                        lines.append(first)
                        if len(rows) == chunk:
                            parts.append(_arrow(rows, pick, columns))
                            rows = []
                    else:  # a short row is blamed on its first missing field
                        bad.append((first, shorten(header[min(len(row), k - 1)]),
                                    f"wrong number of fields: {len(row)}, the header has {k}"))
                        if strict:
                            break
                    first = reader.line_num + 1
                break
            except csv.Error as e:  # e.g. a lone carriage return in an unquoted field
                why = shorten(str(e).split(" - ")[0], 200)  # not csv's hint about open()
                bad.append((first, shorten(header[-1]), f"not valid CSV: {why}"))
                first = reader.line_num + 1
                if strict:
                    break
    parts.append(_arrow(rows, pick, columns))
    df = pa.concat_tables(parts).to_pandas()
    df = df.where(df != "")  # an empty field: NA
    df["_line"] = np.asarray(lines, dtype=np.int64)
    return df, bad


def _arrow(rows: list[list[str]], pick: list[int], columns: Sequence[str]) -> pa.Table:
    """Fields ``pick`` of records ``rows`` as a table of strings named ``columns``."""
    if not rows:
        return pa.table({c: pa.array([], pa.large_string()) for c in columns})
    records = pa.array(rows, pa.list_(pa.large_string()))
    return pa.table({c: pc.list_element(records, i) for c, i in zip(columns, pick)})


def _read_csv(path: Path, sink: RowSink, columns: Sequence[str]) -> pd.DataFrame:
    """The CSV's ``columns`` as text (an empty field: NA) with ``_line``; records with the wrong
    number of fields, that ``csv`` cannot parse or on a line that is not UTF-8 go to ``sink``."""
    scan = RowSink(path, strict=False)
    try:
        df, bad = _csv_rows(path, columns, set(), sink.strict)
    except UnicodeDecodeError:  # find the lines that are not UTF-8, then read around them
        df, bad = _csv_rows(path, columns, csv_utf8_errors(path, scan), sink.strict)
    sink.bad_rows([(p.line, p.field, p.message) for p in scan.problems] + bad)
    return df


def _read(path: Path, sink: RowSink, columns: Sequence[str]) -> pd.DataFrame | None:
    """The file's rows with ``_line``, or None (reported) when it has no data rows."""
    df = None
    if path.stat().st_size and not _is_csv(path):
        df = pd.read_parquet(path)
        df["_line"] = np.arange(1, len(df) + 1, dtype=np.int64)
    elif path.stat().st_size:
        df = _read_csv(path, sink, columns)
    if df is None or df.empty:
        sink.bad(1, shorten(columns[0]), "the file has no data rows")
    return None if df is None or df.empty else df


def _parse(kind: Any, s: pd.Series, t: pd.Series) -> pd.Series:
    """``s`` (with text ``t``) as ``kind``: "id", "ts" or a Python type; NA where it fails."""
    if kind not in (float, int, "ts"):
        return (t.str.strip().str.lower().map(_BOOLS).astype("boolean") if kind is bool
                else t.astype(str))
    epoch, sec = pd.Timestamp(0, tz="UTC"), pd.Timedelta(seconds=1)
    if kind == "ts" and pd.api.types.is_datetime64_any_dtype(s):
        dt = s.dt.tz_localize("UTC") if s.dt.tz is None else s.dt.tz_convert("UTC")
        return ((dt - epoch) // sec).astype("Int64")
    num = pd.to_numeric(s if is_num(s) else t, errors="coerce").astype("float64")
    num = num.where(np.isfinite(num))
    if kind is int:
        num = num.where(num == np.floor(num))
    if kind == "ts" and (rest := num.isna() & t.notna()).any():
        num[rest] = (pd.to_datetime(t[rest], format="ISO8601", utc=True, errors="coerce")
                     - epoch) // sec
    return num if kind is float else np.floor(num).astype("Int64")


def _convert(out: pd.DataFrame, raw: pd.DataFrame, target: str, col: str, kind: Any,
             sink: RowSink, what: str) -> pd.DataFrame:
    """Convert ``raw[col]`` into ``out[target]``; drop (and report) the rows that fail."""
    s, fin = raw.loc[out.index, col], raw[col].dropna()
    if pd.api.types.is_float_dtype(s) and (fin == np.floor(fin)).all() and np.isfinite(fin).all():
        s = s.astype("Int64")  # Parquet integers with nulls: "42", not "42.0"
    t = s.astype("string")
    present = t.notna() & ~t.str.strip().str.lower().isin(("",) if kind in ("id", str) else _NULLS)
    conv = _parse(kind, s, t)
    bad = ~present | control_char_ids(t) if kind == "id" else present & conv.isna()
    out = out.assign(**{target: conv})
    for i in out.index[bad][: 1 if sink.strict else None]:
        sink.bad(int(out.at[i, "_line"]), shorten(col),
                 _why(kind, what, s.at[i], bool(present.at[i])))
    return out.loc[~bad]


def _why(kind: Any, what: str, value: object, present: bool) -> str:
    """Why ``value`` (in a ``what`` column of ``kind``) makes its row bad."""
    if kind != "id":
        return f"{what}: expected {_EXPECT[kind]}, got {quote(value)}"
    return control_char_error(what, value) if present else f"empty {what}; every row needs one"


def _drop_dups(out: pd.DataFrame, key: str, sink: RowSink, col: str, what: str) -> pd.DataFrame:
    dup = out[key].duplicated(keep="first")
    first = out.loc[~dup].set_index(key)["_line"] if dup.any() else None
    for i, k in out.loc[dup, key].iloc[: 1 if sink.strict else None].items():
        assert first is not None  # set whenever there is a duplicate
        sink.bad(int(out.at[i, "_line"]), shorten(col),
                 f"duplicate {what} {quote(k)} (first on line {first[k]})")
    return out.loc[~dup]


def _frame(t: Table, df: pd.DataFrame, sink: RowSink) -> pd.DataFrame:
    """Convert and check one table's rows into a node or edge frame."""
    out, c = df[["_line"]], t.columns
    types = schema.NODE_PROPERTIES[t.type] if t.kind == "nodes" else _EDGE_PROPS
    for target, col in c.items():
        out = _convert(out, df, target, col, _ROLES.get(target) or types[target], sink,
                       f"{t.type} {target}")
    props = [k for k in c if k not in _ROLES]
    if t.kind == "nodes":
        out = _drop_dups(out, "id", sink, c["id"], f"{t.type} id")
        return out[["id", *props, "_line"]].reset_index(drop=True)
    out = out.assign(**{k: v for k, v in (("ts", missing_ts(len(out))), ("value", np.nan))
                        if k not in c})
    if "eid" in c:
        out = _drop_dups(out, "eid", sink, c["eid"], f"{t.type} event id")
    else:
        keys = (out["src"].astype("string") + "\x1f" + out["dst"].astype("string") + "\x1f"
                + out["ts"].astype("string").fillna("") + "\x1f"
                + out["value"].astype("string").fillna(""))  # floats as repr()
        out = out.assign(eid=[event_id(t.type, hashlib.sha256(k.encode()).hexdigest()[:20])
                              for k in keys])
        out = _drop_dups(out, "eid", sink, c["src"], f"{t.type} event (a row with the same "
                         f"{quote(c['src'])}, {quote(c['dst'])}, ts and value is the same "
                         "event), derived id")
    return out[[*EDGE_COLUMNS, *props, "_line"]].reset_index(drop=True)

