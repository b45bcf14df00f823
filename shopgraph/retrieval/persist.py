"""Index files: every index of one model, its id maps' side data and the fingerprint of the
checkpoint it came from, in one ``.npz`` written atomically (no pickle).

Layout of ``<workspace>/indexes/<model>.npz``: ``meta`` (JSON: format, model, checkpoint
fingerprint, per-index factory, metric, parameters and build facts), ``index/<name>`` (FAISS
bytes; empty for exact search), ``seen_indptr`` / ``seen_indices`` (the user -> item pairs left
out of recommendations, in checkpoint positions), ``item_category``, ``categories``,
``item_price`` (the catalogue for filters). The vectors themselves stay in the checkpoint.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from shopgraph.artifacts import read_header, write_npz
from shopgraph.config import IndexConfig
from shopgraph.errors import IndexMismatchError
from shopgraph.gnn.checkpoint import Checkpoint
from shopgraph.retrieval.index import EmbeddingIndex

INDEX_FORMAT = 1
TABLES = {"items": ("item", "ip"), "users": ("user", "ip"),
          "items_cosine": ("item", "cosine"), "users_cosine": ("user", "cosine")}
"""Index name -> (which embedding table, metric). ``items``: recommendations; ``users``:
audiences; the cosine pair: similar items and similar users."""


@dataclass
class Catalogue:
    """Item side data used by filters, aligned with the checkpoint's item positions.

    Args:
        category: int64 code per item, -1 when unknown.
        categories: code -> category name.
        price: float64 per item, NaN when unknown.
    """

    category: np.ndarray
    categories: np.ndarray
    price: np.ndarray

    @classmethod
    def empty(cls, n_items: int) -> Catalogue:
        """A catalogue that knows nothing about ``n_items`` items."""
        return cls(np.full(n_items, -1, dtype=np.int64), np.zeros(0, dtype=str),
                   np.full(n_items, np.nan))


@dataclass
class IndexBundle:
    """Every index of one model with what queries need beside the vectors.

    Args:
        model: the model name.
        checkpoint_fingerprint: :attr:`Checkpoint.fingerprint` of the source checkpoint.
        indexes: name (see :data:`TABLES`) -> index.
        seen: ``n_users x n_items`` pairs excluded from recommendations.
        seen_rel_types: the relationship types ``seen`` was built from.
        catalogue: item categories and prices.
        meta: build facts (created, settings).
    """

    model: str
    checkpoint_fingerprint: str
    indexes: dict[str, EmbeddingIndex]
    seen: sp.csr_matrix
    seen_rel_types: tuple[str, ...]
    catalogue: Catalogue
    meta: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary: per index its factory, parameters, recall and size."""
        return {"model": self.model, "checkpoint_fingerprint": self.checkpoint_fingerprint,
                "seen_rel_types": list(self.seen_rel_types), "seen_pairs": int(self.seen.nnz),
                **self.meta,
                "indexes": {name: {"factory": ix.factory, "metric": ix.metric, "n": len(ix),
                                   "d": int(ix.vectors.shape[1]), "params": ix.params,
                                   "bytes": ix.nbytes, **ix.info}
                            for name, ix in self.indexes.items()}}


def save_bundle(path: str | Path, bundle: IndexBundle) -> Path:
    """Write ``bundle`` to ``path`` atomically."""
    header = {"format": INDEX_FORMAT, "model": bundle.model,
              "checkpoint_fingerprint": bundle.checkpoint_fingerprint,
              "seen_rel_types": list(bundle.seen_rel_types),
              "meta": {"created": time.time(), **bundle.meta},
              "indexes": {name: {"factory": ix.factory, "metric": ix.metric,
                                 "params": ix.params, "info": ix.info}
                          for name, ix in bundle.indexes.items()}}
    arrays = {f"index/{name}": ix.to_bytes() for name, ix in bundle.indexes.items()}
    cat = bundle.catalogue
    return write_npz(path, header, {"seen_indptr": bundle.seen.indptr,
                                    "seen_indices": bundle.seen.indices,
                                    "item_category": cat.category,
                                    "categories": cat.categories.astype(str),
                                    "item_price": cat.price, **arrays})


def load_bundle(path: str | Path, ckpt: Checkpoint) -> IndexBundle:
    """Read an index file and attach it to the vectors of ``ckpt``.

    Raises:
        FileNotFoundError: no index at ``path``.
        IndexMismatchError: the index was built from another checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no index at {path}; build one with `shopgraph index build "
                                f"--model {ckpt.model}`")
    with np.load(path, allow_pickle=False) as z:
        header = read_header(z, path, INDEX_FORMAT, "shopgraph index build")
        if header["checkpoint_fingerprint"] != ckpt.fingerprint:
            raise IndexMismatchError(
                f"{path} was built from another checkpoint of {header['model']} than the one "
                f"loaded (fingerprints {header['checkpoint_fingerprint'][:12]} vs "
                f"{ckpt.fingerprint[:12]}); rebuild it with `shopgraph index build --model "
                f"{ckpt.model}`")
        tables = {"item": ckpt.item_emb, "user": ckpt.user_emb}
        indexes = {name: EmbeddingIndex.from_bytes(
            tables[TABLES[name][0]], z[f"index/{name}"], spec["factory"], spec["metric"],
            spec["params"], spec["info"]) for name, spec in header["indexes"].items()}
        n_users, n_items = len(ckpt.user_ids), len(ckpt.item_ids)
        seen = sp.csr_matrix((np.ones(len(z["seen_indices"]), dtype=np.float32),
                              z["seen_indices"], z["seen_indptr"]), shape=(n_users, n_items))
        catalogue = Catalogue(z["item_category"], z["categories"], z["item_price"])
    return IndexBundle(header["model"], header["checkpoint_fingerprint"], indexes, seen,
                       tuple(header["seen_rel_types"]), catalogue, header["meta"])


def _header(path: Path) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as z:
        header: dict[str, Any] = read_header(z, path, INDEX_FORMAT, "shopgraph index build")
    return header


def index_config(path: str | Path) -> IndexConfig | None:
    """The settings the index at ``path`` was built with (``None``: there is no index)."""
    path = Path(path)
    if not path.is_file():
        return None
    header = _header(path)
    meta = header.get("meta", {})
    return IndexConfig(kind=meta.get("kind", "auto"), factory=meta.get("factory"),
                       target_recall=meta.get("target_recall", 0.98),
                       seen_rel_types=tuple(header.get("seen_rel_types") or ()) or None,
                       seed=meta.get("seed", 0), ef_construction=meta.get("ef_construction"))


def index_fingerprint(path: str | Path) -> str | None:
    """The fingerprint of the checkpoint the index at ``path`` was built from."""
    fp: str | None = _header(Path(path)).get("checkpoint_fingerprint")
    return fp
