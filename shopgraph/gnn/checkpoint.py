"""Checkpoints: one ``.npz`` holding weights, embeddings, id maps, config and data fingerprint.

No pickle: weights are plain arrays, and the metadata is a JSON string stored as an array. The
file is written atomically (temp file + rename), so a checkpoint is complete or absent.

``data_fingerprint`` is always that of the interactions the stored embeddings were fitted on: all
of them for a model refitted for serving (``meta["refit"]`` set, see
:func:`shopgraph.gnn.train.refit`), the training part of the split otherwise.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shopgraph.artifacts import read_header, write_npz
from shopgraph.gnn.base import EmbeddingModel
from shopgraph.gnn.data import InteractionMatrix

FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """A loaded checkpoint.

    Args:
        model: the model name (``lightgcn``, ``graphsage``, ...).
        config: its hyper-parameters.
        data_fingerprint: fingerprint of the matrix the embeddings were fitted on, and id maps.
        user_emb: float32 ``(n_users, d)``.
        item_emb: float32 ``(n_items, d)``.
        user_ids: position -> user id.
        item_ids: position -> item id.
        weights: the model's own arrays (see :meth:`EmbeddingModel.state`).
        meta: everything else (metrics, epoch, created time, training state).
    """

    model: str
    config: dict[str, Any]
    data_fingerprint: str
    user_emb: np.ndarray
    item_emb: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray
    weights: dict[str, np.ndarray]
    meta: dict[str, Any]

    @property
    def fingerprint(self) -> str:
        """What an index built from this checkpoint records: a hash of its embeddings and ids."""
        return self.meta.get("embeddings_sha256") or embeddings_fingerprint(
            self.user_emb, self.item_emb, self.user_ids, self.item_ids)

    @property
    def refit(self) -> dict[str, Any] | None:
        """How the served model was refitted on all interactions (``interactions``,
        ``fit_seconds``, ``epochs``), or ``None`` when it is the model fitted on the split."""
        refit: dict[str, Any] | None = self.meta.get("refit")
        return refit


def embeddings_fingerprint(user_emb: np.ndarray, item_emb: np.ndarray, user_ids: np.ndarray,
                           item_ids: np.ndarray) -> str:
    """SHA-256 of the embedding tables and id maps (what retrieval depends on)."""
    digest = hashlib.sha256()
    for arr in (user_emb, item_emb):
        digest.update(str(arr.shape).encode())
        digest.update(np.ascontiguousarray(arr, dtype=np.float32).data)
    for ids in (user_ids, item_ids):
        digest.update("\n".join(np.asarray(ids, dtype=str).tolist()).encode())
        digest.update(b"\0")
    return digest.hexdigest()


def save_checkpoint(path: str | Path, model: EmbeddingModel, train: InteractionMatrix,
                    **meta: Any) -> Path:
    """Write ``model`` (fitted on ``train``, whose fingerprint is recorded) to ``path``;
    ``meta`` goes into the JSON header."""
    user_emb, item_emb = model.embeddings()
    header = {"format": FORMAT_VERSION, "model": model.name, "config": model.config,
              "data_fingerprint": train.fingerprint(), "created": time.time(),
              "embeddings_sha256": embeddings_fingerprint(user_emb, item_emb, train.user_ids,
                                                          train.item_ids), **meta}
    arrays = {f"w/{k}": v for k, v in model.state().items()}
    return write_npz(path, header, {"user_emb": user_emb, "item_emb": item_emb,
                                    "user_ids": train.user_ids.astype(str),
                                    "item_ids": train.item_ids.astype(str), **arrays})


def load_checkpoint(path: str | Path, weights: bool = True) -> Checkpoint:
    """Read what :func:`save_checkpoint` wrote; ``weights=False`` skips the model's own arrays
    (retrieval needs only the embeddings and id maps)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; train one with `shopgraph train`")
    with np.load(path, allow_pickle=False) as z:
        header = read_header(z, path, FORMAT_VERSION, "shopgraph train")
        arrays = {k[2:]: z[k] for k in z.files if k.startswith("w/")} if weights else {}
        ckpt = Checkpoint(header.pop("model"), header.pop("config"),
                          header.pop("data_fingerprint"), z["user_emb"], z["item_emb"],
                          z["user_ids"], z["item_ids"], arrays, header)
    return ckpt
