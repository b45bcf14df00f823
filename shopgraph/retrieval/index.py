"""``EmbeddingIndex``: top-k search over one embedding table, exact or approximate (FAISS).

The kind is chosen from the table's size unless given:

* ``exact`` while ``n x d <= EXACT_MAX_FLOATS`` (a single exact query then costs about ten
  milliseconds, and there is nothing to build or rebuild) and one pass of the index's expected
  queries (``queries``, e.g. the item index answers every user once in an all-user export)
  scores at most
  ``BATCH_EXACT_FLOATS``: a blocked matrix multiply, see :mod:`shopgraph.retrieval.exact`;
* ``hnsw`` above it: FAISS ``HNSW32`` over the raw vectors (the default approximate kind);
* ``ivf`` (``IVF<nlist>,Flat``) and ``ivfpq`` (``IVF<nlist>,PQ<m>``, for memory) on request;
* any FAISS factory string (``--factory "IVF4096,PQ16"``) overrides the kind.

Approximate indexes are tuned when built: the smallest ``efSearch`` (HNSW) or ``nprobe`` (IVF)
whose recall@20 against exact search reaches ``target_recall`` on a sample of queries is kept,
with the recall it reached.

Excluded pairs (seen items, the query itself) are handled by over-fetching ``k`` plus the row's
exclusions and dropping them; rows whose exclusions exceed ``MAX_FETCH`` go to exact search, so
exclusions never cost results. Filters (candidate positions) restrict the FAISS search with an
``IDSelectorBitmap``; selective ones (at most ``FILTER_EXACT_FLOATS`` candidate floats) are
searched exactly instead, which is both faster and exact. With ``metric="cosine"`` vectors and
queries are L2-normalised, so scores are cosine similarities.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import scipy.sparse as sp

from shopgraph.gnn.data import PairSet
from shopgraph.retrieval.exact import SearchResult, empty_result, exact_search, recall_at_k

KINDS = ("auto", "exact", "hnsw", "ivf", "ivfpq")
METRICS = ("ip", "cosine")
EXACT_MAX_FLOATS = 1 << 25
"""Most ``n x d`` an index stays exact for when few queries are expected (audiences, similar
users or items): one exact query over the 1M-user shop's 1M x 32 users takes 11 ms here, while
HNSW indexes over them took 24 s (inner product) and 53 s (cosine) to build, are rebuilt
whenever an update moves a vector, and the inner-product one reached recall@20 0.974, not 0.98
(2026-12-01, docs/benchmarks.md)."""
BATCH_EXACT_FLOATS = 1 << 39
"""Most ``queries x n x d`` an index stays exact for. Exact search costs about 0.1 ns per
float on two cores (a matrix multiply, then a top-k); this limit is about a minute of it. The
1M-user shop's 100k x 32 catalogue (3.2e12) scored every user exactly in 334 s; HNSW answered
them in about 80 s at recall@20 0.988 (docs/benchmarks.md)."""
MAX_FETCH = 1024
"""Most neighbours fetched from an approximate index for one query; beyond, exact search."""
FILTER_EXACT_FLOATS = 1 << 24
"""A filter leaving at most this many floats (candidates x d) is searched exactly."""
EF_GRID = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
TUNE_K = 20
BATCH = 2048


def choose_factory(kind: str, n: int, d: int, queries: int = 1) -> str:
    """The FAISS factory string of ``kind`` for ``n`` vectors of size ``d`` ("Flat" = exact),
    expecting ``queries`` queries in one pass (``auto`` only)."""
    if kind not in KINDS:
        raise ValueError(f"index kind {kind!r} is not one of {', '.join(KINDS)}")
    if kind == "auto":
        small = n * d <= EXACT_MAX_FLOATS and queries * n * d <= BATCH_EXACT_FLOATS
        kind = "exact" if small else "hnsw"
    if kind == "exact":
        return "Flat"
    if kind == "hnsw":
        return "HNSW32"
    nlist = int(min(max(1, n // 39), max(1, round(4 * math.sqrt(n)))))
    if kind == "ivf":
        return f"IVF{nlist},Flat"
    m = max(s for s in range(1, max(1, d // 4) + 1) if d % s == 0)
    return f"IVF{nlist},PQ{m}"


def _normalised(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1)).astype(np.float32)


class EmbeddingIndex:
    """Top-k inner-product (or cosine) search over ``vectors``.

    Build with :meth:`build`; restore with :meth:`from_bytes`. The raw vectors are kept (they
    come from the checkpoint) for exact search of filtered and heavily excluded queries.

    Args:
        vectors: float32 ``(n, d)``, as given (normalised here when ``metric="cosine"``).
        factory: the FAISS factory string ("Flat" for exact search).
        metric: ``ip`` or ``cosine``.
        faiss_index: the trained FAISS index (None for exact).
        params: search parameters (``efSearch`` or ``nprobe``).
        info: build facts (seconds, tuned recall), kept in the index file.
    """

    def __init__(self, vectors: np.ndarray, factory: str, metric: str = "ip",
                 faiss_index: Any = None, params: dict[str, int] | None = None,
                 info: dict[str, Any] | None = None) -> None:
        if metric not in METRICS:
            raise ValueError(f"metric {metric!r} is not one of {', '.join(METRICS)}")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.vectors = _normalised(vectors) if metric == "cosine" else vectors
        self.factory, self.metric = factory, metric
        self.index = faiss_index
        self.params = dict(params or {})
        self.info = dict(info or {})

    @property
    def exact(self) -> bool:
        """Whether searches are exact."""
        return self.index is None

    def __len__(self) -> int:
        return len(self.vectors)

    def __repr__(self) -> str:
        return (f"EmbeddingIndex({self.factory!r}, metric={self.metric!r}, n={len(self)}, "
                f"d={self.vectors.shape[1]}, params={self.params})")

    @classmethod
    def build(cls, vectors: np.ndarray, *, kind: str = "auto", factory: str | None = None,
              metric: str = "ip", tune_queries: np.ndarray | None = None,
              target_recall: float = 0.98, seed: int = 0,
              ef_construction: int | None = None, queries: int = 1) -> EmbeddingIndex:
        """Build (and tune) an index over ``vectors``.

        Args:
            vectors: float32 ``(n, d)``.
            kind: see :data:`KINDS`; ignored when ``factory`` is given.
            factory: a FAISS factory string, e.g. ``"HNSW64"`` or ``"IVF1024,PQ16"``.
            metric: ``ip`` (inner product, the models' score) or ``cosine``.
            tune_queries: queries typical of its use, for tuning (default: a sample of vectors).
            target_recall: recall@20 against exact search that tuning aims for.
            seed: seed of the tuning sample and of IVF training.
            ef_construction: HNSW build depth (default: FAISS's, 40); deeper builds take longer
                and can reach a recall target with a smaller ``efSearch``.
            queries: how many queries one pass of the index's use asks (``auto`` stays exact
                only while that pass is cheap; see :data:`BATCH_EXACT_FLOATS`).
        """
        if not 0 < target_recall <= 1:
            raise ValueError(f"target_recall must be in (0, 1], got {target_recall}")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or not len(vectors):
            raise ValueError(f"cannot index an empty or non-2D table (shape {vectors.shape})")
        if not np.isfinite(vectors).all():
            raise ValueError("the embeddings contain NaN or infinity; retrain the model")
        n, d = vectors.shape
        factory = factory or choose_factory(kind, n, d, queries)
        self = cls(vectors, factory, metric)
        if factory == "Flat":
            self.info = {"build_seconds": 0.0, "recall@20": 1.0}
            return self
        import faiss

        started = time.perf_counter()
        try:
            index = faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise ValueError(f"FAISS cannot build the factory string {factory!r}: "
                             f"{str(exc).strip().splitlines()[-1]}") from exc
        hnsw = getattr(faiss.downcast_index(index), "hnsw", None)
        if ef_construction is not None:
            if hnsw is None:
                raise ValueError(f"ef_construction applies to HNSW indexes, not {factory!r}")
            hnsw.efConstruction = ef_construction
        if not index.is_trained:
            rng = np.random.default_rng(seed)
            sample = self.vectors[rng.choice(n, min(n, 256 * 1024), replace=False)]
            index.train(sample)
        index.add(self.vectors)
        self.index = index
        built = time.perf_counter() - started
        self.info = {"build_seconds": round(built, 3), **self._tune(tune_queries, target_recall,
                                                                    seed)}
        return self

    def updated(self, vectors: np.ndarray, changed: np.ndarray, queries: np.ndarray, *,
                kind: str = "auto", factory: str | None = None, target_recall: float = 0.98,
                seed: int = 0, n_queries: int = 1) -> EmbeddingIndex | None:
        """This index brought to ``vectors`` (its own rows first, ``changed`` among them, then
        new rows) without a rebuild, or ``None`` where a rebuild is needed; ``kind``,
        ``factory``, ``target_recall`` and ``seed`` are the settings it was built with,
        ``n_queries`` the queries of one pass now (:meth:`build`'s ``queries``).

        Exact search holds no structure: it takes the new table as it is (while the kind still
        says exact). IVF indexes replace the changed vectors (``remove_ids``, then
        ``add_with_ids``) and add the new ones; HNSW adds new vectors but cannot move one, so a
        changed vector means a rebuild. An updated approximate index keeps its tuned search
        parameter if its recall@20 against exact search, measured again on up to 1,000 of
        ``queries``, still reaches ``target_recall``; otherwise it is rebuilt (and tuned) too.
        """
        n, d = vectors.shape
        if self.exact:
            if (factory or choose_factory(kind, n, d, n_queries)) != "Flat":
                return None  # grown past exact search
            return EmbeddingIndex(vectors, "Flat", self.metric, info=dict(self.info))
        ivf = "IVF" in self.factory
        if (len(changed) and not ivf) or vectors.shape[1] != self.vectors.shape[1]:
            return None
        if not len(changed) and n == len(self):  # the same vectors: the same index
            return EmbeddingIndex(vectors, self.factory, self.metric, self.index, self.params,
                                  self.info)
        import faiss

        started = time.perf_counter()
        new = EmbeddingIndex(vectors, self.factory, self.metric,
                             faiss.clone_index(faiss.downcast_index(self.index)), self.params)
        rows = np.concatenate([changed, np.arange(len(self), n)]).astype(np.int64)
        if ivf:
            if len(changed):
                new.index.remove_ids(changed.astype(np.int64))
            new.index.add_with_ids(new.vectors[rows], rows)
        else:
            new.index.add(new.vectors[rows])
        informative = queries[np.linalg.norm(queries, axis=1) > 0]
        rng = np.random.default_rng(seed)
        sample = informative[rng.choice(len(informative), min(len(informative), 1000),
                                        replace=False)] if len(informative) else vectors[:1000]
        k = min(20, n)
        if self.metric == "cosine":
            sample = sample / np.maximum(np.linalg.norm(sample, axis=1, keepdims=True), 1e-30)
        sample = np.ascontiguousarray(sample, dtype=np.float32)
        recall = recall_at_k(new.search(sample, k).ids, exact_search(sample, new.vectors, k).ids)
        if recall < target_recall:
            return None
        new.info = {**self.info, "recall@20": round(recall, 4),
                    "in_place": {"replaced": len(changed), "added": n - len(self),
                                 "seconds": round(time.perf_counter() - started, 3)}}
        return new

    def _tune(self, queries: np.ndarray | None, target: float, seed: int) -> dict[str, Any]:
        """Pick the cheapest search parameter that reaches ``target`` recall@20."""
        import faiss

        rng = np.random.default_rng(seed)
        if queries is None:
            queries = self.vectors
        # Zero vectors (users or items without interactions) rank everything equal: any order
        # is exact, so they would make recall meaningless.
        informative = np.linalg.norm(queries, axis=1) > 0
        queries = queries[informative] if informative.any() else self.vectors
        queries = self._prepare(queries[rng.choice(len(queries), min(len(queries), 1000),
                                                   replace=False)])
        k = min(TUNE_K, len(self))
        truth = exact_search(queries, self.vectors, k).ids
        inner = faiss.extract_index_ivf(self.index) if "IVF" in self.factory else None
        if inner is not None:
            name, grid = "nprobe", [p for p in (2 ** i for i in range(17)) if p < inner.nlist]
            grid.append(inner.nlist)
        elif "HNSW" in self.factory:
            name, grid = "efSearch", list(EF_GRID)
        else:
            return {"recall@20": recall_at_k(self._faiss(queries, k).ids, truth)}
        recall = 0.0
        for value in grid:
            self.params = {name: value}
            recall = recall_at_k(self._faiss(queries, k).ids, truth)
            if recall >= target:
                break
        return {"recall@20": round(recall, 4), "target_recall": target}

    def _prepare(self, queries: np.ndarray) -> np.ndarray:
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if queries.shape[1] != self.vectors.shape[1]:
            raise ValueError(f"queries have {queries.shape[1]} dimensions, the index "
                             f"{self.vectors.shape[1]}")
        return _normalised(queries) if self.metric == "cosine" else queries

    def _faiss(self, queries: np.ndarray, k: int,
               allowed: np.ndarray | None = None) -> SearchResult:
        """FAISS search with the tuned parameters (``efSearch`` widened to ``k``), restricted to
        the ``allowed`` bitmap when given."""
        import faiss

        index = faiss.downcast_index(self.index)
        outer = None
        if isinstance(index, faiss.IndexPreTransform):
            outer, index = index, faiss.downcast_index(index.index)
        if "efSearch" in self.params:
            # faiss's bundled __init__.pyi omits SearchParametersHNSW (present at run time).
            params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
            params.efSearch = max(self.params["efSearch"], k)
        elif "nprobe" in self.params:
            params = faiss.SearchParametersIVF()
            params.nprobe = self.params["nprobe"]
        else:
            params = faiss.SearchParameters()
        if allowed is not None:
            bits = np.packbits(allowed, bitorder="little")
            selector = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bits))
            params.sel = selector
        if outer is not None:
            wrapped = faiss.SearchParametersPreTransform()
            wrapped.index_params = params
            params = wrapped
        scores, ids = self.index.search(queries, k, params=params)
        return SearchResult(np.where(ids >= 0, scores, np.nan).astype(np.float32), ids)

    def search(self, queries: np.ndarray, k: int, *, exclude: sp.csr_matrix | None = None,
               candidates: np.ndarray | None = None) -> SearchResult:
        """The best ``k`` vectors for each query, best first.

        Args:
            queries: float32 ``(n, d)`` (one vector is taken as one query).
            k: results per query; rows with fewer admissible vectors are padded (-1, NaN).
            exclude: ``n x len(self)`` sparse matrix of pairs to leave out.
            candidates: positions of the only admissible vectors (a filter), or None.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        queries = self._prepare(queries)
        if exclude is not None:
            exclude = sp.csr_matrix(exclude)
            if exclude.shape != (len(queries), len(self)):
                raise ValueError(f"exclude has shape {exclude.shape}, expected "
                                 f"{(len(queries), len(self))}")
        if (self.exact or (candidates is not None
                           and len(candidates) * self.vectors.shape[1] <= FILTER_EXACT_FLOATS)):
            return exact_search(queries, self.vectors, k, exclude=exclude, candidates=candidates)
        counts = (np.diff(exclude.indptr) if exclude is not None
                  else np.zeros(len(queries), dtype=np.int64))
        allowed = None
        if candidates is not None:
            allowed = np.zeros(len(self), dtype=bool)
            allowed[candidates] = True
        result = empty_result(len(queries), k)
        heavy = np.flatnonzero(counts + k > MAX_FETCH)
        if len(heavy):
            sub = exact_search(queries[heavy], self.vectors, k,
                               exclude=exclude[heavy] if exclude is not None else None,
                               candidates=candidates)
            result.scores[heavy], result.ids[heavy] = sub
        light = np.setdiff1d(np.arange(len(queries)), heavy)
        light = light[np.argsort(counts[light], kind="stable")]
        pairs = PairSet(exclude) if exclude is not None else None
        # Rows whose k + exclusions share a power of two are fetched together, so a user with
        # many exclusions does not widen the search of the others. Each fetches that power of
        # two, so a row's result never depends on the rows sharing its batch: blocks of users
        # (retrieval.partitions) give the answers of one search over all of them.
        bucket = np.ceil(np.log2(k + counts[light])).astype(np.int64)
        edges = np.flatnonzero(np.diff(bucket)) + 1
        chunks = [c[i:i + BATCH] for c in np.split(light, edges) for i in range(0, len(c), BATCH)]
        for rows in chunks:
            fetch = min(len(self), 1 << int(np.ceil(np.log2(k + counts[rows[0]]))))
            found = self._faiss(queries[rows], fetch, allowed)
            drop = found.ids < 0
            if pairs is not None:
                drop |= pairs.contains(rows[:, None], np.maximum(found.ids, 0))
            order = np.argsort(drop, axis=1, kind="stable")[:, :k]
            keep = ~np.take_along_axis(drop, order, axis=1)
            width = order.shape[1]
            result.ids[rows, :width] = np.where(keep, np.take_along_axis(found.ids, order, 1), -1)
            result.scores[rows, :width] = np.where(
                keep, np.take_along_axis(found.scores, order, 1), np.nan)
        return result

    @property
    def nbytes(self) -> int:
        """Memory of the search structure (the vectors themselves for exact search)."""
        if self.exact:
            return int(self.vectors.nbytes)
        import faiss

        return int(faiss.serialize_index(self.index).nbytes)

    def to_bytes(self) -> np.ndarray:
        """The FAISS index serialised (empty for exact search)."""
        if self.exact:
            return np.zeros(0, dtype=np.uint8)
        import faiss

        return faiss.serialize_index(self.index)

    @classmethod
    def from_bytes(cls, vectors: np.ndarray, blob: np.ndarray, factory: str, metric: str,
                   params: dict[str, int], info: dict[str, Any]) -> EmbeddingIndex:
        """Restore what :meth:`to_bytes` gave, over the same ``vectors``."""
        index = None
        if factory != "Flat":
            import faiss

            index = faiss.deserialize_index(np.ascontiguousarray(blob, dtype=np.uint8))
            if index.ntotal != len(vectors) or index.d != vectors.shape[1]:
                raise ValueError(f"the stored {factory} index holds {index.ntotal} x {index.d} "
                                 f"vectors, the checkpoint {vectors.shape[0]} x "
                                 f"{vectors.shape[1]}; rebuild it with `shopgraph index build`")
            index = _maybe_gpu(index, factory)
        return cls(vectors, factory, metric, index, params, info)


def _maybe_gpu(index: Any, factory: str) -> Any:
    """Move IVF indexes to the GPU when ``faiss-gpu`` sees one (HNSW has no GPU version)."""
    import faiss

    if "IVF" in factory and getattr(faiss, "get_num_gpus", lambda: 0)() > 0:
        return faiss.index_cpu_to_all_gpus(index)
    return index
