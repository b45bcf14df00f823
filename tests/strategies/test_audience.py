"""Ranked audiences: the blend, the hash-based control group and consent."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from shopgraph.strategies import audience as A


def candidates(n: int = 10_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"user_id": [f"u{i}" for i in range(n)],
                         "retrieval_score": rng.normal(size=n),
                         "response_proba": rng.uniform(size=n),
                         "churn_risk": rng.uniform(size=n)})


def test_control_draw_is_the_stated_sha256_uniform() -> None:
    digest = hashlib.sha256(b"spring:7:u42").digest()
    expected = int.from_bytes(digest[:8], "big") / 2**64
    assert A.control_draw(["u42"], "spring", seed=7)[0] == expected
    assert 0.0 <= expected < 1.0


@pytest.mark.parametrize("share", [0.05, 0.1, 0.5])
def test_control_share_on_10k_ids_is_close_and_exactly_reproducible(share: float) -> None:
    ids = [f"u{i}" for i in range(10_000)]
    held = A.assign_control(ids, "c1", share, seed=0)
    assert abs(held.mean() - share) < 5 * np.sqrt(share * (1 - share) / 10_000)
    np.testing.assert_array_equal(held, A.assign_control(ids, "c1", share, seed=0))
    assert (held != A.assign_control(ids, "c1", share, seed=1)).any()
    assert (held != A.assign_control(ids, "c2", share, seed=0)).any()


def test_control_group_ignores_the_score_and_the_audience_size() -> None:
    cands = candidates(2_000)
    full = A.rank_audience(cands, "c1", control_share=0.2, seed=3)
    shuffled = cands.assign(response_proba=cands["response_proba"].to_numpy()[::-1])
    other = A.rank_audience(shuffled, "c1", control_share=0.2, seed=3)
    arms = full.set_index("user_id")["arm"]
    pd.testing.assert_series_equal(other.set_index("user_id")["arm"].reindex(arms.index), arms)
    top = A.rank_audience(cands, "c1", n=500, control_share=0.2, seed=3)
    assert top["user_id"].tolist() == full["user_id"].head(500).tolist()
    assert top["arm"].tolist() == full["arm"].head(500).tolist()
    assert top.attrs["send"] + top.attrs["control"] == 500
    # a random sample: the control's mean score is the audience's, within noise
    control = full[full["arm"] == A.CONTROL]
    assert abs(control["score"].mean() - full["score"].mean()) < 0.03


def test_blend_is_the_weighted_percentile_mean_and_churn_weight_flips_the_order() -> None:
    cands = pd.DataFrame({"user_id": ["a", "b", "c", "d"],
                          "retrieval_score": [10.0, 0.0, 5.0, None],
                          "response_proba": [0.1, 0.9, 0.5, 0.3],
                          "churn_risk": [0.9, 0.1, 0.5, 0.2]})
    # pct(retrieval) = 1, 1/3, 2/3, 0.5 (missing); pct(response) = 1/4, 1, 3/4, 1/2
    got = A.blend(cands, {"retrieval_score": 1.0, "response_proba": 3.0})
    np.testing.assert_allclose(got, [(1 + 0.75) / 4, (1 / 3 + 3) / 4, (2 / 3 + 2.25) / 4, 0.5])
    win_back = A.rank_audience(cands, "c", weights={"churn_risk": 1.0}, control_share=0)
    keep = A.rank_audience(cands, "c", weights={"churn_risk": -1.0}, control_share=0)
    assert win_back["user_id"].tolist() == ["a", "c", "d", "b"]
    assert keep["user_id"].tolist() == ["b", "d", "c", "a"]


def test_consent_false_is_never_in_the_send_nor_the_control() -> None:
    cands = candidates(1_000)
    consent = pd.Series([False] * 300 + [True] * 600 + [None] * 100,
                        index=cands["user_id"], dtype=object)
    out = A.rank_audience(cands, "c1", control_share=0.3, consent=consent)
    refused = set(consent.index[consent == False])  # noqa: E712
    assert not refused & set(out["user_id"])
    assert len(out) == 700 and out.attrs["no_consent"] == 300
    strict = A.rank_audience(cands.assign(consent=consent.to_numpy()), "c1",
                             require_consent=True)
    assert set(strict["user_id"]) == set(consent.index[consent == True])  # noqa: E712


def test_expected_value_columns_and_errors() -> None:
    cands = candidates(50).assign(offer="o1")
    out = A.rank_audience(cands, "c1", n=10, value=20.0)
    assert list(out.columns) == ["campaign_id", "rank", "user_id", "offer", "score",
                                 "retrieval_score", "response_proba", "churn_risk",
                                 "expected_value", "arm"]
    np.testing.assert_allclose(out["expected_value"], out["response_proba"] * 20.0)
    assert out["rank"].tolist() == list(range(1, 11))
    with pytest.raises(ValueError, match="appears twice"):
        A.rank_audience(pd.concat([cands, cands.head(1)]), "c1")
    with pytest.raises(ValueError, match="no score to rank by"):
        A.rank_audience(cands[["user_id"]], "c1")
    with pytest.raises(ValueError, match="control_share"):
        A.rank_audience(cands, "c1", control_share=1.0)
    with pytest.raises(ValueError, match="unknown score components"):
        A.rank_audience(cands, "c1", weights={"ctr": 1.0})
