"""Exports: e-mail hashes, pseudonyms, byte-identical lists and the graph write-back."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shopgraph.errors import ShopgraphError
from shopgraph.strategies import audience as A
from shopgraph.strategies import exports as E


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize(("raw", "normalised"), [
    ("  Jane.Doe@GMail.com ", "janedoe@gmail.com"),
    ("J.Smith+promo@googlemail.com", "jsmith+promo@googlemail.com"),
    ("First.Last@Example.COM", "first.last@example.com"),
    ("\tuser@sub.example.org\n", "user@sub.example.org"),
])
def test_email_normalisation_and_hash(raw: str, normalised: str) -> None:
    assert E.normalise_email(raw) == normalised
    assert E.hash_email(raw) == sha(normalised)


def test_email_hash_known_vector_and_non_addresses() -> None:
    known = "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"
    assert E.hash_email("Test@Example.com") == known  # SHA-256("test@example.com")
    for bad in (None, float("nan"), "", "no-at-sign", "@example.com", "a b@example.com"):
        assert E.hash_email(bad) is None


def test_pseudonyms_are_stable_keyed_hmacs(tmp_path: Path) -> None:
    key = E.load_key(tmp_path / "key")
    assert stat.S_IMODE(os.stat(tmp_path / "key").st_mode) == 0o600
    assert E.load_key(tmp_path / "key") == key
    ids = ["1", "2", "42"]
    first = E.pseudonymise(ids, key)
    assert first == E.pseudonymise(ids, key)
    assert first[2] == hmac.new(key, b"42", hashlib.sha256).hexdigest()
    other = E.pseudonymise(ids, E.load_key(tmp_path / "other"))
    assert not set(first) & set(other)
    os.chmod(tmp_path / "key", 0o644)
    with pytest.raises(ShopgraphError, match="chmod 600"):
        E.load_key(tmp_path / "key")


def make_audience(seed: int) -> tuple[pd.DataFrame, str]:
    rng = np.random.default_rng(0)
    cands = pd.DataFrame({"user_id": [str(i) for i in range(200)],
                          "retrieval_score": rng.normal(size=200),
                          "response_proba": rng.uniform(size=200), "offer": "c7:o1"})
    aud = A.rank_audience(cands, "c7", n=120, control_share=0.25, seed=seed)
    return aud, E.run_id("c7", cands, {"n": 120, "control_share": 0.25}, seed=seed)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_same_inputs_and_seed_give_a_byte_identical_file(tmp_path: Path, suffix: str) -> None:
    emails = pd.Series({str(i): f"User.{i}@GMail.com" for i in range(0, 200, 2)})
    paths = []
    for n in range(2):
        aud, run = make_audience(seed=5)
        paths.append(E.write_list(aud, tmp_path / f"list{n}{suffix}", run, emails=emails))
    assert paths[0].read_bytes() == paths[1].read_bytes()
    aud, run = make_audience(seed=6)
    assert run != make_audience(seed=5)[1]
    table = pd.read_csv(paths[0], dtype={"user_id": str}) if suffix == ".csv" \
        else pd.read_parquet(paths[0])
    assert list(table.columns) == ["run_id", "campaign_id", "rank", "user_id", "offer", "score",
                                   "retrieval_score", "response_proba", "expected_value",
                                   "arm", "email_sha256"]
    assert len(table) == 120 and set(table["arm"]) == {"treatment", "control"}
    even = table["user_id"].astype(int) % 2 == 0
    row = table[even].iloc[0]
    assert row["email_sha256"] == sha(f"user{row['user_id']}@gmail.com")
    assert table.loc[~even, "email_sha256"].isna().all()
    assert list(tmp_path.glob(".*.tmp")) == []


def test_pseudonymised_list_and_customer_list(tmp_path: Path) -> None:
    aud, run = make_audience(seed=5)
    key = E.load_key(tmp_path / "key")
    E.write_list(aud, tmp_path / "p.csv", run, key=key, arms=("treatment",))
    table = pd.read_csv(tmp_path / "p.csv")
    assert "user_id" not in table and len(table) == aud.attrs["send"]
    assert table["pseudo_id"].tolist() == E.pseudonymise(
        aud.loc[aud["arm"] == "treatment", "user_id"], key)
    emails = pd.Series({u: f" {u}.x@Example.com" for u in aud["user_id"]})
    n = E.write_customer_list(aud, emails, tmp_path / "upload.csv")
    lines = (tmp_path / "upload.csv").read_text().splitlines()
    assert n == aud.attrs["send"] and lines[0] == "Email" and len(lines) == n + 1
    send = aud.loc[aud["arm"] == "treatment", "user_id"]
    assert lines[1:] == [sha(f"{u}.x@example.com") for u in send]
    with pytest.raises(ValueError, match=r"\.csv or \.parquet"):
        E.write_list(aud, tmp_path / "p.xlsx", run)
