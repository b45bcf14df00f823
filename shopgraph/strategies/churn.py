"""Churn head: the calibrated probability that a customer makes no purchase within ``H`` days.

A score model over :func:`~shopgraph.strategies.features.rfm_features` (plus optional ``extra``
columns such as embedding components or graph degree), trained on one time-based snapshot that
ends at the cutoff:

.. math::

    t_0 = t_{\\text{cutoff}} - H, \\qquad
    x_u = \\phi(\\{(t, v) \\in \\text{purchases}_u : t < t_0\\}), \\qquad
    y_u = \\mathbb{1}[\\text{no purchase of } u \\text{ in } [t_0, t_{\\text{cutoff}})]

so nothing at or after the cutoff is read. Two models share the contract:

* ``"lightgbm"`` (default): gradient-boosted trees (Ke et al., "LightGBM: A Highly Efficient
  Gradient Boosting Decision Tree", NeurIPS 2017) on every feature; reasons are TreeSHAP values
  (Lundberg et al., "From local explanations to global understanding with explainable AI for
  trees", Nat. Mach. Intell. 2020) from ``pred_contrib=True``.
* ``"logistic"``: the RFM baseline, logistic regression on signed-log, standardised
  ``recency_days, frequency, monetary``; reasons are ``coef_j * z_j``.

The raw log-odds are calibrated by cross-fitting on the training snapshot: ``folds`` models,
each fitted without one stratified fold of users, score that fold; Platt's sigmoid (default) or
isotonic regression (Zadrozny & Elkan, KDD 2002) is fitted with scikit-learn on those
out-of-fold scores, and the final model is fitted on every user (scikit-learn's
``CalibratedClassifierCV(ensemble=False)`` scheme). Calibrated probabilities fall into risk bands
``low < bands[0] <= medium < bands[1] <= high``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from shopgraph.artifacts import write_json
from shopgraph.errors import InsufficientDataError, ShopgraphError
from shopgraph.parallel import Engine
from shopgraph.strategies.features import (
    DAY,
    as_seconds,
    before,
    churn_labels,
    rfm_features,
)

MODELS = ("lightgbm", "logistic")
CALIBRATIONS = ("isotonic", "sigmoid")
BANDS = ("low", "medium", "high")
#: The RFM baseline's features.
BASELINE_FEATURES = ("recency_days", "frequency", "monetary")
#: LightGBM settings: one thread; 4 leaves x 100 rounds won a validation grid inside the
#: CDNOW calibration period (docs/strategies-churn.md); bigger trees overfit the snapshot.
LGB_PARAMS: dict[str, Any] = {
    "objective": "binary", "learning_rate": 0.05, "num_leaves": 4, "min_data_in_leaf": 50,
    "feature_fraction": 0.9, "lambda_l2": 1.0, "num_threads": 1, "verbose": -1,
    "deterministic": True, "force_col_wise": True,
}
FORMAT = "shopgraph-churn-head/1"


def _date(seconds: float) -> str:
    stamp = pd.Timestamp(int(seconds), unit="s")
    text: str = stamp.date().isoformat() if stamp == stamp.normalize() else stamp.isoformat()
    return text


def training_set(purchases: pd.DataFrame, cutoff: Any, horizon_days: float,
                 extra: pd.DataFrame | None = None, min_class: int = 20,
                 engine: Engine | None = None) -> tuple[pd.DataFrame, pd.Series]:
    """Features at ``cutoff - H`` (built on ``engine``, default here) and labels over
    ``[cutoff - H, cutoff)``, refusing data that cannot support training.

    Raises:
        ValueError: a non-positive horizon.
        InsufficientDataError: no purchases before the cutoff, less than ``H`` days of history
            before ``cutoff - H``, or fewer than ``min_class`` churners or stayers.
    """
    cutoff = as_seconds(cutoff)
    if not horizon_days > 0:
        raise ValueError(f"horizon_days must be positive, got {horizon_days}")
    past = before(purchases, cutoff)
    if past.empty:
        raise InsufficientDataError(f"no purchases before the cutoff {_date(cutoff)}; "
                             "choose a later cutoff or load the purchase history")
    start = int(past["ts"].min())
    t0 = cutoff - int(round(horizon_days * DAY))
    history = (t0 - start) / DAY
    if history < horizon_days:
        raise InsufficientDataError(
            f"the history before the training cutoff {_date(t0)} covers {max(history, 0):g} "
            f"days, shorter than the {horizon_days:g}-day horizon; train with a cutoff on or "
            f"after {_date(start + 2 * horizon_days * DAY)} or a horizon of at most "
            f"{int((cutoff - start) / DAY // 2)} days")
    x = rfm_features(past, t0, extra, engine=engine)
    y = churn_labels(past, t0, horizon_days).reindex(x.index)
    churned = int(y.sum())
    for count, what in ((churned, "churned"), (len(y) - churned, "stayed")):
        if count < min_class:
            raise InsufficientDataError(
                f"only {count} of {len(y)} customers {what} in the training window "
                f"[{_date(t0)}, {_date(cutoff)}); at least {min_class} must churn and "
                f"{min_class} stay to train; use more customers or another horizon")
    return x, y


class Calibrator:
    """Maps raw log-odds to probabilities: isotonic (piecewise linear) or Platt sigmoid."""

    def __init__(self, method: str, params: dict[str, Any]) -> None:
        self.method, self.params = method, params

    @classmethod
    def fit(cls, raw: np.ndarray, y: np.ndarray, method: str) -> Calibrator:
        """Fit ``method`` on held-out raw scores and labels."""
        if method == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, y)
            return cls(method, {"x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()})
        from sklearn.linear_model import LogisticRegression

        lr = LogisticRegression(C=np.inf).fit(raw.reshape(-1, 1), y)
        return cls(method, {"a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])})

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        if self.method == "isotonic":
            piecewise: np.ndarray = np.interp(raw, self.params["x"], self.params["y"])
            return piecewise
        sigmoid: np.ndarray = 1.0 / (1.0 + np.exp(-(self.params["a"] * raw + self.params["b"])))
        return sigmoid


class ChurnHead:
    """Calibrated churn probability, risk band and top reasons per customer.

    Args:
        model: ``"lightgbm"`` or ``"logistic"`` (the RFM baseline) (default: ``"lightgbm"``).
        calibration: ``"sigmoid"`` or ``"isotonic"`` (default: ``"sigmoid"``).
        bands: probability thresholds ``(medium_from, high_from)`` (default: ``(0.5, 0.8)``:
            *low* customers are more likely than not to buy within the horizon, *high* ones
            are lost at least four times in five).
        features: feature columns to use (default: every RFM feature and ``extra`` column for
            LightGBM, :data:`BASELINE_FEATURES` for logistic).
        folds: cross-fitting folds for the calibration (default: 5).
        min_class: fewest churners and stayers to train on (default: 20).
        rounds: LightGBM boosting rounds (default: 100).
        params: LightGBM settings over :data:`LGB_PARAMS`.
        seed: seed of the calibration folds and LightGBM (default: 0).
    """

    def __init__(self, model: str = "lightgbm", *, calibration: str = "sigmoid",
                 bands: Sequence[float] = (0.5, 0.8), features: Sequence[str] | None = None,
                 folds: int = 5, min_class: int = 20, rounds: int = 100,
                 params: dict[str, Any] | None = None, seed: int = 0) -> None:
        if model not in MODELS:
            raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
        if calibration not in CALIBRATIONS:
            raise ValueError(f"unknown calibration {calibration!r}; choose one of "
                             f"{', '.join(CALIBRATIONS)}")
        lo, hi = (float(b) for b in bands)
        if not 0.0 < lo < hi < 1.0:
            raise ValueError(f"bands must be two increasing probabilities in (0, 1), got {bands}")
        if folds < 2:
            raise ValueError(f"folds must be at least 2, got {folds}")
        self.model, self.calibration, self.bands = model, calibration, (lo, hi)
        self.requested = list(features) if features is not None else None
        self.features: list[str] | None = self.requested
        self.folds, self.min_class = folds, min_class
        self.rounds, self.seed = rounds, seed
        self.params = {**LGB_PARAMS, **(params or {}), "seed": seed}
        self.horizon_days: float | None = None
        self.info: dict[str, Any] = {}
        self._booster: Any = None
        self._linear: dict[str, np.ndarray] = {}
        self._calibrator: Calibrator | None = None

    # -- training ---------------------------------------------------------------------------
    def fit(self, purchases: pd.DataFrame, cutoff: Any, horizon_days: float,
            extra: pd.DataFrame | None = None, engine: Engine | None = None) -> ChurnHead:
        """Train on the snapshot ``cutoff - horizon_days`` (see :func:`training_set`; its
        features built on ``engine``, default here).

        ``extra`` must itself be computed from data before ``cutoff - horizon_days`` (an
        embedding trained on later purchases leaks the labels into the features).
        """
        from sklearn.model_selection import StratifiedKFold

        x, y = training_set(purchases, cutoff, horizon_days, extra, self.min_class, engine)
        default = BASELINE_FEATURES if self.model == "logistic" else x.columns
        self.features = list(self.requested or default)
        xv, yv = self._select(x).to_numpy(dtype=float), y.to_numpy()
        out_of_fold = np.empty(len(yv))
        split = StratifiedKFold(self.folds, shuffle=True, random_state=self.seed)
        for train, held in split.split(xv, yv):
            self._fit_model(xv[train], yv[train])
            out_of_fold[held] = self._raw(xv[held])
        self._fit_model(xv, yv)
        self._calibrator = Calibrator.fit(out_of_fold, yv, self.calibration)
        self.horizon_days = float(horizon_days)
        cutoff = as_seconds(cutoff)
        self.info = {"cutoff": _date(cutoff), "train_cutoff": _date(cutoff - horizon_days * DAY),
                     "users": len(yv), "churn_rate": round(float(yv.mean()), 4)}
        return self

    def _fit_model(self, x: np.ndarray, y: np.ndarray) -> None:
        if self.model == "lightgbm":
            import lightgbm as lgb

            assert self.features is not None  # fit() sets them before fitting any model
            data = lgb.Dataset(x, y, feature_name=self.features, free_raw_data=True)
            self._booster = lgb.train(self.params, data, num_boost_round=self.rounds)
        else:
            self._fit_logistic(x, y)

    def _fit_logistic(self, x: np.ndarray, y: np.ndarray) -> None:
        from sklearn.linear_model import LogisticRegression

        z = np.sign(x) * np.log1p(np.abs(x))
        mean, scale = np.nanmean(z, axis=0), np.nanstd(z, axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        lr = LogisticRegression(C=1.0, max_iter=1000).fit(
            np.nan_to_num((z - mean) / scale), y)
        self._linear = {"coef": lr.coef_[0], "intercept": np.array(lr.intercept_[0]),
                        "mean": mean, "scale": scale}

    # -- scoring ----------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if self._calibrator is None:
            raise ShopgraphError("the churn head is not trained; call fit(...) or "
                                 "ChurnHead.load(path) first")

    def _select(self, x: pd.DataFrame) -> pd.DataFrame:
        missing = [f for f in self.features or [] if f not in x.columns]
        if missing:
            raise ValueError(f"features {missing} are missing; pass the same extra columns "
                             "the head was trained with")
        return x[self.features]

    def _contributions(self, x: np.ndarray) -> np.ndarray:
        """Per-feature log-odds contributions plus a last bias column; rows sum to the score."""
        if self.model == "lightgbm":
            return np.asarray(self._booster.predict(x, pred_contrib=True))
        lin = self._linear
        z = np.nan_to_num((np.sign(x) * np.log1p(np.abs(x)) - lin["mean"]) / lin["scale"])
        parts = z * lin["coef"]
        return np.column_stack([parts, np.full(len(x), float(lin["intercept"]))])

    def _raw(self, x: np.ndarray) -> np.ndarray:
        if self.model == "lightgbm":
            return np.asarray(self._booster.predict(x, raw_score=True))
        score: np.ndarray = self._contributions(x).sum(axis=1)
        return score

    def features_at(self, purchases: pd.DataFrame, at: Any,
                    extra: pd.DataFrame | None = None,
                    engine: Engine | None = None) -> pd.DataFrame:
        """The head's feature matrix at ``at`` (users with a purchase before it), built on
        ``engine`` (default here)."""
        self._check_fitted()
        return self._select(rfm_features(purchases, at, extra, engine=engine))

    def predict(self, purchases: pd.DataFrame, at: Any,
                extra: pd.DataFrame | None = None,
                engine: Engine | None = None) -> pd.DataFrame:
        """Churn probability over ``[at, at + H)`` of every user who bought before ``at``
        (the features built on ``engine``, default here).

        Returns:
            A frame indexed by ``user_id``: ``churn_probability`` (calibrated), ``risk_band``
            (ordered categorical ``low < medium < high``) and ``score`` (raw log-odds).
        """
        x = self.features_at(purchases, at, extra, engine)
        raw = self._raw(x.to_numpy(dtype=float))
        assert self._calibrator is not None  # features_at() checked the head is fitted
        prob = self._calibrator(raw)
        lo, hi = self.bands
        band = np.select([prob < lo, prob < hi], ["low", "medium"], "high")
        return pd.DataFrame({"churn_probability": prob,
                             "risk_band": pd.Categorical(band, BANDS, ordered=True),
                             "score": raw}, index=x.index)

    def contributions(self, purchases: pd.DataFrame, at: Any,
                      extra: pd.DataFrame | None = None) -> pd.DataFrame:
        """Per-feature log-odds contributions and a ``bias`` column; each row sums to ``score``.

        LightGBM: TreeSHAP values; logistic: ``coef_j * z_j`` and the intercept.
        """
        x = self.features_at(purchases, at, extra)
        parts = self._contributions(x.to_numpy(dtype=float))
        return pd.DataFrame(parts, index=x.index, columns=[*x.columns, "bias"])

    def reasons(self, purchases: pd.DataFrame, at: Any, extra: pd.DataFrame | None = None,
                users: Sequence[str] | None = None, k: int = 3) -> pd.DataFrame:
        """The ``k`` features that moved each user's score most, by absolute contribution.

        Contributions are in raw log-odds (before calibration, which is monotone); a positive
        one pushes towards churn.

        Returns:
            Long frame ``user_id, rank (1..k), feature, value, contribution``.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        x = self.features_at(purchases, at, extra)
        if users is not None:
            x = x.reindex(pd.Index([str(u) for u in users]).intersection(x.index, sort=False))
        values = x.to_numpy(dtype=float)
        contrib = self._contributions(values)[:, :-1]
        k = min(k, contrib.shape[1])
        top = np.argsort(-np.abs(contrib), axis=1, kind="stable")[:, :k]
        rows = np.repeat(np.arange(len(x)), k)
        cols = top.ravel()
        return pd.DataFrame({
            "user_id": x.index.to_numpy()[rows], "rank": np.tile(np.arange(1, k + 1), len(x)),
            "feature": np.asarray(self.features)[cols], "value": values[rows, cols],
            "contribution": contrib[rows, cols]})

    # -- persistence ------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the head as one JSON file (LightGBM's model text inside), atomically."""
        self._check_fitted()
        assert self._calibrator is not None  # _check_fitted() raised otherwise
        state: dict[str, Any] = {
            "format": FORMAT, "model": self.model, "features": self.features,
            "horizon_days": self.horizon_days, "bands": list(self.bands),
            "calibration": {"method": self._calibrator.method, **self._calibrator.params},
            "settings": {"folds": self.folds,
                         "min_class": self.min_class, "rounds": self.rounds, "seed": self.seed,
                         "params": self.params},
            "info": self.info}
        if self.model == "lightgbm":
            state["lightgbm"] = self._booster.model_to_string()
        else:
            state["logistic"] = {k: np.asarray(v).tolist() for k, v in self._linear.items()}
        write_json(path, state)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ChurnHead:
        """Read a head written by :meth:`save`."""
        import json

        with open(path) as fh:
            state = json.load(fh)
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ShopgraphError(f"{path} is not a churn head saved by ChurnHead.save "
                                 f"(format {FORMAT}); train and save the head again")
        s, cal = state["settings"], dict(state["calibration"])
        head = cls(state["model"], calibration=cal.pop("method"), bands=state["bands"],
                   features=state["features"], folds=s["folds"],
                   min_class=s["min_class"], rounds=s["rounds"], params=s["params"],
                   seed=s["seed"])
        head.horizon_days, head.info = state["horizon_days"], state["info"]
        head._calibrator = Calibrator(head.calibration, cal)
        if head.model == "lightgbm":
            import lightgbm as lgb

            head._booster = lgb.Booster(model_str=state["lightgbm"])
        else:
            head._linear = {k: np.asarray(v, dtype=float) for k, v in state["logistic"].items()}
        return head
