"""Multi-treatment uplift: for each user and each treatment arm, :math:`P(y \\mid x, t)`,
:math:`P(y \\mid x, \\text{control})` and their difference, learnt from a randomised campaign log.
A numeric outcome (spend) gives :math:`E[y \\mid x, t]` instead, from regressors.

Two meta-learners (Künzel, Sekhon, Bickel & Yu, "Metalearners for estimating heterogeneous
treatment effects using machine learning", PNAS 2019) over two base classifiers:

* ``learner="t"`` (T-learner, "two models"): one classifier per arm, control included;
  :math:`\\tau_t(x) = \\hat p_t(x) - \\hat p_c(x)`.
* ``learner="s"`` (S-learner, "solo model"): one classifier on the features plus one-hot arm
  indicators (plus feature x arm interactions for the logistic base, which has no other way
  to let the effect vary); :math:`\\tau_t(x) = \\hat p(x, t) - \\hat p(x, c)`.
* ``kind="lightgbm"`` (shallow gradient-boosted trees) or ``kind="logistic"`` (L2 logistic
  regression on standardised features, the baseline; ridge regression for a numeric outcome).

Inputs are the user features with categories one-hot encoded (levels seen at least
``min_level_count`` times in training; others, and missing values, become all zeros) and
numbers median-filled for the logistic base (LightGBM keeps NaN). ``email`` and ``consent`` are
never features.

Chosen by measurement on Hillstrom (5-fold cross-validated Qini coefficient on a 70% train part,
probes made while designing, not kept): trees with many leaves overfit the weak uplift signal
(women's e-mail on visits, T-learner: 0.035 with LightGBM's defaults, 0.040 with 16 leaves,
0.060-0.072 with 2-4 leaves), so the default trees are shallow. T/S and LightGBM/logistic then
differ by less than their fold-to-fold standard error (0.005-0.013), which is why
``bench/hillstrom.py`` picks among the four per outcome by :func:`cross_val_qini` on its train
part and reports them all.

Reasons (:meth:`UpliftModel.contributions`): the uplift's log-odds difference
:math:`\\operatorname{logit} \\hat p_t(x) - \\operatorname{logit} \\hat p_c(x)` (for a numeric
outcome the difference itself) split into
per-feature parts, which add up to it with ``bias``: for LightGBM the difference of the two
TreeSHAP vectors (``pred_contrib``; Lundberg et al., Nature Machine Intelligence 2020), for the
logistic base :math:`(\\beta_{t,j} - \\beta_{c,j}) z_j` on standardised :math:`z`. For the
S-learner the arm indicators' own parts go to ``bias``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from shopgraph.errors import InsufficientDataError, ShopgraphError
from shopgraph.strategies.features import show_value

KINDS = ("lightgbm", "logistic")
LEARNERS = ("t", "s")
EXCLUDED = ("email", "consent")
LIGHTGBM_PARAMS: dict[str, Any] = {
    "n_estimators": 100, "learning_rate": 0.05, "num_leaves": 4, "min_child_samples": 200,
    "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8, "reg_lambda": 5.0,
    "n_jobs": 1, "deterministic": True, "force_row_wise": True, "verbose": -1}
LOGISTIC_PARAMS: dict[str, Any] = {"C": 1.0, "max_iter": 2000}


class UpliftPrediction(NamedTuple):
    """Per user: ``p_treated[:, j]`` = P(y | treatments[j]), ``p_control`` = P(y | control),
    ``uplift = p_treated - p_control[:, None]`` (expected values for a numeric outcome)."""

    treatments: list[str]
    p_treated: np.ndarray
    p_control: np.ndarray
    uplift: np.ndarray


@dataclass
class _OneHot:
    """Numbers stay numbers (median-filled for the logistic base); categories become one-hot."""

    numeric: list[str]
    levels: dict[str, list[str]]
    median: np.ndarray
    mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scale: np.ndarray = field(default_factory=lambda: np.ones(0))
    groups: list[str] = field(default_factory=list)  # source feature of each column

    @classmethod
    def learn(cls, frame: pd.DataFrame, min_level_count: int) -> _OneHot:
        numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])
                   and not pd.api.types.is_bool_dtype(frame[c])]
        levels = {}
        for col in frame.columns:
            if col not in numeric:
                counts = frame[col].dropna().astype(str).value_counts()
                levels[col] = sorted(counts.index[counts >= min_level_count])
        med = frame[numeric].median().fillna(0.0).to_numpy(dtype=float)
        enc = cls(numeric, levels, med)
        enc.groups = [*numeric, *(c for c, vs in levels.items() for _ in vs)]
        x = enc.raw(frame, fill=True)
        enc.mean, sd = x.mean(axis=0), x.std(axis=0)
        enc.scale = np.where(sd > 0, sd, 1.0)
        return enc

    def raw(self, frame: pd.DataFrame, fill: bool) -> np.ndarray:
        missing = [c for c in (*self.numeric, *self.levels) if c not in frame]
        if missing:
            raise ValueError(f"features lack columns {missing} that the model was trained with")
        num = frame[self.numeric].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        if fill:
            num = np.where(np.isnan(num), self.median, num)
        blocks = [num]
        for col, vs in self.levels.items():
            text = frame[col].astype(object).where(frame[col].notna(), None).astype(str)
            blocks.append((text.to_numpy()[:, None] == np.asarray(vs)[None, :]).astype(float))
        return np.hstack(blocks) if blocks else np.zeros((len(frame), 0))

    def standard(self, frame: pd.DataFrame) -> np.ndarray:
        z: np.ndarray = (self.raw(frame, fill=True) - self.mean) / self.scale
        return z


def _group(parts: np.ndarray, groups: Sequence[str], columns: Sequence[str]) -> pd.DataFrame:
    """Sum per-column parts into their source features."""
    frame = pd.DataFrame(parts, columns=list(range(parts.shape[1])))
    out = frame.T.groupby(np.asarray(groups)).sum().T
    return out.reindex(columns=list(columns), fill_value=0.0)


class UpliftModel:
    """A multi-treatment uplift model (see the module docstring).

    Args:
        kind: ``"lightgbm"`` or ``"logistic"``.
        learner: ``"t"`` (one model per arm) or ``"s"`` (one model with arm indicators).
        params: overrides of :data:`LIGHTGBM_PARAMS` or :data:`LOGISTIC_PARAMS`.
        min_level_count: a category level needs this many training rows to get a column.
        seed: LightGBM's random seed.
    """

    def __init__(self, kind: str = "lightgbm", learner: str = "t",
                 params: dict[str, Any] | None = None, min_level_count: int = 20,
                 seed: int = 0) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if learner not in LEARNERS:
            raise ValueError(f"learner must be one of {LEARNERS}, got {learner!r}")
        self.kind, self.learner, self.seed = kind, learner, seed
        base = LIGHTGBM_PARAMS if kind == "lightgbm" else LOGISTIC_PARAMS
        self.params = {**base, **(params or {})}
        self.min_level_count = min_level_count
        self.models: dict[str, Any] = {}
        self.control: str = ""
        self.treatments: list[str] = []
        self.columns: list[str] = []
        self.encoding = _OneHot([], {}, np.zeros(0))
        self.binary = True

    def __repr__(self) -> str:
        return f"UpliftModel(kind={self.kind!r}, learner={self.learner!r})"

    def _estimator(self) -> Any:
        if self.kind == "lightgbm":
            from lightgbm import LGBMClassifier, LGBMRegressor

            cls = LGBMClassifier if self.binary else LGBMRegressor
            return cls(random_state=self.seed, **self.params)
        from sklearn.linear_model import LogisticRegression, Ridge

        if self.binary:
            return LogisticRegression(**self.params)
        return Ridge(alpha=1.0 / self.params.get("C", 1.0))

    def _x(self, features: pd.DataFrame) -> np.ndarray:
        if self.kind == "lightgbm":
            return self.encoding.raw(features, fill=False)
        return self.encoding.standard(features)

    def _s_inputs(self, x: np.ndarray, arm: str | np.ndarray) -> np.ndarray:
        arms = np.broadcast_to(np.asarray(arm, dtype=object), (len(x),))
        ind = (arms[:, None] == np.asarray(self.treatments, dtype=object)[None, :]).astype(float)
        if self.kind == "logistic":  # effects vary with x only through interactions
            inter = (ind[:, :, None] * x[:, None, :]).reshape(len(x), -1)
            return np.hstack([x, ind, inter])
        return np.hstack([x, ind])

    def fit(self, features: pd.DataFrame, arm: Any, y: Any, *, control: str) -> UpliftModel:
        """Learn from a randomised log.

        Args:
            features: one row per logged user (see :func:`campaign_frame`).
            arm: the arm of each row; ``control`` is the untreated arm.
            y: the outcome of each row: 0/1 (classifiers, probabilities) or any finite number
                (regressors, expected values).

        Raises:
            ValueError: lengths differ, ``y`` has NaN, or there is no control or no treated arm.
            InsufficientDataError: an arm has a single outcome value, so nothing can be learnt.
        """
        arm = np.asarray(arm, dtype=object)
        y = np.asarray(y)
        if not len(features) == len(arm) == len(y):
            raise ValueError(f"features, arm and y must have one length; got {len(features)}, "
                             f"{len(arm)}, {len(y)}")
        y = y.astype(float)
        if not np.isfinite(y).all():
            raise ValueError("y has NaN or infinite values; fill or drop those rows")
        self.binary = bool(np.isin(y, (0, 1)).all())
        names = sorted(set(arm.tolist()))
        if control not in names or len(names) < 2:
            raise ValueError(f"the log must hold control arm {control!r} and at least one "
                             f"treated arm; it holds {names}")
        for a in names:
            ya = y[arm == a]
            if np.ptp(ya) == 0:
                what = (f"{int(ya.sum())} positive outcomes out of {len(ya)} rows" if self.binary
                        else f"the same outcome ({ya[0]:g}) in all {len(ya)} rows")
                raise InsufficientDataError(f"arm {a!r} has {what}; uplift cannot be learnt — "
                                            "use a more frequent outcome or more data")
        self.control = control
        self.treatments = [a for a in names if a != control]
        frame = features.drop(columns=[c for c in EXCLUDED if c in features])
        self.columns = list(frame.columns)
        self.encoding = _OneHot.learn(frame, self.min_level_count)
        x = self._x(frame)
        if self.binary:
            y = y.astype(int)
        if self.learner == "t":
            self.models = {a: self._estimator().fit(x[arm == a], y[arm == a]) for a in names}
        else:
            self.models = {"s": self._estimator().fit(self._s_inputs(x, arm), y)}
        return self

    def _proba(self, x: np.ndarray, a: str) -> np.ndarray:
        model = self.models[a if self.learner == "t" else "s"]
        inputs = x if self.learner == "t" else self._s_inputs(x, a)
        out: np.ndarray = (model.predict_proba(inputs)[:, 1] if self.binary
                           else model.predict(inputs))
        return out

    def predict(self, features: pd.DataFrame) -> UpliftPrediction:
        """P(y | t) for every treatment, P(y | control) and the uplift, per row."""
        if not self.models:
            raise ShopgraphError("the uplift model is not fitted; call fit first")
        x = self._x(features)
        p_c = self._proba(x, self.control)
        p_t = np.column_stack([self._proba(x, a) for a in self.treatments])
        return UpliftPrediction(list(self.treatments), p_t, p_c, p_t - p_c[:, None])

    def _parts(self, x: np.ndarray, a: str) -> np.ndarray:
        """Per-column parts of arm ``a``'s raw score (log-odds, or the prediction of a
        regressor), bias last (arm indicators folded into it)."""
        d = x.shape[1]
        if self.learner == "t":
            model, inputs = self.models[a], x
        else:
            model, inputs = self.models["s"], self._s_inputs(x, a)
        raw: np.ndarray
        if self.kind == "lightgbm":
            raw = model.predict(inputs, pred_contrib=True)
        else:
            coef, icpt = np.ravel(model.coef_), float(np.ravel(model.intercept_)[0])
            raw = np.hstack([inputs * coef, np.full((len(x), 1), icpt)])
        if self.learner == "s":
            extra = raw[:, d:-1]
            if self.kind == "logistic":  # interactions belong to their feature
                inter = extra[:, len(self.treatments):].reshape(len(x), len(self.treatments), d)
                raw = np.hstack([raw[:, :d] + inter.sum(axis=1),
                                 raw[:, -1:] + extra[:, :len(self.treatments)].sum(axis=1,
                                                                                   keepdims=True)])
            else:
                raw = np.hstack([raw[:, :d], raw[:, -1:] + extra.sum(axis=1, keepdims=True)])
        return raw

    def contributions(self, features: pd.DataFrame, treatment: str | Sequence[str]
                      ) -> pd.DataFrame:
        """Per-feature parts of ``logit p_t - logit p_c`` (of ``E_t - E_c`` for a numeric
        outcome); they and ``bias`` add up to it.

        Args:
            features: the users.
            treatment: one treatment for all rows, or one per row.
        """
        chosen = np.broadcast_to(np.asarray(treatment, dtype=object), (len(features),))
        unknown = set(chosen.tolist()) - set(self.treatments)
        if unknown:
            raise ValueError(f"unknown treatments {sorted(unknown)}; the model knows "
                             f"{self.treatments}")
        x = self._x(features)
        out = np.zeros((len(x), x.shape[1] + 1))
        base = self._parts(x, self.control)
        for a in set(chosen.tolist()):
            rows = chosen == a
            out[rows] = self._parts(x[rows], a) - base[rows]
        parts = _group(out[:, :-1], self.encoding.groups, self.columns)
        parts["bias"] = out[:, -1]
        parts.index = features.index
        return parts

    def reasons(self, features: pd.DataFrame, treatment: str | Sequence[str],
                top: int = 3, by: str = "up") -> list[list[str]]:
        """The ``top`` features behind each row's uplift, as ``"feature=value (+0.42)"``
        (log-odds, or outcome units for a numeric outcome; relative to the average user).

        Args:
            by: ``"up"``: the features that raised the uplift most (why a selected user was
                chosen); ``"magnitude"``: the largest parts of either sign.
        """
        if top < 1:
            raise ValueError(f"top must be at least 1, got {top}")
        if by not in ("up", "magnitude"):
            raise ValueError(f"by must be 'up' or 'magnitude', got {by!r}")
        parts = self.contributions(features, treatment).drop(columns="bias")
        values = features.reindex(columns=parts.columns).to_numpy(dtype=object)
        arr = parts.to_numpy()
        key = -arr if by == "up" else -np.abs(arr)
        order = np.argsort(key, axis=1, kind="stable")[:, :top]
        names = list(parts.columns)
        return [[f"{names[j]}={show_value(values[i, j])} ({arr[i, j]:+.2f})" for j in order[i]]
                for i in range(len(arr))]


def campaign_frame(log: pd.DataFrame, users: pd.DataFrame
                   ) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """One campaign's log, its users' features row-aligned with it, and its control arm.

    Args:
        log: the campaign's log (:func:`~shopgraph.graphdb.tables.campaign_log`).
        users: the user features (:func:`~shopgraph.graphdb.tables.user_features`).

    Raises:
        ValueError: the log holds several campaigns.
        InsufficientDataError: the log is empty, or has no control group or several control
            arms.
    """
    campaigns = sorted(set(log["campaign_id"]))
    if len(campaigns) > 1:
        raise ValueError(f"the log holds campaigns {campaigns}; pass one campaign's log")
    if log.empty:
        raise InsufficientDataError("the campaign has no logged users; check the id")
    controls = sorted(set(log.loc[~log["treated"].astype(bool), "arm"]))
    if len(controls) != 1:
        raise InsufficientDataError(f"uplift needs exactly one control arm (users held out); "
                                    f"campaign {campaigns[0]!r} has {controls}")
    feats = users.reindex(log["user_id"].to_numpy())
    return log.reset_index(drop=True), feats.reset_index(drop=True), controls[0]


def cross_val_qini(make: Callable[[], UpliftModel], features: pd.DataFrame, arm: Any, y: Any,
                   *, control: str, folds: int = 5, seed: int = 0
                   ) -> dict[str, tuple[float, float]]:
    """Qini coefficient per treatment (vs control) by stratified k-fold cross-validation.

    Returns:
        ``{treatment: (mean over folds, standard error over folds)}``.
    """
    from sklearn.model_selection import StratifiedKFold

    from shopgraph.strategies.uplift_metrics import qini_auc_score

    arm = np.asarray(arm, dtype=object)
    y = np.asarray(y)
    strata = np.char.add(arm.astype(str), (y > 0).astype(int).astype(str))
    scores: dict[str, list[float]] = {}
    split = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for fit_rows, test_rows in split.split(np.zeros(len(arm)), strata):
        model = make().fit(features.iloc[fit_rows], arm[fit_rows], y[fit_rows], control=control)
        pred = model.predict(features.iloc[test_rows])
        for j, t in enumerate(pred.treatments):
            rows = np.isin(arm[test_rows], [t, control])
            scores.setdefault(t, []).append(qini_auc_score(
                y[test_rows][rows], pred.uplift[rows, j], arm[test_rows][rows] == t))
    return {t: (float(np.mean(s)), float(np.std(s, ddof=1) / np.sqrt(len(s))))
            for t, s in scores.items()}
