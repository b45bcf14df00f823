"""The response head: the probability that a user responds to a campaign (redeems, converts,
clicks), learnt from logged exposures with their outcomes.

Inputs per (user, campaign) pair: the user's properties
(:func:`~shopgraph.graphdb.tables.user_features`, less ``email``, ``consent`` and
``zip_code``), the campaign's
(:func:`~shopgraph.graphdb.tables.campaign_features`: ``type``, ``channel``, ``duration``,
``offers``, ``items``), and pair columns carried by the log itself when present: the retrieval
score between the user's embedding and the campaign's items (``retrieval_score``) and the
history before the campaign's start (:data:`~shopgraph.strategies.history.HISTORY_COLUMNS`).

Two learners behind one flag: ``"lightgbm"`` (gradient-boosted trees, the default) and
``"logistic"`` (an L2 logistic regression on standardised numbers with missing flags and one-hot
categories, the baseline). On dunnhumby the two tie on ROC AUC and LightGBM leads on PR AUC;
scikit-learn's HistGradientBoosting tied on ROC AUC and trailed on PR AUC (measurements in
``docs/strategies-targeting.md``). LightGBM stays the default for that, its native missing
values and categories, and its exact per-feature contributions.
:meth:`ResponseHead.contributions` splits each prediction's log-odds into per-feature parts:
LightGBM's ``pred_contrib`` (TreeSHAP), or ``coef * (x - mean) / sd`` (training mean and
standard deviation of each encoded column) for the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from shopgraph.errors import InsufficientDataError
from shopgraph.strategies.features import show_value
from shopgraph.strategies.history import HISTORY_COLUMNS

KINDS = ("lightgbm", "logistic")
SCORE = "retrieval_score"
PAIR_COLUMNS = (SCORE, *HISTORY_COLUMNS)
USER_EXCLUDED = ("email", "consent", "zip_code")
CAMPAIGN_COLUMNS = ("type", "channel", "duration", "offers", "items")
LIGHTGBM_PARAMS: dict[str, Any] = {
    "n_estimators": 150, "learning_rate": 0.03, "num_leaves": 4, "min_child_samples": 40,
    "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8, "reg_lambda": 5.0,
    "cat_smooth": 20, "min_data_per_group": 50, "n_jobs": 1, "deterministic": True,
    "force_row_wise": True, "verbose": -1}


def design_matrix(pairs: pd.DataFrame, user_features: pd.DataFrame,
                  campaign_features: pd.DataFrame) -> pd.DataFrame:
    """The model's raw inputs, one row per pair (same index as ``pairs``).

    Args:
        pairs: ``user_id``, ``campaign_id`` and optionally :data:`PAIR_COLUMNS`.
        user_features: indexed by ``user_id``; unknown users get missing values.
        campaign_features: indexed by ``campaign_id``.
    """
    missing = {"user_id", "campaign_id"} - set(pairs.columns)
    if missing:
        raise ValueError(f"pairs lack columns {sorted(missing)}")
    users = user_features.drop(columns=[c for c in USER_EXCLUDED if c in user_features])
    camps = campaign_features[[c for c in CAMPAIGN_COLUMNS if c in campaign_features]]
    out = pd.DataFrame(index=pairs.index)
    uid = pairs["user_id"].astype(str).to_numpy()
    cid = pairs["campaign_id"].astype(str).to_numpy()
    for col in users.columns:
        out[col] = users[col].reindex(uid).to_numpy()
    for col in camps.columns:
        out[f"campaign_{col}"] = camps[col].reindex(cid).to_numpy()
    for col in PAIR_COLUMNS:
        if col in pairs:
            out[col] = pd.to_numeric(pairs[col], errors="coerce").to_numpy(dtype=float)
    return out.dropna(axis=1, how="all")


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


@dataclass
class _Encoding:
    """How raw columns become numbers: categories and, for the baseline, scaling."""

    numeric: list[str]
    categorical: dict[str, list[str]]
    median: dict[str, float] = field(default_factory=dict)
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    groups: list[str] = field(default_factory=list)  # source column of each encoded column

    @classmethod
    def learn(cls, frame: pd.DataFrame) -> _Encoding:
        numeric = [c for c in frame.columns if _is_numeric(frame[c])]
        cats = {c: sorted(frame[c].dropna().astype(str).unique())
                for c in frame.columns if c not in numeric}
        return cls(numeric, cats)

    def trees(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Numbers as floats, categories as pandas categoricals with the training levels."""
        out = pd.DataFrame(index=frame.index)
        for col in frame.columns:  # the frame's order: pred_contrib's columns follow it
            if col in self.categorical:
                values = frame[col].astype(object).where(frame[col].notna(), None)
                known = set(self.categorical[col])  # levels unseen in training: missing
                out[col] = pd.Categorical(
                    [str(v) if v is not None and str(v) in known else None for v in values],
                    categories=self.categorical[col])
            else:
                out[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
        return out

    def linear(self, frame: pd.DataFrame, fit: bool = False) -> np.ndarray:
        """Median-filled numbers with a missing flag, one-hot categories, standardised."""
        blocks, groups = [], []
        for col in self.numeric:
            x = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
            if fit:
                self.median[col] = float(np.nanmedian(x)) if np.isfinite(x).any() else 0.0
            miss = np.isnan(x)
            blocks += [np.where(miss, self.median[col], x), miss.astype(float)]
            groups += [col, col]
        for col, levels in self.categorical.items():
            values = frame[col].astype(object).where(frame[col].notna(), None)
            text = np.array(["" if v is None else str(v) for v in values], dtype=object)
            for level in levels:
                blocks.append((text == level).astype(float))
                groups.append(col)
        x = np.column_stack(blocks) if blocks else np.zeros((len(frame), 0))
        if fit:
            self.groups = groups
            self.mean, scale = x.mean(axis=0), x.std(axis=0)
            self.scale = np.where(scale > 0, scale, 1.0)
        assert self.mean is not None and self.scale is not None
        z: np.ndarray = (x - self.mean) / self.scale
        return z


@dataclass
class ResponseHead:
    """A fitted response model; create it with :func:`fit`.

    Args:
        kind: ``"lightgbm"`` or ``"logistic"``.
        label: the outcome column it predicts.
        columns: the raw input columns, in order.
        encoding: how inputs are encoded.
        model: the fitted estimator.
        base_rate: the training label mean.
    """

    kind: str
    label: str
    columns: list[str]
    encoding: _Encoding
    model: Any
    base_rate: float

    def _inputs(self, pairs: pd.DataFrame, user_features: pd.DataFrame,
                campaign_features: pd.DataFrame) -> pd.DataFrame:
        raw = design_matrix(pairs, user_features, campaign_features)
        absent = [c for c in self.columns if c in PAIR_COLUMNS and c not in raw]
        if absent:
            raise ValueError(f"pairs lack {absent}, which the head was trained with; add "
                             f"{SCORE!r} from the retriever and the history columns with "
                             "campaigns.history_features")
        return raw.reindex(columns=self.columns)

    def predict_proba(self, pairs: pd.DataFrame, user_features: pd.DataFrame,
                      campaign_features: pd.DataFrame) -> np.ndarray:
        """The probability of a response for each pair (same order as ``pairs``)."""
        raw = self._inputs(pairs, user_features, campaign_features)
        if self.kind == "lightgbm":
            proba: np.ndarray = self.model.predict_proba(self.encoding.trees(raw))[:, 1]
        else:
            proba = self.model.predict_proba(self.encoding.linear(raw))[:, 1]
        return proba

    def contributions(self, pairs: pd.DataFrame, user_features: pd.DataFrame,
                      campaign_features: pd.DataFrame) -> pd.DataFrame:
        """Per-feature parts of each pair's log-odds; they and ``bias`` add up to the logit."""
        raw = self._inputs(pairs, user_features, campaign_features)
        if self.kind == "lightgbm":
            parts = self.model.predict(self.encoding.trees(raw), pred_contrib=True)
            return pd.DataFrame(parts, index=pairs.index, columns=[*self.columns, "bias"])
        x = self.encoding.linear(raw)
        coef = self.model.coef_[0]
        per_col = pd.DataFrame(x * coef, index=pairs.index).T.groupby(
            np.array(self.encoding.groups)).sum().T
        out = per_col.reindex(columns=self.columns, fill_value=0.0)
        out["bias"] = float(self.model.intercept_[0])
        return out

    def reasons(self, pairs: pd.DataFrame, user_features: pd.DataFrame,
                campaign_features: pd.DataFrame, top: int = 3) -> pd.DataFrame:
        """The ``top`` features that moved each prediction most, as ``feature=value (+0.42)``
        in columns ``reason_1`` ... (log-odds; positive raises the probability)."""
        if top < 1:
            raise ValueError(f"top must be at least 1, got {top}")
        parts = self.contributions(pairs, user_features, campaign_features).drop(
            columns="bias")
        raw = self._inputs(pairs, user_features, campaign_features)
        # By position, column by column: a label lookup per cell (``.at``) costs ~0.2 ms.
        values = [raw[c].to_numpy(dtype=object) for c in parts.columns]
        contrib = parts.to_numpy()
        order = np.argsort(-np.abs(contrib), axis=1, kind="stable")[:, :top]
        names = np.asarray(parts.columns)
        rows = np.arange(len(pairs))
        out = pd.DataFrame(index=pairs.index)
        for k in range(min(top, parts.shape[1])):
            cols = order[:, k]
            out[f"reason_{k + 1}"] = [
                f"{names[j]}={show_value(values[j][i])} ({contrib[i, j]:+.2f})"
                for i, j in zip(rows, cols)]
        return out


def fit(log: pd.DataFrame, user_features: pd.DataFrame, campaign_features: pd.DataFrame, *,
        label: str = "redeemed", kind: str = "lightgbm", seed: int = 0,
        params: dict[str, Any] | None = None) -> ResponseHead:
    """Fit the response head on logged exposures with outcomes.

    Args:
        log: one row per treated (user, campaign): ``user_id``, ``campaign_id``, the 0/1
            ``label`` and optionally :data:`PAIR_COLUMNS` (rows with ``treated`` false are
            left out: a control user was not asked).
        user_features: indexed by ``user_id``.
        campaign_features: indexed by ``campaign_id``.
        label: the outcome column, e.g. ``redeemed``, ``converted`` or ``visited``.
        kind: ``"lightgbm"`` or ``"logistic"`` (the baseline).
        seed: random seed (LightGBM's bagging); the fit is deterministic given it.
        params: LightGBM parameters over :data:`LIGHTGBM_PARAMS`, or LogisticRegression's.

    Raises:
        ValueError: an unknown ``kind`` or a missing ``label`` column.
        InsufficientDataError: the log has no rows or only one outcome, so nothing can be learnt.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    if label not in log:
        raise ValueError(f"the log has no {label!r} column; choose one of {list(log.columns)}")
    if "treated" in log:
        log = log[log["treated"].astype(bool)]
    y = pd.to_numeric(log[label], errors="coerce").fillna(0).to_numpy() > 0
    if len(y) == 0 or y.all() or not y.any():
        raise InsufficientDataError(f"the log has {len(y)} treated rows and {int(y.sum())} with "
                             f"{label}=1; the response head needs both outcomes, so log more "
                             "campaigns with their outcomes or choose another label")
    raw = design_matrix(log, user_features, campaign_features)
    encoding = _Encoding.learn(raw)
    if kind == "lightgbm":
        from lightgbm import LGBMClassifier

        model = LGBMClassifier(**{**LIGHTGBM_PARAMS, "random_state": seed, **(params or {})})
        model.fit(encoding.trees(raw), y.astype(int))
    else:
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(**{"C": 0.01, "max_iter": 2000, **(params or {})})
        model.fit(encoding.linear(raw, fit=True), y.astype(int))
    return ResponseHead(kind, label, list(raw.columns), encoding, model, float(y.mean()))


def time_split(log: pd.DataFrame, campaign_features: pd.DataFrame, test_from_day: float
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a log by time: test on campaigns starting on or after ``test_from_day``, train on
    campaigns that ended before it (their outcomes were all known by then).

    Campaigns running across the cut-off are in neither part.
    """
    start = log["campaign_id"].astype(str).map(campaign_features["start_day"])
    end = log["campaign_id"].astype(str).map(campaign_features["end_day"])
    if start.isna().any():
        raise ValueError("some campaigns have no start_day; a time split needs one per campaign")
    return log[end < test_from_day], log[start >= test_from_day]


def scores(y: Any, proba: Any) -> dict[str, float]:
    """ROC AUC and PR AUC (average precision) of predictions against 0/1 outcomes."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = np.asarray(y) > 0
    return {"roc_auc": float(roc_auc_score(y, proba)),
            "pr_auc": float(average_precision_score(y, proba))}
