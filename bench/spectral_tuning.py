"""Benchmark: tune the spectral filter on Gowalla's validation split, then score it on the test set.

Tuning uses only ``train_split.txt`` / ``valid.txt`` (LightGCN++'s sub-split of the training
set). One SVD per normalisation ``(user_norm, item_norm)``; ``item_scale`` and ``power`` do not
enter the SVD, so their variants come from :meth:`SpectralFilter.refilter` (exact, no new SVD).
One JSON line per setting, then the best setting (by validation recall@20) is fitted on
``train.txt`` and evaluated on ``test.txt`` with the popularity baseline of the same run, as one
final JSON line. ``--compare-svd`` first times ``scipy.sparse.linalg.svds`` (ARPACK) and
``torch.svd_lowrank`` against the model's randomised SVD at equal ``k`` on the validation split.

    python bench/spectral_tuning.py [--quick] [--k 512] [--threads 1] [--compare-svd]
                                    [--also-test-k 256,1024] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path

import numpy as np
import torch

from shopgraph.gnn.data import InteractionMatrix, load_lightgcn_split
from shopgraph.gnn.metrics import evaluate, popularity_scores
from shopgraph.gnn.spectral import SpectralFilter, randomized_svd

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("recall@20", "ndcg@20", "precision@20", "hitrate@20", "coverage@20")


def _metrics(model_or_fn, train: InteractionMatrix, test: InteractionMatrix) -> dict[str, float]:
    fn = model_or_fn.score if isinstance(model_or_fn, SpectralFilter) else model_or_fn
    t0 = time.perf_counter()
    out = evaluate(fn, train.matrix, test.matrix)
    res = {m: round(out[m], 5) for m in METRICS}
    res["eval_s"] = round(time.perf_counter() - t0, 1)
    return res


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _emit(**row: object) -> None:
    print(json.dumps(row), flush=True)


def _compare_svd(train: InteractionMatrix, valid: InteractionMatrix, cfg: dict) -> None:
    """Time three truncated SVDs of the same normalised matrix and score the resulting model."""
    import scipy.sparse.linalg as spl

    from shopgraph.gnn.spectral import _torch_csr

    model = SpectralFilter(**cfg)
    r = train.matrix.tocsr().astype(np.float32)
    du, di = np.asarray(r.sum(axis=1)).ravel(), np.asarray(r.sum(axis=0)).ravel()
    norm = model._normalize(r, du, di)
    k = cfg["k"]

    def svds() -> tuple[np.ndarray, np.ndarray]:
        _, s, vt = spl.svds(norm, k=k, random_state=cfg["seed"])
        order = np.argsort(-s)
        return s[order], np.ascontiguousarray(vt[order].T)

    def lowrank() -> tuple[np.ndarray, np.ndarray]:
        torch.manual_seed(cfg["seed"])
        _, s, v = torch.svd_lowrank(_torch_csr(norm), q=k + cfg["oversample"],
                                    niter=cfg["n_iter"])
        return s[:k].numpy(), v[:, :k].contiguous().numpy()

    def ours() -> tuple[np.ndarray, np.ndarray]:
        return randomized_svd(norm, k, cfg["oversample"], cfg["n_iter"], cfg["seed"])

    for name, fn in (("randomized_svd (ours, Gram-eigh power iterations)", ours),
                     ("torch.svd_lowrank", lowrank), ("scipy.sparse.linalg.svds (ARPACK)", svds)):
        t0 = time.perf_counter()
        sigma, v = fn()
        svd_s = time.perf_counter() - t0
        model._set(norm, sigma.astype(np.float32), v.astype(np.float32), di)
        model.n_users, model.n_items = train.n_users, train.n_items
        _emit(phase="compare_svd", svd=name, k=k, svd_s=round(svd_s, 1),
              **_metrics(model, train, valid))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--quick", action="store_true", help="a 4-setting grid instead of 18 + 5")
    ap.add_argument("--k", type=int, default=SpectralFilter.defaults["k"])
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1 was fastest on the shared 2-core box; 0 = torch's)")
    ap.add_argument("--compare-svd", action="store_true")
    ap.add_argument("--also-test-k", default="",
                    help="comma-separated k: after the final line, the chosen setting at these "
                         "sizes on the test set (information on size vs quality; not tuning)")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    gowalla = args.data / "gowalla"
    train, valid = load_lightgcn_split(gowalla / "train_split.txt", gowalla / "valid.txt")
    _emit(phase="valid", model="popularity", **_metrics(popularity_scores(train.matrix),
                                                        train, valid))
    base = {**SpectralFilter.defaults, "k": args.k, "threads": 0}
    if args.quick:
        norms, scales, powers, ks = [(0.3, 0.4), (0.5, 0.5)], [0.3, 0.5], [], []
    else:
        norms = [(a, b) for a in (0.3, 0.4, 0.5) for b in (0.4, 0.5)]
        scales, powers, ks = [0.3, 0.4, 0.5], [-0.5, 0.5, 1.0], [256, 1024]
    if args.compare_svd:
        _compare_svd(train, valid, base)
    results: list[tuple[float, dict]] = []

    def record(model: SpectralFilter, fit_s: float) -> None:
        cfg = {k: model.config[k] for k in ("k", "user_norm", "item_norm", "item_scale",
                                            "power")}
        res = _metrics(model, train, valid)
        _emit(phase="valid", model="spectral", **cfg, fit_s=round(fit_s, 1), **res)
        results.append((res["recall@20"], cfg))

    for a, b in norms:
        t0 = time.perf_counter()
        model = SpectralFilter(**{**base, "user_norm": a, "item_norm": b})
        model.fit(train)
        fit_s = time.perf_counter() - t0
        for c in scales:
            record(model.refilter(item_scale=c), fit_s)
    best = max(results, key=lambda r: r[0])[1]
    if powers:  # the filter shape, at the best normalisation
        t0 = time.perf_counter()
        model = SpectralFilter(**{**base, **best})
        model.fit(train)
        fit_s = time.perf_counter() - t0
        for p in powers:
            record(model.refilter(power=p), fit_s)
        best = max(results, key=lambda r: r[0])[1]
    for k in ks:  # dimension vs quality (information; k stays --k)
        t0 = time.perf_counter()
        model = SpectralFilter(**{**base, **best, "k": k})
        model.fit(train)
        record(model, time.perf_counter() - t0)
    best = {**best, "k": args.k}

    train, test = load_lightgcn_split(gowalla / "train.txt", gowalla / "test.txt")
    pop = _metrics(popularity_scores(train.matrix), train, test)
    model = SpectralFilter(**{**base, **best})
    t0 = time.perf_counter()
    report = model.fit(train)
    fit_s = time.perf_counter() - t0
    res = _metrics(model, train, test)
    user_emb, item_emb = model.embeddings()
    _emit(phase="test", model="spectral", config={**base, **best}, **res, fit_s=round(fit_s, 1),
          svd_s=round(report.history[0]["svd_s"], 1), dim=int(item_emb.shape[1]),
          peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
          device=f"cpu: {_cpu()}, {torch.get_num_threads()} torch threads",
          popularity={"recall@20": pop["recall@20"], "ndcg@20": pop["ndcg@20"]},
          n_users=int(user_emb.shape[0]), n_items=int(item_emb.shape[0]))
    for k in [int(x) for x in args.also_test_k.split(",") if x]:
        model = SpectralFilter(**{**base, **best, "k": k})
        t0 = time.perf_counter()
        model.fit(train)
        fit_s = time.perf_counter() - t0
        _emit(phase="test_info", model="spectral", k=k, **_metrics(model, train, test),
              fit_s=round(fit_s, 1))


if __name__ == "__main__":
    main()
