"""Stream interactions and node features out of the graph into NumPy arrays with stable id maps.

This is what the GNN layer reads. Records are decoded a chunk at a time into NumPy buffers, so
the whole result never exists as Python objects. Id maps are stable: ids are sorted (as numbers
when every id is a non-negative integer, else as strings), so the same set of ids always gets
the same positions.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shopgraph.artifacts import atomic_path
from shopgraph.graphdb import cypher, schema
from shopgraph.graphdb.store import GraphStore

MISSING_TS = np.iinfo(np.int64).min
_CHANGED = ("an edge refers to a node missing from the id map; the graph changed during export, "
            "run it again")


def stable_ids(ids: Iterable[str]) -> np.ndarray:
    """Sorted unique ids: numerically when all are digit strings, else lexicographically."""
    arr = np.asarray(sorted(set(ids)), dtype=object)
    if len(arr) and all(s.isdigit() for s in arr):
        arr = arr[np.argsort(np.array([int(s) for s in arr], dtype=np.int64), kind="stable")]
    return arr.astype(str)


@dataclass
class Interactions:
    """Interaction edges as parallel arrays, positions into ``user_ids`` / ``item_ids``.

    Args:
        user_ids: position -> user id.
        item_ids: position -> item id.
        users: int64 user position of each edge.
        items: int64 item position of each edge.
        ts: int64 seconds since the epoch, ``MISSING_TS`` when unknown.
        value: float64, NaN when unknown.
        rel: int8 index into ``rel_types`` of each edge.
        rel_types: the relationship types exported.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    users: np.ndarray
    items: np.ndarray
    ts: np.ndarray
    value: np.ndarray
    rel: np.ndarray
    rel_types: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.users)

    def csr(self) -> tuple[np.ndarray, np.ndarray]:
        """The user->item adjacency in CSR form: ``(indptr, indices)``, items sorted per user."""
        order = np.lexsort((self.items, self.users))
        counts = np.bincount(self.users, minlength=len(self.user_ids))
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return indptr, self.items[order]

    def edge_index(self) -> Any:
        """A ``2 x E`` int64 ``torch.Tensor`` of (user, item) positions."""
        import torch

        return torch.from_numpy(np.stack([self.users, self.items]))

    def save(self, path: str | Path) -> None:
        """Write the arrays to an ``.npz`` file, atomically (no pickle)."""
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, user_ids=self.user_ids, item_ids=self.item_ids, users=self.users,
                     items=self.items, ts=self.ts, value=self.value, rel=self.rel,
                     rel_types=np.asarray(self.rel_types, dtype=str))

    @classmethod
    def load(cls, path: str | Path) -> Interactions:
        """Read what :meth:`save` wrote."""
        with np.load(path, allow_pickle=False) as z:
            return cls(z["user_ids"], z["item_ids"], z["users"], z["items"], z["ts"],
                       z["value"], z["rel"], tuple(z["rel_types"].tolist()))


IDS_PER_QUERY = 2_000_000
"""The most ids :func:`node_ids` reads as one list; a label with more is streamed a record per
node. ArcadeDB refuses a ``collect`` of more than 2,097,152 elements in one query
(``arcadedb.queryMaxHeapElementsAllowedPerOp``)."""


def node_values(store: GraphStore, label: str, per_node: str, collected: str,
                what: str = "exporting") -> list[Any]:
    """The one value per ``label`` node that the template ``per_node`` returns a record per
    node, read as the one list the template ``collected`` returns while the label has at most
    :data:`IDS_PER_QUERY` nodes (taken as the driver decoded it: ``query`` would copy it)."""
    if store.count_nodes(label) <= IDS_PER_QUERY:
        [record] = store.stream(cypher.nodes(collected, label), what=what)
        values: list[Any] = record[0]
        return values
    return [r[0] for r in store.stream(cypher.nodes(per_node, label), what=what)]


def node_ids(store: GraphStore, label: str) -> np.ndarray:
    """The stable id map of one label."""
    return stable_ids(node_values(store, label, cypher.NODE_IDS, cypher.NODE_IDS_COLLECTED))


Columns = dict[str, list[Any]]
"""One grouped read's record (see :data:`~shopgraph.graphdb.cypher.EDGES_BY_SOURCE`): ``s``,
one id per user, and per user a list of each other column."""


def _decoded(columns: Columns, users: pd.Index, items: pd.Index
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(user positions, item positions, ts, value)`` of one grouped read's edges; a position
    is -1 where an id is not in its map."""
    d = columns["d"]
    u = np.repeat(users.get_indexer(columns["s"]), np.fromiter(map(len, d), np.int64, len(d)))
    i = items.get_indexer(list(chain.from_iterable(d)))
    ts = np.fromiter(chain.from_iterable(columns["ts"]), np.int64, len(i))
    val = np.fromiter(chain.from_iterable(columns["v"]), np.float64, len(i))
    return u.astype(np.int64), i.astype(np.int64), ts, val


class _Buffers:
    """The decoded parts of one type's grouped reads."""

    def __init__(self, users: pd.Index, items: pd.Index, rel_code: int,
                 drop_unknown: bool = False) -> None:
        self.users, self.items, self.rel_code = users, items, rel_code
        self.drop_unknown = drop_unknown
        self.parts: list[tuple[np.ndarray, ...]] = []

    def add(self, columns: Columns) -> None:
        u, i, ts, val = _decoded(columns, self.users, self.items)
        if self.drop_unknown:
            keep = (u >= 0) & (i >= 0)
            u, i, ts, val = u[keep], i[keep], ts[keep], val[keep]
        elif (u < 0).any() or (i < 0).any():
            raise RuntimeError(_CHANGED)
        self.parts.append((u, i, ts, val, np.full(len(i), self.rel_code, dtype=np.int8)))


EDGES_PER_QUERY = 1_000_000
"""The most edges one grouped read asks the server to hold: ArcadeDB keeps a query's groups in
its heap (within ``arcadedb.queryMaxHeapRAM``, 2 GB by default; the 1M-user shop's 21M views
in one query broke it), so a type with more edges is read a batch of users at a time, the next
batches read ahead while one is consumed."""
READ_AHEAD = 2
"""Batches read at once (each a query of its own on the server) while one is consumed."""

_BATCHED = {cypher.EDGES_BY_SOURCE: cypher.EDGES_OF_USERS,
            cypher.EDGE_TIMES_BY_SOURCE: cypher.EDGE_TIMES_OF_USERS}


def grouped_by_user(store: GraphStore, template: str, rel: str,
                    user_ids: np.ndarray | None = None, what: str = "exporting",
                    n_edges: int | None = None, **params: Any) -> Iterator[Columns]:
    """The columns of a grouped edge read (``EDGES_BY_SOURCE`` or ``EDGE_TIMES_BY_SOURCE``) of
    one type, a read at a time: one read when the type has at most :data:`EDGES_PER_QUERY`
    edges (``n_edges``, counted when not given: seconds on a large graph), else one per batch
    of users (``user_ids``, default every User in the graph) sized to that many edges at the
    type's mean degree. Users outside ``user_ids`` are not read in the batched form."""
    if n_edges is None:
        n_edges = store.count_rels(rel)
    if n_edges <= EDGES_PER_QUERY:
        yield from _gathered(list(store.stream(cypher.edges(template, rel), what=what,
                                               **params)))
        return
    ids = (node_ids(store, "User") if user_ids is None else np.asarray(user_ids, str)).tolist()
    # At most EDGES_PER_QUERY users a read, so that each collect stays under ArcadeDB's limit.
    step = max(1, min(EDGES_PER_QUERY, int(EDGES_PER_QUERY * len(ids) / n_edges)))
    yield from _user_batches(store, cypher.edges(_BATCHED[template], rel), ids, step, what,
                             **params)


def _gathered(records: list[Any]) -> Iterator[Columns]:
    """The columns of a grouped read's one record; none when it has no edges (Neo4j answers
    an aggregate over no rows with empty lists, a server may also answer with no record)."""
    for record in records:
        columns = dict(zip(record.keys(), record.values()))
        if columns["s"]:
            yield columns


def _user_batches(store: GraphStore, query: str, ids: list[str], step: int, what: str,
                  **params: Any) -> Iterator[Columns]:
    """The columns of ``query`` (an ``*_OF_USERS`` form) for each batch of ``step`` users of
    ``ids`` that has edges, in order."""
    def read(start: int) -> list[Any]:
        return list(store.stream(query, what=what, ids=ids[start:start + step], **params))

    # The next batches are read (the server grouping them, the driver decoding them) while
    # this one is consumed: READ_AHEAD at once, so at most READ_AHEAD + 1 are held.
    starts = iter(range(0, len(ids), step))
    with ThreadPoolExecutor(READ_AHEAD, thread_name_prefix="shopgraph-export") as pool:
        ahead = deque(pool.submit(read, start) for start in islice(starts, READ_AHEAD))
        while ahead:
            records = ahead.popleft().result()
            ahead.extend(pool.submit(read, start) for start in islice(starts, 1))
            yield from _gathered(records)
            del records


def export_interactions(store: GraphStore, rel_types: Sequence[str] | None = None,
                        user_ids: np.ndarray | None = None,
                        item_ids: np.ndarray | None = None,
                        drop_unknown: bool = False) -> Interactions:
    """Stream user->item interactions out of the graph.

    Args:
        store: the graph.
        rel_types: which user->item types (default: every type in the schema that has edges).
        user_ids: an id map to use instead of every User id in the graph.
        item_ids: likewise for items.
        drop_unknown: leave out edges whose ends are not in the given id maps (nodes added
            since a model was trained) instead of raising.
    """
    for t in rel_types or ():
        if t not in schema.USER_ITEM_TYPES:
            raise ValueError(f"{t!r} is not a user->item relationship type; choose from "
                             f"{', '.join(schema.USER_ITEM_TYPES)}")
    counts = {t: store.count_rels(t) for t in (schema.USER_ITEM_TYPES if rel_types is None
                                               else rel_types)}
    if rel_types is None:
        rel_types = [t for t in schema.USER_ITEM_TYPES if counts[t]]
    uids = node_ids(store, "User") if user_ids is None else np.asarray(user_ids, dtype=str)
    iids = node_ids(store, "Item") if item_ids is None else np.asarray(item_ids, dtype=str)
    uindex, iindex = pd.Index(uids), pd.Index(iids)
    parts: list[tuple[np.ndarray, ...]] = []
    for code, rel in enumerate(rel_types):
        buf = _Buffers(uindex, iindex, code, drop_unknown)
        for columns in grouped_by_user(store, cypher.EDGES_BY_SOURCE, rel, uids,
                                       n_edges=counts[rel], no_ts=int(MISSING_TS),
                                       no_value=float("nan")):
            buf.add(columns)
        # Edges of users outside the id map are not read in batches: fewer edges than counted
        # (ingest only adds edges) means some were missed.
        if not drop_unknown and sum(len(p[0]) for p in buf.parts) < counts[rel]:
            raise RuntimeError(_CHANGED)
        parts.extend(buf.parts)
    cols = [np.concatenate([p[k] for p in parts]) if parts else
            np.empty(0, dtype=dt) for k, dt in
            enumerate((np.int64, np.int64, np.int64, np.float64, np.int8))]
    users, items, ts, value, codes = cols
    return Interactions(uids, iids, users, items, ts, value, codes, rel_types=tuple(rel_types))


FETCH_USERS = 2000
"""Users per ``UNWIND`` of :func:`read_changes`."""


def read_changes(store: GraphStore, base: Interactions) -> Interactions | None:
    """The graph's interactions of ``base``'s types now, read without streaming every edge:
    a user's edges of a type are read again where their count differs from ``base``'s, the
    others are ``base``'s. ``None`` when a user or item of ``base`` is no longer in the graph.

    Equal to :func:`export_interactions` (same id maps, same pairs, another edge order) as long
    as edges are only added, which is all ingest does; a user who lost as many edges as they
    gained would be missed.
    """
    rels = list(base.rel_types)
    records = [(r["s"], *(r[f"n{k}"] for k in range(len(rels)))) for r in
               store.stream(cypher.user_edge_counts(rels))]
    user_ids = stable_ids(r[0] for r in records)
    maps = _id_maps(store, base, user_ids)
    if maps is None:
        return None
    upos, old_u = maps[2], maps[4]
    n_rels = len(rels)
    now = np.zeros((len(user_ids), n_rels), dtype=np.int64)
    if records:
        now[upos.get_indexer([r[0] for r in records])] = np.array([r[1:] for r in records])
    base_users = old_u[base.users]
    before = np.bincount(base_users * n_rels + base.rel.astype(np.int64),
                         minlength=now.size).reshape(now.shape)
    return _reread(store, base, maps, now != before)


def read_listed_changes(store: GraphStore, base: Interactions,
                        users: Mapping[str, Collection[str]]) -> Interactions | None:
    """As :func:`read_changes`, without counting every user's edges: the edges of each type
    are read again for the users ``users`` lists for it (the ingest journal's, see
    :func:`~shopgraph.graphdb.journal.journalled_users`), the others are ``base``'s.

    The id maps are ``base``'s with the listed users it lacks, read whole from the graph only
    where the graph's number of users or items differs (nodes without edges, nodes of writers
    that kept no journal). ``None`` when that misses something: the result's number of edges
    of a type differs from the graph's (a writer that kept no journal added edges for other
    users), or a user or item of ``base`` is no longer in the graph.
    """
    rels = list(base.rel_types)
    listed = pd.Index(sorted(set().union(*(users.get(t, ()) for t in rels))), dtype=object)
    fresh = listed[pd.Index(base.user_ids).get_indexer(listed) < 0]
    user_ids = stable_ids([*base.user_ids.tolist(), *fresh]) if len(fresh) else base.user_ids
    if store.count_nodes("User") != len(user_ids):  # users without edges, or unlisted ones
        user_ids = node_ids(store, "User")
    item_ids = base.item_ids if store.count_nodes("Item") == len(base.item_ids) else None
    maps = _id_maps(store, base, user_ids, item_ids)
    if maps is None:
        return None
    moved = np.zeros((len(user_ids), len(rels)), dtype=bool)
    for code, rel in enumerate(rels):
        listed = maps[2].get_indexer(list(users.get(rel, ())))
        moved[listed[listed >= 0], code] = True
    out = _reread(store, base, maps, moved)
    if out is None:
        return None
    counts = np.bincount(out.rel.astype(np.int64), minlength=len(rels))
    if any(store.count_rels(rel) != counts[code] for code, rel in enumerate(rels)):
        return None
    return out


_Maps = tuple[np.ndarray, np.ndarray, pd.Index, pd.Index, np.ndarray, np.ndarray]


def _id_maps(store: GraphStore, base: Interactions, user_ids: np.ndarray,
             item_ids: np.ndarray | None = None) -> _Maps | None:
    """``(user ids, item ids, their positions, base's users there, base's items there)`` over
    the graph's users ``user_ids`` and its items (``item_ids``, default: read from the graph);
    ``None`` when an id of ``base`` is gone."""
    if item_ids is None:
        item_ids = node_ids(store, "Item")
    upos, ipos = pd.Index(user_ids), pd.Index(item_ids)
    old_u, old_i = upos.get_indexer(base.user_ids), ipos.get_indexer(base.item_ids)
    if (old_u < 0).any() or (old_i < 0).any():
        return None
    return user_ids, item_ids, upos, ipos, old_u, old_i


def _reread(store: GraphStore, base: Interactions, maps: _Maps,
            moved: np.ndarray) -> Interactions | None:
    """``base``'s edges with those of the (user, type) pairs ``moved`` read again from the
    graph (``None``: a node was added while reading)."""
    user_ids, item_ids, upos, ipos, old_u, old_i = maps
    rels = list(base.rel_types)
    base_users = old_u[base.users]
    keep = ~moved[base_users, base.rel.astype(np.int64)]
    parts = [(base_users[keep], old_i[base.items][keep], base.ts[keep], base.value[keep],
              base.rel[keep])]
    for code, rel in enumerate(rels):
        ids = user_ids[np.flatnonzero(moved[:, code])].tolist()
        query = cypher.edges(cypher.EDGES_OF_USERS, rel)
        for columns in _user_batches(store, query, ids, FETCH_USERS, "exporting",
                                     no_ts=int(MISSING_TS), no_value=float("nan")):
            u, i, ts, val = _decoded(columns, upos, ipos)
            if (u < 0).any() or (i < 0).any():
                return None  # a node added while reading: read everything instead
            parts.append((u, i, ts, val, np.full(len(u), code, np.int8)))
    users, items, ts_all, value, rel_codes = (np.concatenate(c) for c in zip(*parts))
    return Interactions(user_ids, item_ids, users.astype(np.int64), items.astype(np.int64),
                        ts_all.astype(np.int64), value.astype(np.float64),
                        rel_codes.astype(np.int8), tuple(rels))


def export_node_property(store: GraphStore, label: str, prop: str,
                         ids: np.ndarray) -> np.ndarray:
    """One property of every node of ``label``, aligned with the id map ``ids`` (object array,
    ``None`` where a node lacks it)."""
    out = np.full(len(ids), None, dtype=object)
    index = pd.Index(ids)
    keys, values = [], []
    for record in store.stream(cypher.nodes(cypher.NODE_PROPS, label, prop)):
        keys.append(record["id"])
        values.append(record["v"])
    pos = index.get_indexer(keys)
    keep = pos >= 0
    out[pos[keep]] = np.asarray(values, dtype=object)[keep]
    return out


def export_item_features(store: GraphStore, item_ids: np.ndarray) -> dict[str, np.ndarray]:
    """Item features for the GNN: ``category`` codes (-1 unknown), ``categories`` (code ->
    name) and ``price`` (float64, NaN unknown), aligned with ``item_ids``."""
    cats = export_node_property(store, "Item", "category", item_ids)
    known = sorted({c for c in cats if c is not None})
    codes = pd.Index(known).get_indexer(pd.Series(cats).where(pd.notna(cats), None))
    price = pd.array(export_node_property(store, "Item", "price", item_ids).tolist(),
                     dtype="Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    return {"category": codes.astype(np.int64), "categories": np.asarray(known, dtype=str),
            "price": price}
