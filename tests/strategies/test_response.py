"""The response head: history before each start, both learners, reasons, dunnhumby AUC."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shopgraph.errors import ShopgraphError
from shopgraph.strategies import history as C
from shopgraph.strategies import response as R
from shopgraph.strategies.features import show_value


def toy() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """2,000 users x 3 campaigns; responders are mostly 'A' users with a high retrieval score."""
    rng = np.random.default_rng(0)
    users = pd.DataFrame({"segment": rng.choice(["A", "B"], 2000), "age": rng.normal(40, 10, 2000),
                          "email": "x@y.z"}, index=pd.Index([f"u{i}" for i in range(2000)],
                                                            name="user_id"))
    camps = pd.DataFrame({"type": ["T1", "T2", "T1"], "start_day": [1.0, 50, 100],
                          "end_day": [30.0, 80, 130], "duration": [30.0, 31, 31],
                          "offers": [1.0, 2, 3]}, index=pd.Index(["c1", "c2", "c3"],
                                                                 name="campaign_id"))
    log = pd.DataFrame({"user_id": np.repeat(users.index, 3),
                        "campaign_id": np.tile(camps.index, 2000), "treated": True})
    log["retrieval_score"] = rng.normal(size=len(log))
    logit = -2 + 1.5 * log["retrieval_score"] + 1.5 * (
        users["segment"].reindex(log["user_id"]).to_numpy() == "A")
    log["redeemed"] = (rng.uniform(size=len(log)) < 1 / (1 + np.exp(-logit))).astype(int)
    return log, users, camps


@pytest.mark.parametrize("kind", R.KINDS)
def test_head_learns_the_toy_response_and_its_contributions_add_up(kind: str) -> None:
    log, users, camps = toy()
    train, test = log[log["campaign_id"] != "c3"], log[log["campaign_id"] == "c3"]
    head = R.fit(train, users, camps, kind=kind)
    assert "email" not in head.columns and "retrieval_score" in head.columns
    proba = head.predict_proba(test, users, camps)
    assert R.scores(test["redeemed"], proba)["roc_auc"] > 0.75
    parts = head.contributions(test, users, camps)
    logit = parts.sum(axis=1).to_numpy()
    np.testing.assert_allclose(1 / (1 + np.exp(-logit)), proba, atol=1e-6)
    top = head.reasons(test, users, camps, top=2)
    assert list(top.columns) == ["reason_1", "reason_2"] and top.index.equals(test.index)
    first = top["reason_1"].str.split("=").str[0].value_counts()
    assert first.index[0] in ("retrieval_score", "segment")


@pytest.mark.parametrize("kind", R.KINDS)
def test_reasons_name_each_rows_largest_contributions_by_hand(kind: str) -> None:
    log, users, camps = toy()
    head = R.fit(log, users, camps, kind=kind)
    test = log.head(40).copy()
    test.index = [f"row{i}" for i in range(39, -1, -1)]  # labels, not positions
    test.iloc[0, test.columns.get_loc("user_id")] = "stranger"  # no user features: missing
    parts = head.contributions(test, users, camps).drop(columns="bias")
    raw = R.design_matrix(test, users, camps).reindex(columns=head.columns)
    want = []
    for i in test.index:
        row = parts.loc[i]
        order = row.abs().sort_values(ascending=False, kind="stable").index[:2]
        want.append([f"{c}={show_value(raw.at[i, c])} ({row[c]:+.2f})" for c in order])
    top = head.reasons(test, users, camps, top=2)
    assert top.index.equals(test.index)
    assert top.to_numpy().tolist() == want


def test_fit_is_deterministic_given_the_seed() -> None:
    log, users, camps = toy()
    a = R.fit(log, users, camps, seed=3).predict_proba(log.head(50), users, camps)
    b = R.fit(log, users, camps, seed=3).predict_proba(log.head(50), users, camps)
    np.testing.assert_array_equal(a, b)


def test_bad_arguments_and_unlearnable_logs_raise() -> None:
    log, users, camps = toy()
    with pytest.raises(ValueError, match="unknown kind"):
        R.fit(log, users, camps, kind="svm")
    with pytest.raises(ValueError, match="no 'clicked' column"):
        R.fit(log, users, camps, label="clicked")
    with pytest.raises(ShopgraphError, match="needs both outcomes"):
        R.fit(log.assign(redeemed=0), users, camps)
    head = R.fit(log, users, camps)
    with pytest.raises(ValueError, match="retrieval_score"):
        head.predict_proba(log.drop(columns="retrieval_score"), users, camps)


def test_history_counts_only_what_happened_before_the_start() -> None:
    camps = pd.DataFrame({"type": ["X", "X", "Y"], "start_day": [10.0, 18, 40],
                          "end_day": [20.0, 30, 50]}, index=["A", "B", "C"])
    log = pd.DataFrame({"user_id": "u", "campaign_id": ["A", "B", "C"], "treated": True,
                        "redeemed": [1, 0, 1]})
    events = pd.DataFrame({"user_id": ["u", "u"], "campaign_id": ["A", "C"], "day": [15, 45]})
    h = C.history_features(log, log, camps, events).set_index(log["campaign_id"])
    assert h.loc["A"].fillna(-1).tolist() == [0, 0, 0, 0, 0, -1, -1, -1]
    b, c = h.loc["B"], h.loc["C"]
    assert (b.hist_campaigns, b.hist_same_type, b.hist_active) == (1, 1, 1)
    assert (b.hist_redemptions, b.days_since_redemption, b.days_since_campaign) == (1, 3, 8)
    assert (c.hist_campaigns, c.hist_same_type, c.hist_active) == (2, 0, 0)
    assert (c.hist_redeemed_campaigns, c.hist_redeem_rate, c.days_since_redemption) == (1, .5, 25)
    # without event days a redemption is known the day after its campaign ended (A: day 21)
    blind = C.history_features(log, log, camps).set_index(log["campaign_id"])
    assert blind.loc["B", "hist_redemptions"] == 0 and blind.loc["C", "hist_redemptions"] == 1


def test_time_split_keeps_campaigns_spanning_the_cut_off_out() -> None:
    camps = pd.DataFrame({"start_day": [1.0, 10, 20], "end_day": [9.0, 25, 30]},
                         index=["a", "b", "c"])
    log = pd.DataFrame({"user_id": "u", "campaign_id": ["a", "b", "c"]})
    train, test = R.time_split(log, camps, 20)
    assert train["campaign_id"].tolist() == ["a"] and test["campaign_id"].tolist() == ["c"]


@pytest.mark.shared_data
def test_dunnhumby_redemption_auc_on_later_campaigns(shared_data: Path) -> None:
    from shopgraph.graphdb import tables
    from shopgraph.graphdb.formats import load

    src = load("dunnhumby", shared_data / "dunnhumby_complete_journey")
    log, uf = tables.campaign_log(src), tables.user_features(src)
    cf = tables.campaign_features(src)
    log = log.join(C.history_features(log, log, cf, tables.redemptions(src)))
    train, test = R.time_split(log, cf, 587)
    assert (len(train), len(test)) == (4259, 2318)
    # bench/dunnhumby.py, 2026-11-23: LightGBM 0.7895, logistic 0.7943; margin 0.03
    for kind in R.KINDS:
        head = R.fit(train, uf, cf, kind=kind)
        assert R.scores(test["redeemed"], head.predict_proba(test, uf, cf))["roc_auc"] > 0.76
