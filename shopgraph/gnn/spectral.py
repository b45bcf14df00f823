"""A closed-form spectral graph filter: no training loop, embeddings from one truncated SVD.

Background: GF-CF (Shen et al., "How Powerful is Graph Convolution for Recommendation?",
CIKM 2021) showed that LightGCN-style propagation is a low-pass filter on the normalised
interaction matrix, and that a linear item-item filter plus an *ideal* low-pass filter (the top
right singular vectors of :math:`\\tilde R = D_U^{-1/2} R D_I^{-1/2}`) matches trained GCNs. SGFCF
(Peng et al., "How Powerful is Graph Filtering for Recommendation", KDD 2024) keeps only the
top-K singular vectors, shapes the filter on the singular values and tunes the normalisation
exponent. This model is that low-rank family, written so that it is exactly an inner product:

.. math::
    \\tilde R = D_U^{-a} R D_I^{-b} \\approx U \\Sigma V^\\top \\ (\\text{top } k), \\qquad
    s_u = \\tilde r_u \\, V \\Sigma^{p} V^\\top D_I^{c},

    e_u = \\tilde r_u V \\Sigma^{p/2} \\;(= U_u \\Sigma^{1 + p/2}), \\qquad
    e_i = d_i^{c} \\, V_i \\Sigma^{p/2}, \\qquad s_{ui} = e_u^\\top e_i .

:math:`a` (``user_norm``) and :math:`b` (``item_norm``) shape the spectrum, :math:`p`
(``power``) is the filter :math:`f(\\sigma) = \\sigma^p` on the kept singular values (:math:`p = 0`:
the ideal low-pass filter), :math:`c` (``item_scale``) rescales the output by item degree. With
:math:`a = b = c = 1/2, p = 0` the ranking is GF-CF's ideal-filter term (the scores differ by a
per-user factor). GF-CF's linear term :math:`r_u \\tilde R^\\top \\tilde R` is full rank, so it is
left out: :meth:`score` is always ``user_emb @ item_emb.T``; on Gowalla's validation split full
GF-CF (linear + 0.3 x ideal term on 256 vectors) reached recall@20 0.1915, below this model's
0.2159 at the defaults.

Defaults. ``a=0.3, b=0.4`` and ``p=0`` were tuned on Gowalla ``train_split``/``valid`` by
``bench/spectral_tuning.py`` (the GF-CF exponents 1/2 gave 0.199 at k = 512; p = -0.5 ties,
p = 1 loses 0.009). The rank and ``c`` are **chosen from the data** when :meth:`fit` is given a
validation split (``tune``, on by default; ``shopgraph train`` gives it its held-out part, then
refits on everything at the chosen settings): each prefix of the singular vectors in
:data:`TUNE_RANKS` up to ``k`` (1024) at the current ``c``, then each ``c`` in
:data:`TUNE_ITEM_SCALES` at the best rank, is scored by recall@20 on up to ``tune_users``
validation users (:func:`tune_filter`). The right rank differs by two orders of magnitude
between datasets: 1024 on Gowalla (valid recall@20 0.192 / 0.216 /
0.225 at 256 / 512 / 1024; 1536 and 2048 lose a little), 16 on the 20,000-user simulated shop
(0.082, against 0.042 at 512 and LightGCN's 0.078). Tried and left out, on Gowalla's validation
split: adding GF-CF's full-rank linear term (+0.001), a filter rising with
:math:`\\sigma` (+0.002), a rank per user-degree quintile (every quintile prefers the full rank).

The SVD (:func:`randomized_svd`) is a seeded randomised range finder with power iterations
(Halko, Martinsson & Tropp, SIAM Review 2011) on PyTorch sparse CSR products, orthonormalised
through small Gram eigen-decompositions instead of tall QRs. On Gowalla at k = 512 (one thread)
it took 5.0 s against 14.2 s for ``torch.svd_lowrank`` and 150 s for ``scipy.sparse.linalg.svds``,
with equal or better validation recall@20 (0.2159 / 0.2150 / 0.2117). The same seed and thread
count give the same embeddings. ``threads`` (0: leave torch's setting) exists because on a
2-core machine shared with other jobs one torch thread was 3-8x faster than two.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from shopgraph.gnn.base import EmbeddingModel, FitReport
from shopgraph.gnn.data import InteractionMatrix


def _torch_csr(m: sp.csr_matrix) -> torch.Tensor:
    m = m.tocsr().astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(torch.from_numpy(m.indptr.astype(np.int64)),
                                       torch.from_numpy(m.indices.astype(np.int64)),
                                       torch.from_numpy(m.data), size=m.shape,
                                       check_invariants=False)


@contextmanager
def _threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch threads (0: leave the setting alone), restoring it afterwards."""
    before = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _orthonormalize(y: torch.Tensor, rtol: float = 1e-6) -> torch.Tensor:
    """An orthonormal basis of ``y``'s columns through the eigen-decomposition of its Gram
    matrix: GEMMs plus one small ``l x l`` ``eigh``, much cheaper than a QR of a tall matrix on a
    CPU. Directions below ``rtol`` of the largest are damped instead of amplified."""
    lam, w = torch.linalg.eigh((y.T @ y).double())
    top = float(lam.max())
    if top <= 0:  # an empty matrix: nothing to orthonormalise
        return y
    basis: torch.Tensor = y @ (w * lam.clamp_min(top * rtol).rsqrt()).float()
    return basis


def randomized_svd(m: sp.csr_matrix, k: int, oversample: int = 128, n_iter: int = 3,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` singular values and right singular vectors of a sparse matrix.

    Randomised range finder (Halko et al. 2011) with ``n_iter`` power iterations on
    ``k + oversample`` columns, each re-orthonormalised, then the Rayleigh-Ritz step on
    :math:`Z = A^\\top Q`: :math:`Z^\\top Z = W \\Sigma^2 W^\\top`, :math:`V = Z W \\Sigma^{-1}`.
    Deterministic for a given ``seed`` and thread count.

    Returns:
        ``(sigma, v)``: float32 ``(k,)`` descending and ``(n_cols, k)`` with orthonormal columns
        (columns of numerically zero singular values are zero).
    """
    k = min(k, *m.shape)
    width = min(k + oversample, *m.shape)
    a, at = _torch_csr(m), _torch_csr(m.T)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        q = _orthonormalize(a @ torch.randn(m.shape[1], width, generator=gen))
        for _ in range(n_iter):
            q = _orthonormalize(a @ _orthonormalize(at @ q))
        z = at @ q
        lam, w = torch.linalg.eigh((z.T @ z).double())
        lam, w = lam.flip(0)[:k], w.flip(1)[:, :k]
        sigma = lam.clamp_min(0).sqrt()
        keep = sigma > float(sigma[0]) * 1e-6 if k else sigma > 0
        inv = torch.where(keep, 1 / sigma.clamp_min(1e-30), torch.zeros_like(sigma))
        v = z @ (w * inv).float()
    return sigma.float().numpy(), v.contiguous().numpy()


TUNE_RANKS = (8, 16, 32, 64, 128, 256, 512, 1024, 2048)
"""Prefix ranks tried by :func:`tune_filter` (those up to the fitted ``k``)."""
TUNE_START = 256
"""The rank of the first SVD when tuning; the full ``k`` is fitted only if it is the best."""
TUNE_ITEM_SCALES = (0.0, 0.15, 0.3, 0.45, 0.6)
"""``item_scale`` values tried by :func:`tune_filter`."""


def _grid_recall(user_emb: np.ndarray, vt: torch.Tensor, di: np.ndarray, train: sp.csr_matrix,
                 held: sp.csr_matrix, users: np.ndarray, ranks: list[int],
                 scales: list[float], cut: int, batch: int) -> np.ndarray:
    """Recall@``cut`` of each of ``users`` for each (prefix rank, item scale): ``len(users) x
    len(ranks) x len(scales)``. Prefix scores are accumulated, so the grid costs one product up
    to the largest rank plus one top-``cut`` per pair."""
    powers = [torch.from_numpy(_power(di, c).astype(np.float32)) for c in scales]
    recall = np.zeros((len(users), len(ranks), len(scales)))
    n_held = np.diff(held.indptr)[users].astype(np.float64)
    for start in range(0, len(users), batch):
        rows = users[start:start + batch]
        emb = torch.from_numpy(np.ascontiguousarray(user_emb[start:start + batch],
                                                    dtype=np.float32))
        seen = train[rows].tocoo()
        mask = (torch.from_numpy(seen.row.astype(np.int64)),
                torch.from_numpy(seen.col.astype(np.int64)))
        truth = torch.from_numpy(held[rows].toarray() > 0)
        acc = torch.zeros(len(rows), vt.shape[1])
        lo = 0
        for a, hi in enumerate(ranks):
            acc += emb[:, lo:hi] @ vt[lo:hi]
            lo = hi
            for b, scale in enumerate(powers):
                scored = acc * scale
                scored[mask] = -torch.inf
                top = torch.topk(scored, min(cut, vt.shape[1]), dim=1).indices
                found = truth.gather(1, top).sum(1).numpy()
                recall[start:start + batch, a, b] = found / n_held[start:start + batch]
    return recall


def tune_filter(user_emb: np.ndarray, v: np.ndarray, weight: np.ndarray, di: np.ndarray,
                train: sp.csr_matrix, valid: sp.csr_matrix, users: np.ndarray,
                item_scale: float, cut: int = 20, batch: int = 1024,
                min_rank: int = 0) -> list[dict[str, float]]:
    r"""Choose a rank and an item scale on validation recall@``cut``; one row per pair tried
    (keys ``k``, ``item_scale``, ``recall``, ``chosen``).

    First the prefix ranks in :data:`TUNE_RANKS` (from ``min_rank`` up to ``v``'s) at
    ``item_scale``: the
    **largest** rank within one standard error (paired over users) of the best is chosen, since
    the served model is refitted on more data than this split holds, and ties in validation
    favour the rank that more data supports. Then every scale in :data:`TUNE_ITEM_SCALES` at
    that rank; the best is chosen.

    Scores of ``users`` are :math:`\sum_{j<k} e_{uj} w_j v_{ij} \cdot d_i^{c}`. ``user_emb``
    holds the users' rows of :math:`\tilde R V`, ``weight`` the filter on each singular vector,
    ``di`` the training item degrees. Training items are excluded.
    """
    ranks = [r for r in TUNE_RANKS if min_rank <= r < v.shape[1]] + [v.shape[1]]
    held = valid.tocsr()
    vt = torch.from_numpy(np.ascontiguousarray((v * weight).T, dtype=np.float32))
    per_user = _grid_recall(user_emb, vt, di, train, held, users, ranks, [item_scale], cut,
                            batch)[:, :, 0]
    by_rank = per_user.mean(axis=0)
    top = int(np.argmax(by_rank))
    gap = per_user[:, [top]] - per_user
    se = gap.std(axis=0, ddof=1) / np.sqrt(len(users)) if len(users) > 1 else 0 * by_rank
    rank = ranks[max(i for i in range(len(ranks)) if by_rank[top] - by_rank[i] <= se[i])]
    scales = [c for c in TUNE_ITEM_SCALES if c != item_scale]
    by_scale = _grid_recall(user_emb[:, :rank], vt[:rank], di, train, held, users, [rank],
                            scales, cut, batch)[:, 0].mean(axis=0)
    rows = ([{"k": float(r), "item_scale": item_scale, "recall": float(x)}
             for r, x in zip(ranks, by_rank)]
            + [{"k": float(rank), "item_scale": c, "recall": float(x)}
               for c, x in zip(scales, by_scale)])
    at_rank = [row for row in rows if row["k"] == rank]
    best = max(at_rank, key=lambda row: row["recall"])
    for row in rows:
        row["chosen"] = float(row is best)
    return rows


def _power(x: np.ndarray, e: float) -> np.ndarray:
    """``x ** e`` where ``x > 0``, else 0 (isolated users/items keep zero vectors)."""
    out = np.zeros(x.shape, dtype=np.float64)
    np.power(x, e, out=out, where=x > 0)
    return out


class SpectralFilter(EmbeddingModel):
    """Low-rank spectral graph filter; see the module docstring.

    Settings: ``k`` (embedding size = singular vectors kept), ``user_norm`` (a), ``item_norm`` (b),
    ``item_scale`` (c), ``power`` (p), ``oversample`` and ``n_iter`` (randomised SVD accuracy:
    extra columns and power iterations; on Gowalla 64/2 lost 0.001 recall@20, 128/5 and 256/2
    gained nothing over 128/3), ``seed``, ``threads`` (torch threads during :meth:`fit`, 0 = as
    set). The state holds the final embeddings, the item degrees and the singular values, so a
    checkpoint needs no training matrix; :meth:`fold_in` embeds new users from their rows.
    """

    name = "spectral"
    defaults: ClassVar[dict[str, Any]] = {
        "k": 1024, "user_norm": 0.3, "item_norm": 0.4, "item_scale": 0.3, "power": 0.0,
        "oversample": 128, "n_iter": 3, "seed": 0, "threads": 0, "tune": True,
        "tune_users": 5000}

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self._user: np.ndarray | None = None
        self._item: np.ndarray | None = None
        self._item_degree: np.ndarray | None = None
        self.sigma: np.ndarray | None = None

    def fit(self, train: InteractionMatrix, valid: InteractionMatrix | None = None,
            **kwargs: Any) -> FitReport:
        """One truncated SVD of the normalised ``train``. With ``valid`` and ``tune``, the rank and
        ``item_scale`` are chosen on it (see the module docstring); without ``tune`` it is only
        scored. Its recall@20 becomes ``best_metric``. ``kwargs`` are accepted and ignored."""
        cfg = self.config
        start = time.perf_counter()
        self.n_users, self.n_items = train.n_users, train.n_items
        r = train.matrix.tocsr().astype(np.float32)
        du = np.asarray(r.sum(axis=1)).ravel()
        di = np.asarray(r.sum(axis=0)).ravel()
        norm = self._normalize(r, du, di)
        tune = bool(cfg["tune"]) and valid is not None and valid.nnz > 0
        top = min(int(cfg["k"]), *norm.shape)
        step: dict[str, float] = {"epoch": 0, "svd_s": 0.0}
        with _threads(int(cfg["threads"])):
            # Tuning starts at rank 256 and fits the full rank only when 256 was the best.
            rank = min(top, TUNE_START) if tune else top
            while True:
                t0 = time.perf_counter()
                sigma, v = randomized_svd(norm, rank, int(cfg["oversample"]),
                                          int(cfg["n_iter"]), int(cfg["seed"]))
                step["svd_s"] += time.perf_counter() - t0
                if not tune:
                    break
                assert valid is not None
                # A second pass, at the full rank, starts from the first pass's best.
                sigma, v = self._tune(norm, sigma, v, di, train, valid, step,
                                      min_rank=int(step.get("tuned_k", 0)))
                if len(sigma) < rank or rank >= top:
                    break
                rank = top
            step.update(sigma_max=float(sigma[0]), sigma_k=float(sigma[-1]))
            self._set(norm, sigma, v, di)
            step["seconds"] = seconds = time.perf_counter() - start
            report = FitReport([step], best_epoch=0, seconds=seconds)
            if tune:  # scored while tuning, on up to tune_users users
                report.best_metric = step["tune_recall"]
            elif valid is not None:
                from shopgraph.gnn.metrics import evaluate

                cut = min(20, train.n_items)  # recall@20, or @n_items on a tiny catalogue
                metrics = evaluate(self.score, train.matrix, valid.matrix, ks=(cut,))
                step.update({f"valid_{name}": value for name, value in metrics.items()})
                report.best_metric = metrics[f"recall@{cut}"]
        return report

    def _tune(self, norm: sp.csr_matrix, sigma: np.ndarray, v: np.ndarray, di: np.ndarray,
              train: InteractionMatrix, valid: InteractionMatrix,
              step: dict[str, float], min_rank: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Choose the rank (a prefix of the singular vectors) and ``item_scale`` by recall@20 on
        up to ``tune_users`` of ``valid``'s users; set them in the config and return the kept
        ``(sigma, v)``."""
        t0 = time.perf_counter()
        held = valid.matrix.tocsr()
        users = np.flatnonzero(np.diff(held.indptr) > 0)
        limit = int(self.config["tune_users"])
        if len(users) > limit:
            rng = np.random.default_rng(int(self.config["seed"]))
            users = np.sort(rng.choice(users, limit, replace=False))
        weight = _power(sigma.astype(np.float64), float(self.config["power"]))
        table = tune_filter(np.asarray(norm[users] @ v), v, weight, di,
                            train.matrix.tocsr(), held, users,
                            float(self.config["item_scale"]), cut=min(20, train.n_items),
                            min_rank=min_rank)
        best = next(row for row in table if row["chosen"])
        k = int(best["k"])
        self.config.update(k=k, item_scale=float(best["item_scale"]))
        step.update({"tune_s": time.perf_counter() - t0, "tuned_k": float(k),
                     "tuned_item_scale": float(best["item_scale"]),
                     "tune_users": float(len(users)),
                     "tune_recall": float(best["recall"])})
        return sigma[:k], v[:, :k]

    def _normalize(self, rows: sp.csr_matrix, du: np.ndarray, di: np.ndarray) -> sp.csr_matrix:
        """:math:`D_U^{-a} R D_I^{-b}` for the given rows (``du`` their degrees)."""
        left = sp.diags(_power(du, -float(self.config["user_norm"])).astype(np.float32))
        right = sp.diags(_power(di, -float(self.config["item_norm"])).astype(np.float32))
        return (left @ rows @ right).tocsr().astype(np.float32)

    def _set(self, norm: sp.csr_matrix, sigma: np.ndarray, v: np.ndarray,
             di: np.ndarray) -> None:
        half = _power(sigma.astype(np.float64), float(self.config["power"]) / 2)
        v_half = (v * half).astype(np.float32)
        self._user = np.ascontiguousarray(norm @ v_half, dtype=np.float32)
        scale = _power(di, float(self.config["item_scale"]))
        self._item = np.ascontiguousarray(v_half * scale[:, None], dtype=np.float32)
        self._item_degree, self.sigma = di.astype(np.float32), sigma.astype(np.float32)
        self._invalidate()

    def refilter(self, item_scale: float | None = None,
                 power: float | None = None) -> SpectralFilter:
        """A copy with another ``item_scale`` and/or ``power``, without a new SVD: exactly the model
        that :meth:`fit` would give with those settings (they do not enter the SVD)."""
        user, item = self.embeddings()
        assert self.sigma is not None and self._item_degree is not None
        cfg = {**self.config, **{k: v for k, v in (("item_scale", item_scale), ("power", power))
                                 if v is not None}}
        sig = _power(self.sigma.astype(np.float64), (cfg["power"] - self.config["power"]) / 2)
        deg = _power(self._item_degree.astype(np.float64),
                     cfg["item_scale"] - self.config["item_scale"])
        other = SpectralFilter(**cfg)
        other.load_state({"user_emb": user * sig.astype(np.float32),
                          "item_emb": item * np.outer(deg, sig).astype(np.float32),
                          "item_degree": self._item_degree, "sigma": self.sigma},
                         self.n_users, self.n_items)
        return other

    def fold_in(self, rows: sp.csr_matrix) -> np.ndarray:
        """Embeddings of users given by interaction ``rows`` (``n x n_items``) without refitting:
        :math:`\\tilde r_u V \\Sigma^{p/2}` with the training item degrees."""
        _, item = self.embeddings()
        assert self._item_degree is not None
        di = self._item_degree.astype(np.float64)
        v_half = item * _power(di, -float(self.config["item_scale"]))[:, None].astype(np.float32)
        rows = sp.csr_matrix(rows, dtype=np.float32)
        du = np.asarray(rows.sum(axis=1)).ravel()
        return np.asarray(self._normalize(rows, du, di) @ v_half, dtype=np.float32)

    def updated(self, matrix: sp.csr_matrix, users: np.ndarray) -> SpectralFilter:
        r"""A copy folded in to a grown interaction ``matrix`` without a new SVD.

        ``matrix`` is ``U x I`` with the model's users and items first (``U >= n_users``,
        ``I >= n_items``). New items are embedded from their columns over the model's users,
        :math:`e_i = d_i^{c} \tilde r_i^\top E_U \Sigma^{-2}` (their projection on the left
        singular vectors), then the rows of ``users`` (positions whose interactions changed) and
        of every new user are folded in as in :meth:`fold_in`. Other users and items keep their
        embeddings; known items keep their training degrees.
        """
        user, item = self.embeddings()
        assert self.sigma is not None and self._item_degree is not None
        m = sp.csr_matrix(matrix, dtype=np.float32)
        if m.shape[0] < self.n_users or m.shape[1] < self.n_items:
            raise ValueError(f"the matrix ({m.shape[0]} x {m.shape[1]}) must hold the model's "
                             f"{self.n_users} users and {self.n_items} items first")
        cfg = self.config
        du = np.asarray(m.sum(axis=1)).ravel()
        cols = m[: self.n_users, self.n_items:].T.tocsr()
        d_new = np.asarray(m[:, self.n_items:].sum(axis=0)).ravel()
        inv_sq = _power(self.sigma.astype(np.float64), -2.0).astype(np.float32)
        left = sp.diags(_power(du[: self.n_users], -float(cfg["user_norm"])).astype(np.float32))
        proj = np.asarray((cols @ left) @ user, dtype=np.float32) * inv_sq
        scale = _power(d_new, float(cfg["item_scale"]) - float(cfg["item_norm"]))
        other = SpectralFilter(**cfg)
        other.load_state({"user_emb": np.zeros((m.shape[0], user.shape[1]), np.float32),
                          "item_emb": np.vstack([item, proj * scale[:, None].astype(np.float32)]),
                          "item_degree": np.concatenate([self._item_degree, d_new]),
                          "sigma": self.sigma}, m.shape[0], m.shape[1])
        assert other._user is not None
        other._user[: self.n_users] = user
        redo = np.union1d(np.asarray(users, dtype=np.int64),
                          np.arange(self.n_users, m.shape[0], dtype=np.int64))
        if len(redo):
            other._user[redo] = other.fold_in(m[redo])
        other._invalidate()
        return other

    def embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        if self._user is None or self._item is None:
            raise RuntimeError("the model is not fitted; call fit() or load a checkpoint")
        return self._user, self._item

    def state(self) -> dict[str, np.ndarray]:
        user, item = self.embeddings()
        assert self._item_degree is not None and self.sigma is not None
        return {"user_emb": user, "item_emb": item, "item_degree": self._item_degree,
                "sigma": self.sigma}

    def load_state(self, state: dict[str, np.ndarray], n_users: int, n_items: int) -> None:
        user, item = np.asarray(state["user_emb"]), np.asarray(state["item_emb"])
        if user.shape[0] != n_users or item.shape[0] != n_items:
            raise ValueError(f"state holds {user.shape[0]} users x {item.shape[0]} items, "
                             f"expected {n_users} x {n_items}")
        self.n_users, self.n_items = n_users, n_items
        self._user = np.ascontiguousarray(user, dtype=np.float32)
        self._item = np.ascontiguousarray(item, dtype=np.float32)
        self._item_degree = np.asarray(state["item_degree"], dtype=np.float32)
        self.sigma = np.asarray(state["sigma"], dtype=np.float32)
        self._invalidate()
