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
    eid = "order_line"         # optional; ts, value and properties (arm, run_id) are too
    ts = "ordered_at"          # epoch seconds or ISO-8601 (naive = UTC)
    value = "amount"

Ids are kept as written ("00042" stays so). Without ``eid`` the event id is ``"<rel>:"`` +
sha256(src, dst, ts, value)[:20], so identical rows are one event and a repeat is a duplicate
(strict: error; else skipped, reported). ``_line`` is the CSV line (header = 1) or the 1-based
Parquet row. Edge ends absent from the node tables are checked by ingest, not here.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from pandas.api.types import is_numeric_dtype as is_num

from shopgraph.errors import IngestError
from shopgraph.graphdb import schema
from shopgraph.graphdb.formats.common import RowSink, nodes_from_ids, require_columns, require_file
from shopgraph.graphdb.frames import EDGE_COLUMNS, EdgeFrame, NodeFrame, SourceData

_CSV_EXT = (".csv", ".csv.gz")
SUFFIXES = (*_CSV_EXT, ".parquet", ".pq")
_KEYS = {"nodes": ("label", "file", "id", "properties"),
         "edges": ("rel", "file", "src", "dst", "eid", "ts", "value", "properties")}
_REQUIRED = ("id", "src", "dst")
_LABELS = [lab for lab in schema.NODE_PROPERTIES if lab != "IngestLog"]
_EDGE_PROPS = {k: t for k, t in schema.REL_PROPERTIES.items() if k not in ("ts", "value")}
_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
_CSV = {"dtype": str, "keep_default_na": False, "na_values": [""], "encoding": "utf-8-sig"}


@dataclass(frozen=True)
class Table:
    """One table: kind, label/type, file, target (id/src/.../property) -> column, place."""

    kind: str
    type: str
    file: Path
    columns: dict[str, str]
    where: str

    def convert_to(self, target: str) -> Any:
        """The type ``target`` is converted to: "id", "ts" or a Python type."""
        if target in ("id", "src", "dst", "eid", "ts"):
            return "id" if target != "ts" else "ts"
        if self.kind == "nodes":
            return schema.NODE_PROPERTIES[self.type][target]
        return float if target == "value" else _EDGE_PROPS[target]


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
            raise IngestError(f"bad mapping: {msg}", file=str(source) if source else None,
                              field=where)

    def keys_ok(tab: dict[str, Any], allowed: Any, where: str) -> None:
        extra = next(iter(sorted(set(tab) - set(allowed))), "")
        need(not extra, where + extra, f"unknown key {extra!r}; allowed: {', '.join(allowed)}")

    def text(tab: dict[str, Any], key: str, where: str) -> str:
        v = tab.get(key)
        need(isinstance(v, str) and v, f"{where}.{key}", f"{key} must be a non-empty string, "
             f"got {v!r}" if key in tab else f"{where} needs the key {key!r}")
        return v

    keys_ok(d, ("name", "create_missing", "nodes", "edges"), "")
    name, create = d.get("name"), d.get("create_missing", False)
    need(name is None or isinstance(name, str) and name, "name", "name must be a string")
    need(isinstance(create, bool), "create_missing", "create_missing must be true or false")
    tables: list[Table] = []
    norm: dict[str, Any] = {"name": name, "create_missing": create, "nodes": [], "edges": []}
    for kind, keys in _KEYS.items():
        tabs = d.get(kind, [])
        need(isinstance(tabs, list) and all(isinstance(t, dict) for t in tabs), kind,
             f"{kind} must be a list of tables ([[{kind}]])")
        for i, tab in enumerate(tabs):
            where, tkey = f"{kind}[{i}]", keys[0]
            keys_ok(tab, keys, where + ".")
            allowed = _LABELS if kind == "nodes" else list(schema.RELATIONSHIPS)
            typ, file = text(tab, tkey, where), text(tab, "file", where)
            need(typ in allowed, f"{where}.{tkey}",
                 f"unknown {tkey} {typ!r}; allowed: {', '.join(allowed)}")
            need(file.lower().endswith(SUFFIXES), f"{where}.file",
                 f"{file!r} is not one of {', '.join(SUFFIXES)}")
            cols = {k: text(tab, k, where) for k in keys[2:-1] if k in tab or k in _REQUIRED}
            props = tab.get("properties", {})
            need(isinstance(props, dict), f"{where}.properties",
                 "properties must be a table: property = column")
            known = schema.NODE_PROPERTIES[typ] if kind == "nodes" else _EDGE_PROPS
            for p in props:
                hint = " (use the ts/value keys)" if p in ("ts", "value") else ""
                need(p in known, f"{where}.properties.{p}",
                     f"{typ} has no property {p!r}{hint}; allowed: {', '.join(known)}")
                text(props, p, f"{where}.properties")
            tables.append(Table(kind, typ, Path(base_dir) / file, {**cols, **props}, where))
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
        raise IngestError(f"not a valid TOML file: {e}", file=str(p),
                          line=int(m.group(1)) if m else None) from e
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
            raise IngestError(f"no such file (from {t.where}.file); check the mapping",
                              file=str(t.file))
        if t.file.stat().st_size:
            require_columns(_header(t.file), list(t.columns.values()), str(t.file))
    src = mapping.source
    folder = src.resolve().parent if src else Path(base_dir or ".").resolve()
    data = SourceData(name or mapping.name or folder.name,
                      [src] * bool(src) + list(dict.fromkeys(t.file for t in mapping.tables)),
                      options={"format": "tabular", "mapping": mapping.normalised})
    for t in mapping.tables:
        sink = RowSink(t.file, strict)
        df = _read(t.file, sink, next(iter(t.columns.values())))
        if df is not None and t.kind == "nodes":
            data.nodes.append(NodeFrame(t.type, _frame(t, df, sink), str(t.file)))
        elif df is not None:
            data.edges.append(EdgeFrame(t.type, _frame(t, df, sink), str(t.file)))
        data.problems += sink.problems
    if mapping.create_missing:
        _add_missing(data, str(src or ""))
    data.validate()
    return data


def _header(path: Path) -> pd.DataFrame:
    try:
        if path.name.lower().endswith(_CSV_EXT):
            return pd.read_csv(path, nrows=0, **_CSV)
        return pd.DataFrame(columns=pq.read_schema(path).names)
    except (ValueError, OSError, UnicodeDecodeError) as e:
        raise IngestError(f"cannot read the header: {e}", file=str(path), line=1) from e


def _read(path: Path, sink: RowSink, key: str) -> pd.DataFrame | None:
    """The file's rows with ``_line``, or None (reported) when it has no data rows."""
    df = None
    if path.stat().st_size and not path.name.lower().endswith(_CSV_EXT):
        df = pd.read_parquet(path)
        df["_line"] = np.arange(1, len(df) + 1, dtype=np.int64)
    elif path.stat().st_size:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            df = pd.read_csv(path, skip_blank_lines=False, on_bad_lines="warn", **_CSV)
        # pandas numbers records, not lines: skip the records it dropped, add line breaks
        skipped = sorted({int(m.group(1)) for w in caught
                          for m in re.finditer(r"line (\d+)", str(w.message))})
        rec = np.setdiff1d(np.arange(2, len(df) + len(skipped) + 2), skipped).astype(np.int64)
        nl = sum(df[c].str.count("\n").fillna(0) for c in df.columns).to_numpy(np.int64)
        cum = np.concatenate([[0], np.cumsum(nl)])
        df["_line"] = rec + cum[:-1]
        for r in skipped:
            sink.bad(int(r + cum[np.searchsorted(rec, r)]), "",
                     f"wrong number of fields; the header has {len(df.columns) - 1}")
        df = df.loc[~df.drop(columns="_line").isna().all(axis=1)]  # blank lines
    if df is None or df.empty:
        sink.bad(1, key, "the file has no data rows")
        return None
    return df


def _text(s: pd.Series) -> pd.Series:
    """Values as text, missing kept; integral floats (Parquet ints with nulls) without ``.0``."""
    fin = s.dropna()
    integral = pd.api.types.is_float_dtype(s) and bool((fin == np.floor(fin)).all()
                                                       and np.isfinite(fin).all())
    return (s.astype("Int64") if integral else s).astype("string")


def _convert(out: pd.DataFrame, raw: pd.DataFrame, target: str, col: str, kind: Any,
             sink: RowSink, what: str) -> pd.DataFrame:
    """Convert ``raw[col]`` to ``kind`` into ``out[target]``; drop (report) rows that fail."""
    s = raw.loc[out.index, col]
    t = _text(s)
    present = t.notna() & (t.str.strip() != "")
    bad, msg = present & False, f"{what}: expected {{}}, got "
    if kind == "id":
        conv, bad, msg = t.astype(str), ~present, f"empty {what}; every row needs one"
    elif kind in (float, int):
        conv = pd.to_numeric(s if is_num(s) else t, errors="coerce").astype("float64")
        bad = present & ~np.isfinite(conv)
        if kind is int:
            bad |= conv.notna() & (conv != np.floor(conv.fillna(0)))
            conv = conv.where(~bad).astype("Int64")
        msg = msg.format("an integer" if kind is int else "a number")
    elif kind is bool:
        conv = t.str.strip().str.lower().map(_BOOLS).astype("boolean")
        bad, msg = present & conv.isna(), msg.format("true/false/1/0/yes/no")
    elif kind == "ts":
        conv = _seconds(s, t)
        bad, msg = present & conv.isna(), msg.format("epoch seconds or an ISO-8601 date")
    else:
        conv = t.astype(str)
    out = out.assign(**{target: conv})
    for i in out.index[bad][: 1 if sink.strict else None]:
        sink.bad(int(out.at[i, "_line"]), col, msg + repr(str(s.at[i])) * msg.endswith("got "))
    return out.loc[~bad]


def _seconds(s: pd.Series, t: pd.Series) -> pd.Series:
    """Epoch seconds (``Int64``) from numbers, ISO-8601 text or datetimes; NA where unparsable."""
    epoch, sec = pd.Timestamp(0, tz="UTC"), pd.Timedelta(seconds=1)
    if pd.api.types.is_datetime64_any_dtype(s):
        dt = s.dt.tz_localize("UTC") if s.dt.tz is None else s.dt.tz_convert("UTC")
        return ((dt - epoch) // sec).astype("Int64")
    num = pd.to_numeric(s if is_num(s) else t, errors="coerce").astype("float64")
    out = np.floor(num.where(np.isfinite(num)))
    if (rest := out.isna() & t.notna()).any():
        out[rest] = (pd.to_datetime(t[rest], format="ISO8601", utc=True, errors="coerce")
                     - epoch) // sec
    return out.astype("Int64")


def _drop_dups(out: pd.DataFrame, key: str, sink: RowSink, col: str, what: str) -> pd.DataFrame:
    dup = out[key].duplicated(keep="first")
    if dup.any():
        first = out.groupby(key, sort=False)["_line"].transform("first")
        for i in out.index[dup][: 1 if sink.strict else None]:
            sink.bad(int(out.at[i, "_line"]), col,
                     f"duplicate {what} {out.at[i, key]!r} (first on line {first[i]})")
    return out.loc[~dup]


def _frame(t: Table, df: pd.DataFrame, sink: RowSink) -> pd.DataFrame:
    """Convert and check one table's rows into a node or edge frame."""
    out, c = df[["_line"]], t.columns
    for target, col in c.items():
        out = _convert(out, df, target, col, t.convert_to(target), sink, f"{t.type} {target}")
    props = [k for k in c if k not in ("id", *EDGE_COLUMNS)]
    if t.kind == "nodes":
        out = _drop_dups(out, "id", sink, c["id"], f"{t.type} id")
        return out[["id", *props, "_line"]].reset_index(drop=True)
    if "ts" not in c:
        out = out.assign(ts=pd.array([pd.NA] * len(out), dtype="Int64"))
    if "value" not in c:
        out = out.assign(value=np.nan)
    if "eid" in c:
        out = _drop_dups(out, "eid", sink, c["eid"], f"{t.type} event id")
    else:
        keys = (out["src"] + "\x1f" + out["dst"] + "\x1f" + out["ts"].astype("string").fillna("")
                + "\x1f" + out["value"].map(lambda v: "" if pd.isna(v) else repr(float(v))))
        out = out.assign(eid=[f"{t.type}:" + hashlib.sha256(k.encode()).hexdigest()[:20]
                              for k in keys])
        out = _drop_dups(out, "eid", sink, c["src"], f"{t.type} event (a row with the same "
                         f"{c['src']}, {c['dst']}, ts and value is the same event), derived id")
    return out[[*EDGE_COLUMNS, *props, "_line"]].reset_index(drop=True)


def _add_missing(data: SourceData, file: str) -> None:
    """Add id-only node frames for edge ends that no node table of this source has."""
    for label in dict.fromkeys(lab for ef in data.edges for lab in (ef.src_label, ef.dst_label)):
        known = [nf.data["id"] for nf in data.nodes if nf.label == label]
        ids = pd.concat([ef.data[end] for ef in data.edges for end in ("src", "dst")
                         if getattr(ef, f"{end}_label") == label], ignore_index=True)
        if len(ids := ids[~ids.isin(pd.concat(known) if known else [])]):
            data.nodes.append(nodes_from_ids(label, ids, file))
