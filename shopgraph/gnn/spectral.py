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

Defaults (tuned on Gowalla ``train_split``/``valid`` by ``bench/spectral_tuning.py``):
``k=512`` (recall@20 0.192 / 0.216 / 0.225 at k = 256 / 512 / 1024), ``a=0.3, b=0.4, c=0.3``
(the GF-CF exponents 1/2 give 0.199), ``p=0`` (p = -0.5 ties, p = 1 loses 0.009).

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
        "k": 512, "user_norm": 0.3, "item_norm": 0.4, "item_scale": 0.3, "power": 0.0,
        "oversample": 128, "n_iter": 3, "seed": 0, "threads": 0}

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self._user: np.ndarray | None = None
        self._item: np.ndarray | None = None
        self._item_degree: np.ndarray | None = None
        self.sigma: np.ndarray | None = None

    def fit(self, train: InteractionMatrix, valid: InteractionMatrix | None = None,
            **kwargs: Any) -> FitReport:
        """One truncated SVD of the normalised ``train``; ``valid`` is only scored (recall@20
        becomes ``best_metric``). ``kwargs`` are accepted and ignored (no training loop)."""
        cfg = self.config
        start = time.perf_counter()
        self.n_users, self.n_items = train.n_users, train.n_items
        r = train.matrix.tocsr().astype(np.float32)
        du = np.asarray(r.sum(axis=1)).ravel()
        di = np.asarray(r.sum(axis=0)).ravel()
        norm = self._normalize(r, du, di)
        with _threads(int(cfg["threads"])):
            t0 = time.perf_counter()
            sigma, v = randomized_svd(norm, int(cfg["k"]), int(cfg["oversample"]),
                                      int(cfg["n_iter"]), int(cfg["seed"]))
            svd_s = time.perf_counter() - t0
            self._set(norm, sigma, v, di)
            seconds = time.perf_counter() - start
            step: dict[str, float] = {"epoch": 0, "svd_s": svd_s, "seconds": seconds,
                                      "sigma_max": float(sigma[0]), "sigma_k": float(sigma[-1])}
            report = FitReport([step], best_epoch=0, seconds=seconds)
            if valid is not None:
                from shopgraph.gnn.metrics import evaluate

                cut = min(20, train.n_items)  # recall@20, or @n_items on a tiny catalogue
                metrics = evaluate(self.score, train.matrix, valid.matrix, ks=(cut,))
                step.update({f"valid_{name}": value for name, value in metrics.items()})
                report.best_metric = metrics[f"recall@{cut}"]
        return report

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
