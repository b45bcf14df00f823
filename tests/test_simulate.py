"""The shop simulator: deterministic, ingestable, and what its data shows is its truth."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from shopgraph.cli.simulate import simulate as simulate_command
from shopgraph.graphdb.formats import load
from shopgraph.graphdb.tables import campaign_log, purchases, user_features
from shopgraph.simulator import (
    ARMS,
    OFFERS,
    TYPES,
    load_truth,
    simulate,
    stream,
    true_scores,
    true_top_k,
)

SMALL = {"users": 300, "items": 200, "interactions": 6_000}
MEDIUM = {"users": 10_000, "items": 400, "interactions": 200_000}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("small")
    return out, simulate(out, seed=1, **SMALL)


@pytest.fixture(scope="module")
def medium(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("medium")
    return out, simulate(out, seed=7, **MEDIUM)


def digests(folder: Path, names: list[str]) -> dict[str, str]:
    return {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in names}


def test_same_seed_gives_identical_files(small: tuple[Path, dict[str, Any]],
                                         tmp_path: Path) -> None:
    out, summary = small
    again = simulate(tmp_path / "again", seed=1, **SMALL)
    assert digests(out, summary["files"]) == digests(tmp_path / "again", again["files"])
    simulate(tmp_path / "other", seed=2, **SMALL)
    assert (digests(out, ["views.parquet", "truth.npz"])
            != digests(tmp_path / "other", ["views.parquet", "truth.npz"]))
    assert {k: v for k, v in again.items() if k not in ("out_dir", "mapping")} == {
        k: v for k, v in summary.items() if k not in ("out_dir", "mapping")}


def test_sizes_and_the_time_split(small: tuple[Path, dict[str, Any]]) -> None:
    out, summary = small
    assert len(pd.read_parquet(out / "users.parquet")) == SMALL["users"]
    assert len(pd.read_parquet(out / "items.parquet")) == SMALL["items"]
    assert abs(summary["interactions"] / SMALL["interactions"] - 1) < 0.25
    frames = {rel: pd.read_parquet(out / f) for rel, f in (
        ("VIEWED", "views.parquet"), ("CARTED", "carts.parquet"),
        ("PURCHASED", "purchases.parquet"))}
    assert {r: len(f) for r, f in frames.items()} == summary["by_type"]
    truth = load_truth(out)
    holdout = pd.read_parquet(out / "holdout.parquet")
    assert len(holdout) == summary["holdout_interactions"] > 0
    assert all((f["ts"] < truth["cutoff_ts"]).all() for f in frames.values())
    assert holdout["ts"].between(truth["cutoff_ts"], truth["horizon_end_ts"] - 1).all()
    ids = pd.concat([*(f["event_id"] for f in frames.values()), holdout["event_id"]])
    assert ids.is_unique
    assert set(holdout["rel"]) <= set(frames)


def test_mapping_ingests_with_no_problems(small: tuple[Path, dict[str, Any]]) -> None:
    out, summary = small
    data = load("tabular", out / "mapping.toml")
    assert data.problems == []
    nodes = {n.label: len(n.data) for n in data.nodes}
    assert nodes["User"] == SMALL["users"] and nodes["Item"] == SMALL["items"]
    assert nodes["Campaign"] == 2 and nodes["Offer"] == len(summary["offers"]) == 5
    log = campaign_log(data, "campaign-1")
    assert set(log["arm"]) == set(ARMS)
    assert set(log.loc[~log["treated"], "arm"]) == {"control"}
    assert log["arm"].value_counts().to_dict() == summary["campaigns"]["campaign-1"]["arms"]
    assert set(campaign_log(data, "campaign-0")["arm"]) == {"exposed"}
    buys = purchases(data)
    assert len(buys) == summary["by_type"]["PURCHASED"] and (buys["value"] > 0).all()
    users = user_features(data)
    assert {"email", "consent", "recency", "history", "newbie", "channel"} <= set(users)
    assert 0.9 < users["consent"].astype(bool).mean() < 1.0


def test_truth_file(small: tuple[Path, dict[str, Any]]) -> None:
    out, _ = small
    t = load_truth(out)
    n, m = SMALL["users"], SMALL["items"]
    assert list(t["type_names"]) == list(TYPES) and list(t["arm_names"]) == list(ARMS)
    assert t["user_factors"].shape[0] == n and t["item_factors"].shape[0] == m
    assert t["p_convert"].shape == t["p_visit"].shape == (n, len(ARMS))
    assert t["effect_logit"].shape == (n, len(OFFERS))
    assert ((t["p_convert"] > 0) & (t["p_convert"] <= t["p_visit"]) & (t["p_visit"] < 1)).all()
    assert np.allclose(true_scores(t, [0, 1]), t["user_factors"][:2] @ t["item_factors"].T)
    top = true_top_k(t, 5, kind="purchase")
    assert top.shape == (n, 5)
    s = true_scores(t, kind="purchase")
    assert (np.take_along_axis(s, top, 1)[:, 0] == s.max(axis=1)).all()
    assert t["params"]["dim"] == t["user_taste"].shape[1]
    alive = t["alive_at_cutoff"]
    assert not (t["churned_in_horizon"] & ~alive).any()
    assert (t["p_churn_horizon"][~alive] == 1).all() and t["no_purchase_in_horizon"][~alive].all()
    holdout = pd.read_parquet(out / "holdout.parquet")
    active_later = np.isin(t["user_ids"], holdout["user_id"])
    assert not (active_later & ~alive).any()  # churned users never come back
    assert set(t["campaign_arm"]) <= {"", *ARMS}


def test_choice_model_is_recoverable(medium: tuple[Path, dict[str, Any]]) -> None:
    out, _ = medium
    t = load_truth(out)
    views = pd.read_parquet(out / "views.parquet")
    user = pd.Index(t["user_ids"]).get_indexer(views["user_id"])
    item = pd.Index(t["item_ids"]).get_indexer(views["item_id"])
    s = true_scores(t)
    p = np.exp(s - s.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    expected = np.bincount(user, minlength=len(s)) @ p
    observed = np.bincount(item, minlength=s.shape[1])
    assert np.corrcoef(expected, observed)[0, 1] > 0.95
    rank = (s[user] < s[user, item][:, None]).mean(axis=1)  # share of items the view beats
    assert rank.mean() > 0.8


def test_offers_move_the_types_they_should(medium: tuple[Path, dict[str, Any]]) -> None:
    out, _ = medium
    t = load_truth(out)
    log = campaign_log(load("tabular", out / "mapping.toml"), "campaign-1")
    pos = pd.Index(t["user_ids"]).get_indexer(log["user_id"])
    log["type"] = np.asarray(TYPES)[t["user_type"][pos]]
    rate = log.groupby(["type", "treated"])["converted"].mean()
    assert rate["annoyed", True] < rate["annoyed", False] - 0.02  # treated annoyed buy less
    by_arm = log.groupby(["type", "arm"])["converted"].mean()
    assert by_arm["deal_seeker", "discount"] > by_arm["deal_seeker", "control"] + 0.05
    assert by_arm["convenience", "free_shipping"] > by_arm["convenience", "control"] + 0.05
    # the logged outcomes are draws from the truth's probabilities, arm by arm
    p = t["p_convert"][pos, [ARMS.index(a) for a in log["arm"]]]
    for arm, rows in log.groupby("arm").groups.items():
        se = np.sqrt(p[rows].mean() * (1 - p[rows].mean()) / len(rows))
        assert abs(log.loc[rows, "converted"].mean() - p[rows].mean()) < 3.5 * se, arm
    effect = t["effect_logit"]
    loyal, annoyed = (t["user_type"] == TYPES.index(k) for k in ("loyal", "annoyed"))
    assert (effect[loyal] == 0).all() and (effect[annoyed] < 0).all()


def test_churn_truth_matches_the_future(medium: tuple[Path, dict[str, Any]]) -> None:
    out, _ = medium
    t = load_truth(out)
    alive = t["alive_at_cutoff"]
    for real, prob in (("churned_in_horizon", "p_churn_horizon"),
                       ("no_purchase_in_horizon", "p_no_purchase_horizon")):
        y, q = t[real][alive].astype(float), t[prob][alive]
        assert abs(y.mean() - q.mean()) < 3.5 * np.sqrt(q.mean() * (1 - q.mean()) / len(q))
    h = t["hazard_at_cutoff"][alive]
    churned = t["churned_in_horizon"][alive]
    low, high = h < np.quantile(h, 0.25), h > np.quantile(h, 0.75)
    assert churned[high].mean() > 2 * churned[low].mean()
    e = t["engagement_at_cutoff"][alive]
    assert np.corrcoef(np.log(e), np.log(h))[0, 1] < -0.99  # hazard rises as engagement falls


def test_cli_json_equals_the_api(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(simulate_command)
    args = {"users": 40, "items": 30, "interactions": 800, "seed": 4}
    result = CliRunner().invoke(app, ["--out", str(tmp_path / "cli"), "--json",
                                      *(x for k, v in args.items() for x in (f"--{k}", str(v)))])
    assert result.exit_code == 0, result.output
    api = simulate(tmp_path / "api", **args)
    got = json.loads(result.stdout)
    drop = ("out_dir", "mapping")
    assert {k: v for k, v in got.items() if k not in drop} == {
        k: v for k, v in api.items() if k not in drop}


def test_a_tiny_shop_leaves_its_empty_tables_out(tmp_path: Path) -> None:
    summary = simulate(tmp_path, users=20, items=2, interactions=0, seed=0)
    data = load("tabular", tmp_path / "mapping.toml")
    assert data.problems == [] and summary["interactions"] < 50
    written = {p.name for p in tmp_path.iterdir()}
    assert written == set(summary["files"]) and "completed.parquet" not in written


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"users": 5}, "users must be at least 20"),
    ({"days": 100}, "days must be at least 200"),
    ({"items": 10, "categories": 11}, "cannot exceed items"),
])
def test_bad_sizes_say_what_to_change(tmp_path: Path, kwargs: dict[str, int],
                                      message: str) -> None:
    with pytest.raises(ValueError, match=message):
        simulate(tmp_path, **{"users": 50, "items": 30, "interactions": 100, **kwargs})


def test_choice_sampler_draws_in_proportion_to_the_weights() -> None:
    """The two-level sampler (chunk, then column) on rows wider than a chunk, with a ragged
    last chunk and zero weights: frequencies match the weights, zeros are never drawn."""
    rng = np.random.default_rng(3)
    width = 2 * stream.CHUNK + 37
    weight = rng.exponential(size=(3, width)).astype(np.float32) ** 3
    weight[:, ::5] = 0
    weight[2, :] = 0
    weight[2, -1] = 1.0  # all of row 2's mass on the last column of the ragged chunk
    who = np.repeat(np.arange(3), 60_000)
    col = stream.sample_choice(weight, who, np.random.default_rng(4))
    assert (weight[who, col] > 0).all()
    assert (col[who == 2] == width - 1).all()
    for row in (0, 1):
        p = weight[row] / weight[row].sum()
        seen = np.bincount(col[who == row], minlength=width) / 60_000
        assert np.abs(seen - p).max() < 5 * np.sqrt(p.max() / 60_000)


def test_any_engine_gives_the_same_files(tmp_path: Path, dask_cluster: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A shop drawn in partitions on a real two-worker Dask cluster is byte for byte the one
    drawn here (each block of users has its own random stream)."""
    from shopgraph.parallel import open_engine

    monkeypatch.setattr(stream, "CELLS", 455 * 40)  # blocks of 40 users: 8 blocks,
    monkeypatch.setattr(stream, "BLOCKS_PER_TASK", 3)  # in 3 partitions
    here = simulate(tmp_path / "here", seed=1, **SMALL)
    with open_engine(dask_cluster) as engine:
        there = simulate(tmp_path / "there", seed=1, engine=engine, **SMALL)
    assert digests(tmp_path / "here", here["files"]) == digests(tmp_path / "there",
                                                                 there["files"])


def test_the_stream_does_not_depend_on_the_blas_threads() -> None:
    """A worker with one BLAS thread and a client with several draw the same stream: BLAS
    splits a threaded product differently, which moved utilities by an ulp (and could move a
    draw) before the stream's products were pinned to one thread."""
    from threadpoolctl import threadpool_limits

    from shopgraph.parallel import LocalEngine
    from shopgraph.simulator.params import SimParams
    from shopgraph.simulator.world import draw_world, seasonality

    p = SimParams()
    world = draw_world(p, 300, 20_000, 24, 365, 0)
    season = seasonality(np.arange(455), p)
    lives = stream.draw_lives(world, season, 365, 0)
    runs = []
    for threads in (1, 2):
        with threadpool_limits(limits=threads, user_api="blas"):
            runs.append(stream.draw_stream(world, lives, season, 0.5, 365, 0, 0, LocalEngine()))
    for field in ("user", "item", "ts", "kind", "logsumexp", "p_no_purchase"):
        np.testing.assert_array_equal(getattr(runs[0], field), getattr(runs[1], field), field)
