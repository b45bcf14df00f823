"""``Retriever``: the questions users ask of the embeddings, by id, single and batched.

* :meth:`Retriever.recommend` — items for a user, leaving out what the user already bought or
  rated, optionally within a category, a price range or an allow-list (e.g. in-stock items);
* :meth:`Retriever.similar_items`, :meth:`Retriever.similar_users` — cosine neighbours;
* :meth:`Retriever.audience` — users whose embeddings score highest against a set of items
  (a campaign's promoted items, or a category): the retrieval half of ad targeting. A user's
  score is the mean of the model's scores for those items, ``<u, mean_i v_i>``.

Each has a ``*_batch`` form returning :class:`Results` (NumPy arrays, ``to_pandas()``,
``to_arrow()``); :meth:`Retriever.recommend_all` and :meth:`Retriever.export_all` give every
user's recommendations block by block, on any engine (:mod:`~shopgraph.retrieval.partitions`).
Documented edge cases: ``k`` larger than what is left after exclusions and filters gives fewer
results (batch arrays are padded with id ``None`` / position -1 and score
NaN); unknown ids raise :class:`~shopgraph.errors.UnknownIdError` (batch forms can skip them);
filters that leave nothing raise ``ValueError``. Users whose embedding is all zeros (in the
graph but without interactions the model learnt from) get the most popular items (counted over
the seen pairs), with the same exclusions and filters; they and such items have no similar
users or items (an empty row).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp

from shopgraph.errors import UnknownIdError
from shopgraph.gnn.checkpoint import Checkpoint, load_checkpoint
from shopgraph.retrieval.exact import SearchResult
from shopgraph.retrieval.partitions import BLOCK_SIZE, ItemSearch, top_items, write_parquet
from shopgraph.retrieval.persist import IndexBundle, load_bundle

if TYPE_CHECKING:
    from shopgraph.parallel import Engine


class Match(NamedTuple):
    """One result: an id and its score."""

    id: str
    score: float


@dataclass
class Results:
    """Batch results, one row per query, best first.

    Args:
        queries: the query of each row (user id, item id, or audience name).
        positions: int64 ``(n, k)`` positions into ``id_map``; -1 is padding.
        scores: float32 ``(n, k)``; NaN is padding.
        id_map: position -> id of the results' kind.
        kind: ``item`` or ``user`` (the kind of the results).
    """

    queries: np.ndarray
    positions: np.ndarray
    scores: np.ndarray
    id_map: np.ndarray
    kind: str

    def __len__(self) -> int:
        return len(self.queries)

    @property
    def ids(self) -> np.ndarray:
        """Object array ``(n, k)`` of result ids, ``None`` where padded."""
        out = np.full(self.positions.shape, None, dtype=object)
        valid = self.positions >= 0
        out[valid] = self.id_map[self.positions[valid]]
        return out

    def __getitem__(self, row: int) -> list[Match]:
        keep = self.positions[row] >= 0
        return [Match(str(i), float(s)) for i, s in
                zip(self.id_map[self.positions[row][keep]], self.scores[row][keep])]

    def to_pandas(self) -> pd.DataFrame:
        """Long form: ``query``, ``rank`` (1 = best), ``<kind>_id``, ``score``; padding dropped."""
        n, k = self.positions.shape
        valid = (self.positions >= 0).ravel()
        return pd.DataFrame({
            "query": np.repeat(self.queries.astype(str), k)[valid],
            "rank": np.tile(np.arange(1, k + 1), n)[valid],
            f"{self.kind}_id": self.id_map[self.positions.ravel()[valid]].astype(str),
            "score": self.scores.ravel()[valid].astype(np.float64),
        })

    def to_arrow(self) -> Any:
        """:meth:`to_pandas` as a ``pyarrow.Table``."""
        import pyarrow as pa

        return pa.Table.from_pandas(self.to_pandas(), preserve_index=False)


class Retriever:
    """Queries over a checkpoint's embeddings and the indexes built from it.

    Args:
        ckpt: the checkpoint (vectors and id maps).
        bundle: its indexes, seen pairs and catalogue (see :mod:`~shopgraph.retrieval.persist`).
    """

    def __init__(self, ckpt: Checkpoint, bundle: IndexBundle) -> None:
        self.ckpt, self.bundle = ckpt, bundle
        self.model = ckpt.model
        self.user_ids, self.item_ids = ckpt.user_ids.astype(str), ckpt.item_ids.astype(str)
        self._users, self._items = pd.Index(self.user_ids), pd.Index(self.item_ids)
        self._buyers: sp.csc_matrix | None = None
        # Users (items) whose embedding is all zeros: nothing was learnt about them.
        # (np.asarray returns the array itself; numpy's stubs allow a scalar from any(axis=1).)
        self._cold: dict[str, np.ndarray] = {"user": np.asarray(~ckpt.user_emb.any(axis=1)),
                                             "item": np.asarray(~ckpt.item_emb.any(axis=1))}
        self.popularity = np.asarray(bundle.seen.sum(axis=0)).ravel().astype(np.float32)

    @classmethod
    def load(cls, index_path: str | Path, checkpoint_path: str | Path) -> Retriever:
        """Load a checkpoint and its index file (refused if they do not belong together)."""
        ckpt = load_checkpoint(checkpoint_path, weights=False)
        return cls(ckpt, load_bundle(index_path, ckpt))

    def __repr__(self) -> str:
        return (f"Retriever(model={self.model!r}, users={len(self.user_ids)}, "
                f"items={len(self.item_ids)})")

    # -- ids -------------------------------------------------------------------------------

    def positions(self, kind: str, ids: Iterable[Any], skip_unknown: bool = False
                   ) -> tuple[np.ndarray, np.ndarray]:
        """Positions of ``ids`` (and the ids kept), raising on unknown ones unless skipped."""
        index = self._users if kind == "user" else self._items
        ids = np.asarray([str(i) for i in ids], dtype=object)
        pos = index.get_indexer(ids)
        unknown = ids[pos < 0]
        if len(unknown) and not skip_unknown:
            shown = ", ".join(repr(u) for u in unknown[:5])
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            raise UnknownIdError(
                f"{kind} {shown}{more} not known to the {self.model} model ({len(index):,} "
                f"{kind}s); {kind}s added since training need `shopgraph train` and "
                f"`shopgraph index build`")
        return pos[pos >= 0].astype(np.int64), ids[pos >= 0]

    def embedding(self, kind: str, id_: str) -> np.ndarray:
        """The embedding of one user or item (a copy)."""
        if kind not in ("user", "item"):
            raise ValueError(f"kind must be 'user' or 'item', got {kind!r}")
        pos, _ = self.positions(kind, [id_])
        table = self.ckpt.user_emb if kind == "user" else self.ckpt.item_emb
        row: np.ndarray = table[pos[0]].copy()
        return row

    # -- filters ---------------------------------------------------------------------------

    def item_filter(self, *, category: str | Sequence[str] | None = None,
                    price_min: float | None = None, price_max: float | None = None,
                    items: Iterable[str] | None = None) -> np.ndarray | None:
        """Positions of the items passing every given filter, or None when none is given.

        Items without a price fail any price bound. Unknown ids in ``items`` (e.g. an in-stock
        list holding products the model has not seen) are skipped with a warning.
        """
        if category is None and price_min is None and price_max is None and items is None:
            return None
        cat = self.bundle.catalogue
        mask = np.ones(len(self.item_ids), dtype=bool)
        if category is not None:
            mask &= np.isin(cat.category, self._category_codes(category))
        if price_min is not None or price_max is not None:
            lo = -np.inf if price_min is None else price_min
            hi = np.inf if price_max is None else price_max
            if lo > hi:
                raise ValueError(f"price_min {lo} is above price_max {hi}")
            with np.errstate(invalid="ignore"):
                mask &= (cat.price >= lo) & (cat.price <= hi)
        if items is not None:
            wanted = list(items)
            pos, _ = self.positions("item", wanted, skip_unknown=True)
            if len(pos) < len(wanted):
                warnings.warn(f"{len(wanted) - len(pos)} of {len(wanted)} allowed items are not "
                              f"known to the {self.model} model and were skipped", stacklevel=3)
            allow = np.zeros(len(self.item_ids), dtype=bool)
            allow[pos] = True
            mask &= allow
        if not mask.any():
            raise ValueError(
                f"no item of the {self.model} model passes the filters (category={category}, "
                f"price {price_min}..{price_max}, "
                f"allow-list={'given' if items is not None else 'none'})")
        return np.flatnonzero(mask)

    def _category_codes(self, category: str | Sequence[str]) -> np.ndarray:
        names = [category] if isinstance(category, str) else list(category)
        known = pd.Index(self.bundle.catalogue.categories)
        codes: np.ndarray = known.get_indexer(names)
        if (codes < 0).any():
            bad = [n for n, c in zip(names, codes) if c < 0]
            sample = ", ".join(known[:8]) + (" ..." if len(known) > 8 else "")
            raise UnknownIdError(f"category {', '.join(map(repr, bad))} is not in the catalogue "
                                 f"({len(known)} categories: {sample or 'none'})")
        return codes

    # -- recommendations -------------------------------------------------------------------

    def recommend(self, user_id: str, k: int = 10, *, exclude_seen: bool = True,
                  category: str | Sequence[str] | None = None, price_min: float | None = None,
                  price_max: float | None = None, items: Iterable[str] | None = None
                  ) -> list[Match]:
        """Top-``k`` items for one user; see :meth:`recommend_batch` for the arguments."""
        return self.recommend_batch([user_id], k, exclude_seen=exclude_seen, category=category,
                                    price_min=price_min, price_max=price_max, items=items)[0]

    def recommend_batch(self, user_ids: Iterable[str] | None = None, k: int = 10, *,
                        exclude_seen: bool = True, category: str | Sequence[str] | None = None,
                        price_min: float | None = None, price_max: float | None = None,
                        items: Iterable[str] | None = None,
                        skip_unknown: bool = False) -> Results:
        """Top-``k`` items for each user (every user when ``user_ids`` is None).

        Args:
            user_ids: the users.
            k: items per user.
            exclude_seen: leave out the user's items of the index's seen relationship types
                (bought, rated; see ``shopgraph index build --seen-rel``).
            category: only items of this category (or any of these).
            price_min: only items priced at least this.
            price_max: only items priced at most this.
            items: only these item ids (an allow-list, e.g. what is in stock).
            skip_unknown: drop unknown users instead of raising.
        """
        if user_ids is None:
            pos, ids = np.arange(len(self.user_ids)), self.user_ids
        else:
            pos, ids = self.positions("user", user_ids, skip_unknown)
        search = self.item_search(k, category=category, price_min=price_min,
                                  price_max=price_max, items=items)
        exclude = self.bundle.seen[pos] if exclude_seen else None
        found = search(self.ckpt.user_emb[pos], exclude, self._cold["user"][pos])
        return Results(np.asarray(ids), found.ids, found.scores, self.item_ids, "item")

    def item_search(self, k: int, *, category: str | Sequence[str] | None = None,
                    price_min: float | None = None, price_max: float | None = None,
                    items: Iterable[str] | None = None) -> ItemSearch:
        """The search behind :meth:`recommend_batch` (top-``k``, filters applied), as the
        picklable object every block of :meth:`recommend_all` shares."""
        candidates = self.item_filter(category=category, price_min=price_min,
                                      price_max=price_max, items=items)
        return ItemSearch(self.bundle.indexes["items"], self.popularity, k, candidates)

    def recommend_all(self, k: int = 10, *, exclude_seen: bool = True,
                      category: str | Sequence[str] | None = None,
                      price_min: float | None = None, price_max: float | None = None,
                      items: Iterable[str] | None = None, engine: Engine | None = None,
                      block_size: int = BLOCK_SIZE) -> Iterator[tuple[int, SearchResult]]:
        """Top-``k`` items of every user, in blocks of ``block_size`` users scored on
        ``engine`` (default: here): ``(first user position, result)`` pairs in user order, the
        same rows as ``recommend_batch(None, k, ...)`` gives; see
        :mod:`~shopgraph.retrieval.partitions`."""
        search = self.item_search(k, category=category, price_min=price_min,
                                  price_max=price_max, items=items)
        return top_items(search, self.ckpt.user_emb, self.bundle.seen if exclude_seen else None,
                         self._cold["user"], block_size=block_size, engine=engine)

    def export_all(self, path: str | Path, k: int = 10, **options: Any) -> int:
        """Write :meth:`recommend_all` (same options) to one Parquet file at ``path``, a row
        group per block, in the long form of :meth:`Results.to_pandas`; returns the rows."""
        return write_parquet(path, self.recommend_all(k, **options), self.user_ids,
                             self.item_ids)

    def popular(self, k: int, rows: int = 1, *, exclude: sp.csr_matrix | None = None,
                candidates: np.ndarray | None = None) -> SearchResult:
        """The ``k`` most popular items (by seen-pair count) for each of ``rows`` rows, leaving
        out each row's ``exclude`` pairs; positions and counts, like an index search."""
        return ItemSearch(self.bundle.indexes["items"], self.popularity, k,
                          candidates).popular(rows, exclude)

    # -- neighbours ------------------------------------------------------------------------

    def similar_items(self, item_id: str, k: int = 10) -> list[Match]:
        """The ``k`` items most similar (cosine) to one item, itself left out."""
        return self.similar_items_batch([item_id], k)[0]

    def similar_items_batch(self, item_ids: Iterable[str], k: int = 10,
                            skip_unknown: bool = False) -> Results:
        """The ``k`` most similar items of each item."""
        return self._similar("item", item_ids, k, skip_unknown)

    def similar_users(self, user_id: str, k: int = 10) -> list[Match]:
        """The ``k`` users most similar (cosine) to one user, themself left out."""
        return self.similar_users_batch([user_id], k)[0]

    def similar_users_batch(self, user_ids: Iterable[str], k: int = 10,
                            skip_unknown: bool = False) -> Results:
        """The ``k`` most similar users of each user."""
        return self._similar("user", user_ids, k, skip_unknown)

    def _similar(self, kind: str, ids: Iterable[str], k: int, skip_unknown: bool) -> Results:
        pos, kept = self.positions(kind, ids, skip_unknown)
        index = self.bundle.indexes[f"{kind}s_cosine"]
        itself = sp.csr_matrix((np.ones(len(pos), dtype=np.float32), (np.arange(len(pos)), pos)),
                               shape=(len(pos), len(index)))
        found = index.search(index.vectors[pos], k, exclude=itself)
        cold = self._cold[kind][pos]
        found.ids[cold], found.scores[cold] = -1, np.nan  # no neighbours without an embedding
        id_map = self.user_ids if kind == "user" else self.item_ids
        return Results(np.asarray(kept), found.ids, found.scores, id_map, kind)

    # -- audiences -------------------------------------------------------------------------

    def audience(self, items: Iterable[str] | None = None, n: int = 1000, *,
                 category: str | Sequence[str] | None = None,
                 exclude_buyers: bool = False) -> list[Match]:
        """The ``n`` users scoring highest against ``items`` or a ``category``'s items.

        Args:
            items: the promoted item ids.
            n: audience size (fewer when fewer users qualify).
            category: promote every item of this category (or these) instead.
            exclude_buyers: leave out users who already have one of the items among their
                seen pairs (bought or rated it).
        """
        if (items is None) == (category is None):
            raise ValueError("give either items or a category for an audience")
        if category is not None:
            pos = self.item_filter(category=category)
            items = self.item_ids[pos]
        assert items is not None  # exactly one of items and category was given (checked above)
        return self.audience_batch({"audience": list(items)}, n,
                                   exclude_buyers=exclude_buyers)[0]

    def audience_batch(self, groups: dict[str, Sequence[str]], n: int = 1000, *,
                       exclude_buyers: bool = False) -> Results:
        """One audience per named group of items (e.g. campaign id -> its items)."""
        names = list(groups)
        queries = np.zeros((len(names), self.ckpt.item_emb.shape[1]), dtype=np.float32)
        buyers = []
        for row, name in enumerate(names):
            if not len(groups[name]):
                raise ValueError(f"{name!r} promotes no items; an audience needs at least one")
            pos, _ = self.positions("item", groups[name], skip_unknown=True)
            if not len(pos):
                raise UnknownIdError(f"none of the {len(groups[name])} items of {name!r} is "
                                     f"known to the {self.model} model; retrain to include them")
            if len(pos) < len(groups[name]):
                warnings.warn(f"{len(groups[name]) - len(pos)} items of {name!r} are not known "
                              f"to the {self.model} model and were left out", stacklevel=3)
            queries[row] = self.ckpt.item_emb[pos].mean(axis=0)
            if exclude_buyers:
                buyers.append(np.unique(self._buyer_matrix()[:, pos].indices))
        exclude = None
        if exclude_buyers:
            rows = np.repeat(np.arange(len(names)), [len(b) for b in buyers])
            cols = np.concatenate(buyers) if buyers else np.zeros(0, dtype=np.int64)
            exclude = sp.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)),
                                    shape=(len(names), len(self.user_ids)))
        found = self.bundle.indexes["users"].search(queries, n, exclude=exclude)
        return Results(np.asarray(names, dtype=object), found.ids, found.scores,
                       self.user_ids, "user")

    def _buyer_matrix(self) -> sp.csc_matrix:
        if self._buyers is None:
            self._buyers = self.bundle.seen.tocsc()
        return self._buyers
