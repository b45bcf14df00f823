"""Reading the simulator's ground truth (``truth.npz``) and the true top-k per user.

The choice model's utility is bilinear, :math:`s = U V^\\top` with ``user_factors`` and
``item_factors``, so P(next view = i) is the softmax of a user's row. A purchase also has to pass
the funnel; its propensity, up to the user's constant, is

.. math::

    \\log P(\\text{buy } i) = s_{ui} + \\log\\sigma(a_c + k_c m_{ui})
        + \\log\\sigma(a_b + k_b m_{ui}) + \\text{const}_u, \\qquad m_{ui} = s_{ui} - b_i .
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import log_expit

KINDS = ("view", "purchase")


def load_truth(path: str | Path) -> dict[str, Any]:
    """All arrays of a ``truth.npz`` (a folder is taken to hold one); ``params`` as a dict."""
    p = Path(path)
    p = p / "truth.npz" if p.is_dir() else p
    if not p.is_file():
        raise FileNotFoundError(f"no truth file at {p}; run `shopgraph simulate --out DIR` first")
    with np.load(p, allow_pickle=False) as z:
        out: dict[str, Any] = {k: z[k] for k in z.files}
    out["params"] = json.loads(str(out["params"]))
    return out


def true_scores(truth: dict[str, Any], users: Sequence[int] | np.ndarray | None = None,
                kind: str = "view") -> np.ndarray:
    """Log-propensities (users x items, up to a per-user constant) of the next ``kind``.

    Args:
        truth: :func:`load_truth`'s dict.
        users: user positions (default: all).
        kind: ``view`` (the choice model's utility) or ``purchase`` (view, cart and buy).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    u = truth["user_factors"] if users is None else truth["user_factors"][np.asarray(users)]
    s: np.ndarray = u @ truth["item_factors"].T
    if kind == "purchase":
        p = truth["params"]
        m = s - truth["item_bias"][None, :]
        s = (s + log_expit(p["cart_bias"] + p["cart_slope"] * m)
             + log_expit(p["buy_bias"] + p["buy_slope"] * m))
    return s


BLOCK_CELLS = 4_000_000
"""Users x items scores held at once by :func:`true_top_k` (32 MB of float64 per copy)."""


def true_top_k(truth: dict[str, Any], k: int, users: Sequence[int] | np.ndarray | None = None,
               kind: str = "view", exclude: Any = None, block: int | None = None) -> np.ndarray:
    """The ``k`` items (positions, best first) each user most likely ``kind``s next.

    Args:
        truth: :func:`load_truth`'s dict.
        k: list length.
        users: user positions (default: all).
        kind: ``view`` or ``purchase``.
        exclude: a users x items scipy sparse matrix (rows follow ``users``) of items to leave
            out, e.g. those already seen.
        block: users scored at a time (default: as many as keep a block's score matrix near
            :data:`BLOCK_CELLS` cells, so memory does not grow with the catalogue).
    """
    rows = np.arange(len(truth["user_factors"])) if users is None else np.asarray(users)
    n_items = len(truth["item_factors"])
    block = block or max(64, BLOCK_CELLS // max(n_items, 1))
    if not 0 < k <= n_items:
        raise ValueError(f"k must be between 1 and the {n_items} items, got {k}")
    out = np.empty((len(rows), k), dtype=np.int64)
    for start in range(0, len(rows), block):
        s = true_scores(truth, rows[start:start + block], kind)
        if exclude is not None:
            part = exclude[start:start + block].tocoo()
            s[part.row, part.col] = -np.inf
        top = np.argpartition(-s, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(s, top, axis=1), axis=1, kind="stable")
        out[start:start + block] = np.take_along_axis(top, order, axis=1)
    return out
