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

Ids are kept as written ("00042" stays). Without ``eid`` the event id is
``event_id(rel, digest)`` = ``"<rel>:<digest>"``, the digest being the first 20 hex digits of the
SHA-256 of src, dst, ts and value joined by U+001F, in which a U+001E or U+001F inside src or dst
is written U+001E "0" / U+001E "1" so that no two rows' fields run together (ids without those two
control characters hash exactly as in earlier versions). Identical rows are one event, so a
repeat is a duplicate (strict: error; else skipped and reported). ``_line``: the CSV line
(header = 1) or Parquet row (from 1). Edge ends absent from the node tables are no error here:
ingest checks the graph. CSV files are UTF-8 (a BOM is dropped); a line that is not is a bad row
named by line, column and byte position. Values quoted in messages are cut to a short prefix.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from pandas.api.types import is_numeric_dtype as is_num

from shopgraph.errors import IngestError
from shopgraph.graphdb import schema
from shopgraph.graphdb.formats.common import (
    RowSink,
    csv_utf8_errors,
    event_id,
    missing_ts,
    nodes_from_ids,
    quote,
    read_csv_text,
    require_columns,
    require_file,
    shorten,
)
from shopgraph.graphdb.frames import EDGE_COLUMNS, EdgeFrame, NodeFrame, SourceData

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
_CSV: dict[str, Any] = {"dtype": str, "keep_default_na": False, "na_values": [""]}
_ESCAPE_KEY = str.maketrans({"\x1e": "\x1e0", "\x1f": "\x1e1"})  # the digest's field separator


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
        try:
            csv = t.file.name.lower().endswith(SUFFIXES[:2])
            header = (_csv_header(t.file) if csv
                      else pd.DataFrame(columns=pq.read_schema(t.file).names))
        except (ValueError, OSError) as e:
            if t.file.stat().st_size:  # an empty file is reported as a bad row below
                raise IngestError(f"unreadable: {shorten(e, 200)}", file=str(t.file),
                                  line=1) from e
        else:
            require_columns(header, list(t.columns.values()), str(t.file))
    folder = (src.parent if (src := mapping.source) else Path(base_dir or ".")).resolve()
    data = SourceData(name or mapping.name or folder.name,
                      ([src] if src else []) + list(dict.fromkeys(t.file for t in mapping.tables)),
                      options={"format": "tabular", "mapping": mapping.normalised})
    for t in mapping.tables:
        sink = RowSink(t.file, strict)
        if (df := _read(t.file, sink, next(iter(t.columns.values())))) is not None:
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


def _csv_header(path: Path) -> pd.DataFrame:
    """The CSV's columns (an empty frame); a header line that is not UTF-8 raises."""
    try:
        return pd.read_csv(path, nrows=0, encoding="utf-8-sig", **_CSV)
    except UnicodeDecodeError:  # pandas decodes more than the header: is the header the culprit?
        csv_utf8_errors(path, RowSink(path, strict=False), stop=1)
    return pd.read_csv(path, nrows=0, encoding="utf-8-sig", encoding_errors="replace", **_CSV)


def _read(path: Path, sink: RowSink, key: str) -> pd.DataFrame | None:
    """The file's rows with ``_line``, or None (reported) when it has no data rows."""
    df = None
    if path.stat().st_size and not path.name.lower().endswith(SUFFIXES[:2]):
        df = pd.read_parquet(path)
        df["_line"] = np.arange(1, len(df) + 1, dtype=np.int64)
    elif path.stat().st_size:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            df, not_utf8 = read_csv_text(path, sink, skip_blank_lines=False,
                                         on_bad_lines="warn", **_CSV)
        # pandas numbers records, not lines: skip the records it dropped, add line breaks
        skipped = sorted({int(m.group(1)) for w in caught
                          for m in re.finditer(r"line (\d+)", str(w.message))})
        rec = np.setdiff1d(np.arange(2, len(df) + len(skipped) + 2), skipped).astype(np.int64)
        nl = sum(df[c].str.count("\n").fillna(0) for c in df.columns).to_numpy(np.int64)
        cum = np.concatenate([[0], np.cumsum(nl)])
        last = str(df.columns[-1]) if len(df.columns) else ""
        df["_line"] = rec + cum[:-1]
        sink.bad_rows([(int(r + cum[np.searchsorted(rec, r)]), last,
                        f"wrong number of fields; the header has {len(df.columns) - 1}")
                       for r in skipped if int(r + cum[np.searchsorted(rec, r)]) not in not_utf8])
        if not_utf8:  # drop the rows that span a line that is not UTF-8 (already reported)
            start = df["_line"].to_numpy()
            row = np.searchsorted(start, sorted(not_utf8), side="right") - 1
            row = row[(row >= 0) & (np.asarray(sorted(not_utf8)) <= start[row] + nl[row])]
            df = df.drop(index=df.index[np.unique(row)])
        df = df.loc[~df.drop(columns="_line").isna().all(axis=1)]  # blank lines
    if df is None or df.empty:
        sink.bad(1, key, "the file has no data rows")
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
    bad = ~present if kind == "id" else present & conv.isna()
    out = out.assign(**{target: conv})
    for i in out.index[bad][: 1 if sink.strict else None]:
        sink.bad(int(out.at[i, "_line"]), col, f"empty {what}; every row needs one"
                 if kind == "id" else f"{what}: expected {_EXPECT[kind]}, got {quote(s.at[i])}")
    return out.loc[~bad]


def _key_part(ids: pd.Series) -> pd.Series:
    """Ids as a field of the digest's key: U+001E and U+001F escaped, anything else as is."""
    ids = ids.astype("string")
    if ids.str.contains("[\x1e\x1f]", regex=True).any():
        ids = ids.map(lambda s: s.translate(_ESCAPE_KEY), na_action="ignore").astype("string")
    return ids


def _drop_dups(out: pd.DataFrame, key: str, sink: RowSink, col: str, what: str) -> pd.DataFrame:
    dup = out[key].duplicated(keep="first")
    first = out.loc[~dup].set_index(key)["_line"] if dup.any() else None
    for i, k in out.loc[dup, key].iloc[: 1 if sink.strict else None].items():
        assert first is not None  # set whenever there is a duplicate
        sink.bad(int(out.at[i, "_line"]), col,
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
        keys = (_key_part(out["src"]) + "\x1f" + _key_part(out["dst"]) + "\x1f"
                + out["ts"].astype("string").fillna("") + "\x1f"
                + out["value"].astype("string").fillna(""))  # floats as repr()
        out = out.assign(eid=[event_id(t.type, hashlib.sha256(k.encode()).hexdigest()[:20])
                              for k in keys])
        out = _drop_dups(out, "eid", sink, c["src"], f"{t.type} event (a row with the same "
                         f"{c['src']}, {c['dst']}, ts and value is the same event), derived id")
    return out[[*EDGE_COLUMNS, *props, "_line"]].reset_index(drop=True)

