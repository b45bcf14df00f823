"""A per-arm reward model learnt from logged decisions: the mean reward :math:`\\hat q(x, a)` of
every arm, posterior draws for Thompson sampling and out-of-fold ``q_hat`` for doubly robust
off-policy evaluation (:mod:`shopgraph.strategies.ope`).

A log holds rows :math:`(x_i, a_i, r_i, p_i)`: arm :math:`a_i \\in \\{0, \\dots, A-1\\}` (0 = no
offer), reward :math:`r_i` (spend, or 0/1 for a conversion), :math:`p_i = \\pi_b(a_i \\mid x_i)`
the propensity of the logged arm under the policy of the row's round (random test, greedy plan,
Thompson round).

**Weights** (importance-weighted regression: Shimodaira, "Improving predictive inference under
covariate shift by weighting the log-likelihood function", JSPI 2000). Arm :math:`a`'s rows see
users with density :math:`\\propto \\pi_b(a \\mid x) p(x)`, so a model that cannot fit
:math:`E[r \\mid x, a]` everywhere (regularised, shallow, linear) is fitted for the users earlier
policies chose for :math:`a`. With :math:`w_i = 1/p_i` each arm's rows stand for all users. Within
each arm the weights are divided by their mean (self-normalised, so penalties and
``min_child_samples`` keep their meaning), clipped at ``max_weight`` times that mean (default
:math:`\\sqrt{n_a}`, Ionides, "Truncated importance sampling", JCGS 2008: the truncation bias
vanishes as the arm's rows :math:`n_a` grow) and rescaled to mean 1. ``weighting="none"`` gives
every row weight 1.

**Models** (T-learner: Künzel, Sekhon, Bickel & Yu, PNAS 2019). One regression :math:`f_a` per
logged arm on its rows, and a pooled one :math:`g` on all rows (same weights: arms count by their
rows, each rebalanced to all users). Each is LightGBM (4 leaves, 100 trees at rate 0.05,
``min_child_samples`` 100, L2 5, as in :mod:`~shopgraph.strategies.uplift`; ``cross_entropy``
objective for 0/1 rewards) or ridge (:math:`\\alpha = 10`; logistic with :math:`C = 0.1` for
0/1 rewards) on standardised features, chosen per model (``kind="auto"``) by the smaller 3-fold
cross-validated weighted squared error on at most 20,000 of its rows. Models with fewer than 60
rows take ridge/logistic unmeasured; rows with one reward value give a constant. Features are
encoded as in :mod:`~shopgraph.strategies.uplift` (``email`` and ``consent`` dropped). A log link
(LightGBM ``poisson``, sklearn ``PoissonRegressor``) for spend was measured and left out: larger
uplift error on the synthetic logs and 5-10x slower linear fits.

**Posterior** (Bayesian bootstrap: Rubin, Annals of Statistics 1981; bootstrap Thompson sampling:
Eckles & Kaptein, arXiv 1410.4009). ``members`` ensemble members each fit all models once with
the weights times :math:`\\mathrm{Exp}(1)` draws per row, shared by the member's models (one
joint draw; no arm ever loses its rows, as it could under row resampling).

**Shrinkage** (parametric empirical Bayes: Efron & Morris, JASA 1975; Morris, "Parametric
empirical Bayes inference", JASA 1983). Member :math:`k`'s deviation of arm :math:`a` from the
pooled model, :math:`d^{(k)}_a(x) = f^{(k)}_a(x) - g^{(k)}(x)`, splits into its mean
:math:`m^{(k)}_a` over up to 5,000 logged users and the rest :math:`h^{(k)}_a(x)`
(heterogeneity). Each part is shrunk towards 0, i.e. the arm towards the pooled model, by its
credibility

.. math::
    \\lambda_a = \\frac{\\tau^2}{\\tau^2 + N_a},\\qquad
    \\tau^2 = \\max\\Big(0,\\ \\frac{\\sum_a \\omega_a (S_a - N_a)}{\\sum_a \\omega_a}\\Big),\\quad
    \\omega_a = \\frac{1}{N_a + \\tau^2}\\ \\text{(iterated, logged arms)},

for the mean :math:`S_a = \\bar m_a^2`, :math:`N_a = \\max(\\operatorname{var}_k m^{(k)}_a,\\
\\sigma^2 / \\mathrm{ESS}_a)` (the ensemble's variance, floored by that of a mean of Kish's
:math:`\\mathrm{ESS}_a` rows with the weighted residual variance :math:`\\sigma^2`: the floor
holds for an arm with a handful of rows, all zeros, say, whose members all agree), and for the
heterogeneity :math:`S_a = \\overline{\\bar h_a(x)^2}`, :math:`N_a =
\\overline{\\operatorname{var}_k h^{(k)}_a(x)}` (bars: ensemble means; overlines: means over
users). The weights :math:`\\omega` keep a noisy small arm from inflating :math:`\\tau^2`; they
are equal across well-logged arms, so one dominant arm (a big control) does not hide the others.
Then

.. math::
    \\hat q(x, a) = \\bar g(x) + \\lambda^m_a \\bar m_a + \\lambda^h_a \\bar h_a(x):

a well-logged arm keeps its own model (:math:`\\lambda \\to 1` as :math:`N_a \\to 0`), a small
one moves to the pooled model, an arm never logged gets :math:`\\bar g` (noted in
``warnings``). The shrinkage costs a bias of :math:`(1 - \\lambda^m_a) \\bar m_a`, most for the
arms farthest from the pool. Measured on the tests' confounded synthetic logs (three logs each of
2,000, 10,000 and 50,000 rows): uplift RMSE 2.38, 1.54, 1.07 against 3.36, 2.28, 1.43 unshrunk;
the farthest arm's value moved 0.3 more (about 0.7 standard errors) at 10,000 rows, nothing at
50,000.

A draw recentres a member on the shrunk prediction: :math:`\\hat q(x, a) + g^{(k)}(x) -
\\bar g(x) + d^{(k)}_a(x) - \\bar d_a(x) + s_a z`, :math:`z \\sim N(0, 1)` per draw and arm,
:math:`s_a^2 = N_a - \\operatorname{var}_k m^{(k)}_a` (the floor's share) and, for an arm never
logged, :math:`s_a^2 = \\max(\\tau^2, \\max_a N_a)` (so Thompson sampling still tries it). The
spread is the sampling spread, not the narrower normal posterior :math:`\\lambda N`, which
ignores the error in :math:`\\tau^2` from a handful of arms and covered the truth too rarely.
Predictions and draws are clipped to the range of the logged rewards. ``arms`` reports rows,
ESS, the chosen model, its cross-validated errors, :math:`\\bar m`, both credibilities and
:math:`s` per arm.

**Cross-fitting** (Chernozhukov et al., "Double/debiased machine learning", Econometrics Journal
2018): :meth:`RewardModel.cross_fit` refits everything (encoding, model choice, ensemble,
shrinkage) on the other folds, dealt per arm, so a row's ``q_hat`` never saw its own reward.

Not handled: a log mixing policies gives each row its own round's propensity; the balance
heuristic (the mixture :math:`\\sum_r \\frac{n_r}{n} \\pi_r(a \\mid x)`, Agarwal et al., "Effective
evaluation using logged bandit feedback from multiple loggers", KDD 2017) would weight better but
needs every round's policy for every row.

    model = RewardModel().fit(features, action, reward, propensity, n_arms=5, seed=0)
    draw = model.sample(features, k=1, seed=round_seed)[0]          # Thompson: argmax per row
    q_hat = RewardModel().cross_fit(features, action, reward, propensity, n_arms=5)
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from shopgraph.errors import ShopgraphError
from shopgraph.strategies.ope import kish_ess
from shopgraph.strategies.uplift import EXCLUDED, _OneHot

KINDS = ("auto", "lightgbm", "linear")
WEIGHTINGS = ("ipw", "none")
LIGHTGBM_PARAMS: dict[str, Any] = {
    "n_estimators": 100, "learning_rate": 0.05, "num_leaves": 4, "min_child_samples": 100,
    "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8, "reg_lambda": 5.0,
    "n_jobs": 1, "deterministic": True, "force_row_wise": True, "verbose": -1}
LINEAR_ALPHA = 10.0  # ridge alpha; logistic C = 1 / alpha
CV_FOLDS, CV_MAX_ROWS, MIN_CV_ROWS, REF_ROWS = 3, 20_000, 60, 5_000
POOLED = -1  # key of the pooled model
#: reward type -> (LightGBM objective, linear fallback): 0/1 or any number
LINKS = {"logit": ("cross_entropy", "logistic"), "identity": ("regression", "ridge")}


class RewardModelWarning(UserWarning):
    """Cross-fitting predicted an arm from the pooled model in a fold that lacked it."""


class _Constant:
    """The model of rows that all have one reward."""

    def __init__(self, value: float) -> None:
        self.value = value

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.full(len(x), self.value)


def _fit_base(kind: str, x: np.ndarray, y: np.ndarray, w: np.ndarray, link: str,
              seed: int, params: dict[str, Any]) -> Any:
    if np.ptp(y) == 0:
        return _Constant(float(y[0]))
    if kind == "lightgbm":
        from lightgbm import LGBMRegressor

        return LGBMRegressor(objective=LINKS[link][0], random_state=seed, **params).fit(
            x, y, sample_weight=w)
    from sklearn.linear_model import LogisticRegression, Ridge

    if link == "logit":
        return LogisticRegression(C=1 / LINEAR_ALPHA, max_iter=1000).fit(
            x, y.astype(int), sample_weight=w)
    return Ridge(alpha=LINEAR_ALPHA).fit(x, y, sample_weight=w)


def _predict_base(model: Any, x: np.ndarray) -> np.ndarray:
    if hasattr(model, "predict_proba"):
        p: np.ndarray = model.predict_proba(x)[:, 1]
        return p
    out: np.ndarray = model.predict(x)
    return out


def _validate(features: Any, action: Any, reward: Any, propensity: Any, n_arms: Any
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not isinstance(features, pd.DataFrame):
        raise ValueError(f"features must be a pandas DataFrame, got {type(features).__name__}")
    if not isinstance(n_arms, int | np.integer) or n_arms < 2:
        raise ValueError(f"n_arms must be an integer >= 2 (arm 0 = no offer), got {n_arms!r}")
    a, r, p = (np.asarray(v) for v in (action, reward, propensity))
    r = r.astype(float) if r.dtype == bool else r
    if not (a.ndim == r.ndim == p.ndim == 1) or not (
            len(features) == len(a) == len(r) == len(p) > 0):
        raise ValueError(f"features, action, reward and propensity must have one non-zero "
                         f"length (1-D); got {len(features)} rows and shapes {a.shape}, "
                         f"{r.shape}, {p.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"action must hold integer arm indices, got dtype {a.dtype}")
    bad = np.flatnonzero((a < 0) | (a >= n_arms))
    if bad.size:
        raise ValueError(f"action must be in 0..{n_arms - 1}; row {bad[0]} has {a[bad[0]]}")
    for name, v in (("reward", r), ("propensity", p)):
        if not np.issubdtype(v.dtype, np.number) or not np.isfinite(v.astype(float)).all():
            raise ValueError(f"{name} must be finite numbers; it has NaN, infinite or "
                             "non-numeric values: drop or fill those rows")
    p = p.astype(float)
    bad = np.flatnonzero((p <= 0) | (p > 1))
    if bad.size:
        raise ValueError(f"propensity must be in (0, 1]; {bad.size} rows are not (row "
                         f"{bad[0]}: {p[bad[0]]}); fix the logger or drop them")
    num = features.select_dtypes("number")
    if np.isinf(num.to_numpy(dtype=float)).any():
        cols = [c for c in num if np.isinf(num[c].to_numpy(dtype=float)).any()]
        raise ValueError(f"features columns {cols} have infinite values; use NaN for missing")
    return a.astype(np.int64), r.astype(float), p


def arm_weights(action: np.ndarray, propensity: np.ndarray, n_arms: int,
                max_weight: float | None = None) -> np.ndarray:
    """:math:`1/p`, divided by its mean within each arm, clipped at ``max_weight`` (default:
    :math:`\\sqrt{n_a}`, the arm's rows) and rescaled to mean 1 within each arm."""
    w = 1.0 / np.asarray(propensity, dtype=float)
    for a in range(n_arms):
        rows = action == a
        if rows.any():
            cap = np.sqrt(rows.sum()) if max_weight is None else max_weight
            v = np.minimum(w[rows] / w[rows].mean(), max(cap, 1.0))
            w[rows] = v / v.mean()
    return w


def _credibility(signal: np.ndarray, noise: np.ndarray, logged: np.ndarray
                 ) -> tuple[np.ndarray, float]:
    """Empirical-Bayes credibility ``tau2 / (tau2 + noise)`` per arm (0 for arms never logged),
    ``tau2`` the moment estimate weighted by ``1 / (noise + tau2)`` over logged arms (Morris
    1983; iterated from equal weights), so a noisy small arm cannot inflate it."""
    excess, var = (signal - noise)[logged], noise[logged]
    tau2 = max(0.0, float(np.mean(excess)))
    for _ in range(50):
        weight = 1.0 / (var + tau2 + 1e-12)
        tau2, previous = max(0.0, float(np.sum(weight * excess) / np.sum(weight))), tau2
        if abs(tau2 - previous) <= 1e-9 * (1 + previous):
            break
    lam = np.zeros(len(signal))
    if tau2 > 0:
        lam[logged] = tau2 / (tau2 + noise[logged])
    return lam, tau2


class RewardModel:
    """Per-arm mean reward with a bootstrap posterior (see the module docstring).

    Args:
        kind: ``"auto"`` (per model, by cross-validated weighted error), ``"lightgbm"`` or
            ``"linear"`` (ridge; logistic for 0/1 rewards) (default: ``"auto"``).
        members: bootstrap ensemble members, at least 2 (default: 10).
        weighting: ``"ipw"`` (self-normalised, clipped :math:`1/p`) or ``"none"``
            (default: ``"ipw"``).
        max_weight: the clip of a row's weight, in multiples of its arm's mean weight
            (default: None, the square root of the arm's logged rows).
        params: overrides of :data:`LIGHTGBM_PARAMS`.
        min_level_count: a category level needs this many rows to get a column (default: 20).
        n_jobs: threads fitting and predicting the members' models (default: 1).

    Attributes (after :meth:`fit`):
        n_arms: the arms, logged or not.
        link: ``"logit"`` for 0/1 rewards (LightGBM ``cross_entropy``, logistic fallback), else
            ``"identity"`` (squared error, ridge fallback).
        warnings: what the model did instead of failing (arms never logged).
        arms: per arm ``rows``, ``ess``, ``kind``, ``cv_error_lightgbm``,
            ``cv_error_linear``, ``mean_deviation`` (:math:`\\bar m`), ``credibility_mean``,
            ``credibility_het`` and ``extra_sd`` (:math:`s`).
    """

    def __init__(self, kind: str = "auto", members: int = 10, *, weighting: str = "ipw",
                 max_weight: float | None = None, params: dict[str, Any] | None = None,
                 min_level_count: int = 20, n_jobs: int = 1) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        if members < 2:
            raise ValueError(f"members must be at least 2 (the spread needs two), got {members}")
        if max_weight is not None and not max_weight >= 1:
            raise ValueError(f"max_weight must be >= 1 (times the arm's mean), got {max_weight}")
        self.kind, self.members, self.weighting = kind, members, weighting
        self.max_weight, self.n_jobs = max_weight, max(1, n_jobs)
        self.params = {**LIGHTGBM_PARAMS, **(params or {})}
        self.min_level_count = min_level_count
        self.n_arms = 0
        self.link = "identity"
        self.warnings: list[str] = []
        self.arms = pd.DataFrame()
        self._models: list[dict[int, Any]] = []
        self._logged = np.zeros(0, dtype=bool)
        self._kinds: dict[int, str] = {}
        self._lam_mean = self._lam_het = self._extra_sd = self._mean_post = np.zeros(0)
        self._tau2_mean = 0.0
        self._mean_k = np.zeros((0, 0))
        self._range = (0.0, 0.0)
        self._encoding = _OneHot([], {}, np.zeros(0))

    def __repr__(self) -> str:
        return (f"RewardModel(kind={self.kind!r}, members={self.members}, "
                f"weighting={self.weighting!r}, n_arms={self.n_arms})")

    def _config(self) -> dict[str, Any]:
        return {"kind": self.kind, "members": self.members, "weighting": self.weighting,
                "max_weight": self.max_weight, "params": self.params,
                "min_level_count": self.min_level_count, "n_jobs": self.n_jobs}

    def _inputs(self, features: pd.DataFrame) -> dict[str, np.ndarray]:
        frame = features.drop(columns=[c for c in EXCLUDED if c in features])
        return {"lightgbm": self._encoding.raw(frame, fill=False),
                "linear": self._encoding.standard(frame)}

    def _choose(self, x: dict[str, np.ndarray], y: np.ndarray, w: np.ndarray, link: str,
                seed: int) -> tuple[str, float, float]:
        """The kind with the smaller cross-validated weighted squared error, and both errors."""
        if self.kind != "auto":
            return self.kind, np.nan, np.nan
        if len(y) < MIN_CV_ROWS:
            return "linear", np.nan, np.nan
        rng = np.random.default_rng(seed)
        rows = rng.permutation(len(y))[:CV_MAX_ROWS]
        fold = np.arange(len(rows)) % CV_FOLDS
        err = {}
        for kind in ("lightgbm", "linear"):
            sq = 0.0
            for f in range(CV_FOLDS):
                fit, test = rows[fold != f], rows[fold == f]
                m = _fit_base(kind, x[kind][fit], y[fit], w[fit], link, seed, self.params)
                sq += float(np.sum(w[test] * (y[test] - _predict_base(m, x[kind][test])) ** 2))
            err[kind] = sq / float(w[rows].sum())
        return min(err, key=lambda k: err[k]), err["lightgbm"], err["linear"]

    def fit(self, features: pd.DataFrame, action: Any, reward: Any, propensity: Any, *,
            n_arms: int, seed: int = 0) -> RewardModel:
        """Learn from a log.

        Args:
            features: one row per logged decision (numbers and categories; NaN allowed).
            action: the logged arm, an integer in ``0..n_arms-1`` (0 = no offer).
            reward: the reward of each row (spend, or 0/1 for a conversion).
            propensity: the logging policy's probability of the logged arm, in (0, 1].
            n_arms: the number of arms, logged or not.
            seed: seeds the bootstrap, the folds and LightGBM (default: 0).

        Raises:
            ValueError: shapes differ, NaN or infinite values, an action outside the arms, a
                propensity outside (0, 1].
        """
        a, r, p = _validate(features, action, reward, propensity, n_arms)
        n, self.n_arms, self.warnings = len(r), int(n_arms), []
        self._encoding = _OneHot.learn(
            features.drop(columns=[c for c in EXCLUDED if c in features]), self.min_level_count)
        x = self._inputs(features)
        w = (arm_weights(a, p, n_arms, self.max_weight) if self.weighting == "ipw"
             else np.ones(n))
        self.link = "logit" if np.isin(r, (0.0, 1.0)).all() else "identity"
        self._range = (float(r.min()), float(r.max()))
        logged = [k for k in range(n_arms) if (a == k).any()]
        self._logged = np.isin(np.arange(n_arms), logged)
        for k in sorted(set(range(n_arms)) - set(logged)):
            self.warnings.append(f"arm {k} was never logged; it is predicted by the pooled "
                                 "model (all arms together) with the prior spread")
        rows = {POOLED: np.arange(n), **{k: np.flatnonzero(a == k) for k in logged}}
        choice = {m: self._choose({k: v[i] for k, v in x.items()}, r[i], w[i], self.link,
                                  seed + 7919 * (m + 2)) for m, i in rows.items()}
        self._kinds = {m: c[0] for m, c in choice.items()}

        rng = np.random.default_rng(seed)
        boot = rng.exponential(size=(self.members, n))

        def one(task: tuple[int, int]) -> Any:
            k, m = task
            i, kind = rows[m], self._kinds[m]
            return _fit_base(kind, x[kind][i], r[i], (w * boot[k])[i], self.link,
                             seed * 1000 + k, self.params)

        tasks = [(k, m) for k in range(self.members) for m in rows]
        with ThreadPoolExecutor(self.n_jobs) as pool:
            fitted = list(pool.map(one, tasks))
        self._models = [{} for _ in range(self.members)]
        for (k, m), model in zip(tasks, fitted):
            self._models[k][m] = model
        self._shrink(features, a, r, w, rng)
        ess = [kish_ess(w[a == k]) for k in range(n_arms)]
        self.arms = pd.DataFrame({
            "rows": np.bincount(a, minlength=n_arms), "ess": ess,
            "kind": [self._kinds.get(k, "pooled") for k in range(n_arms)],
            "cv_error_lightgbm": [choice.get(k, ("", np.nan, np.nan))[1] for k in range(n_arms)],
            "cv_error_linear": [choice.get(k, ("", np.nan, np.nan))[2] for k in range(n_arms)],
            "mean_deviation": self._mean_k.mean(axis=0), "credibility_mean": self._lam_mean,
            "credibility_het": self._lam_het, "extra_sd": self._extra_sd})
        return self

    def _members(self, x: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Pooled predictions ``(members, n)`` and deviations ``(members, n, arms)`` from it
        (0 for arms never logged), predicted on ``n_jobs`` threads."""
        n = len(next(iter(x.values())))
        tasks = [(k, m) for k, models in enumerate(self._models) for m in models]
        with ThreadPoolExecutor(self.n_jobs) as pool:
            preds = list(pool.map(
                lambda t: _predict_base(self._models[t[0]][t[1]], x[self._kinds[t[1]]]), tasks))
        f = np.zeros((self.members, n, self.n_arms + 1))  # pooled model last
        for (k, m), pred in zip(tasks, preds):
            f[k, :, m] = pred
        g = f[:, :, POOLED]
        d = np.where(self._logged, f[:, :, :-1] - g[:, :, None], 0.0)
        return g, d

    def _shrink(self, features: pd.DataFrame, a: np.ndarray, r: np.ndarray, w: np.ndarray,
                rng: np.random.Generator) -> None:
        """Credibilities of each arm's mean deviation and of its heterogeneity, and the extra
        draw spread (module docstring)."""
        ref = np.sort(rng.permutation(len(r))[:REF_ROWS])
        g, d = self._members(self._inputs(features.iloc[ref]))
        mean_k = d.mean(axis=1)  # (members, arms): each member's mean deviation
        het_k = d - mean_k[:, None, :]
        het = het_k.mean(axis=0)
        fit = g.mean(axis=0) + d.mean(axis=0)[np.arange(len(ref)), a[ref]]
        sigma2 = float(np.sum(w[ref] * (r[ref] - fit) ** 2) / w[ref].sum())
        logged = self._logged
        ess = np.array([kish_ess(w[a == k]) if logged[k] else 1.0 for k in range(self.n_arms)])
        boot_var = mean_k.var(axis=0, ddof=1)
        noise = np.maximum(boot_var, sigma2 / ess)
        m = mean_k.mean(axis=0)
        self._lam_mean, self._tau2_mean = _credibility(m ** 2, noise, logged)
        self._mean_post = self._lam_mean * m
        self._lam_het, _ = _credibility((het ** 2).mean(axis=0),
                                        het_k.var(axis=0, ddof=1).mean(axis=0), logged)
        self._mean_k = mean_k
        unlogged_var = max(self._tau2_mean, float(noise[logged].max()))
        self._extra_sd = np.sqrt(np.where(logged, noise - boot_var, unlogged_var))

    def _check_fitted(self, features: Any) -> dict[str, np.ndarray]:
        if not self._models:
            raise ShopgraphError("the reward model is not fitted; call fit first")
        if not isinstance(features, pd.DataFrame):
            raise ValueError(f"features must be a pandas DataFrame, got {type(features).__name__}")
        return self._inputs(features)

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """Mean reward per row and arm, ``(rows, n_arms)`` (the module docstring's
        :math:`\\hat q`)."""
        g, d = self._members(self._check_fitted(features))
        het = d.mean(axis=0) - self._mean_k.mean(axis=0)
        out = g.mean(axis=0)[:, None] + self._mean_post + self._lam_het * het
        clipped: np.ndarray = np.clip(out, *self._range)
        return clipped

    def uplift(self, features: pd.DataFrame) -> np.ndarray:
        """``predict`` minus its arm-0 column, ``(rows, n_arms)`` (column 0 is zero)."""
        q = self.predict(features)
        out: np.ndarray = q - q[:, :1]
        return out

    def sample(self, features: pd.DataFrame, k: int = 1, seed: int = 0) -> np.ndarray:
        """``k`` posterior draws of the mean reward, ``(k, rows, n_arms)``: each picks an
        ensemble member (a random order, repeated when ``k > members``) and a per-arm shift."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        g, d = self._members(self._check_fitted(features))
        rng = np.random.default_rng(seed)
        pick = np.concatenate([rng.permutation(self.members)
                               for _ in range(-(-k // self.members))])[:k]
        m = self._mean_k.mean(axis=0)
        het = d.mean(axis=0) - m
        z = rng.standard_normal((k, self.n_arms)) * self._extra_sd
        draws = (g[pick][:, :, None] + d[pick] - d.mean(axis=0)  # the member's own deviation
                 + (self._mean_post + z)[:, None, :] + self._lam_het * het)
        clipped: np.ndarray = np.clip(draws, *self._range)
        return clipped

    def cross_fit(self, features: pd.DataFrame, action: Any, reward: Any, propensity: Any, *,
                  n_arms: int, folds: int = 5, seed: int = 0) -> np.ndarray:
        """Out-of-fold mean reward ``(rows, n_arms)`` for the logged rows (``q_hat`` for DR):
        each fold is predicted by a model with this one's settings fitted on the other folds.
        Folds are dealt round-robin within each arm after a seeded shuffle. Does not change
        this model.

        Raises:
            ValueError: as :meth:`fit`, or fewer rows than ``folds``.
        """
        a, r, p = _validate(features, action, reward, propensity, n_arms)
        if folds < 2 or folds > len(a):
            raise ValueError(f"folds must be in 2..{len(a)} (the rows), got {folds}")
        rng = np.random.default_rng(seed)
        fold = np.empty(len(a), dtype=np.int64)
        for k in range(n_arms):
            rows = rng.permutation(np.flatnonzero(a == k))
            fold[rows] = (np.arange(len(rows)) + rng.integers(folds)) % folds
        out = np.empty((len(a), n_arms))
        for f in range(folds):
            train, test = fold != f, fold == f
            if not test.any():
                continue
            model = RewardModel(**self._config()).fit(
                features.iloc[train], a[train], r[train], p[train], n_arms=n_arms, seed=seed + f)
            for note in model.warnings:
                warnings.warn(f"cross_fit fold {f}: {note}", RewardModelWarning, stacklevel=2)
            out[test] = model.predict(features.iloc[test])
        return out
