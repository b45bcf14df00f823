"""Rounds of the shop simulator (issue 12): the shop answers a plan from its true model, writes
files the real ingest reads, and moves on, once per round."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shopgraph.graphdb.formats import load
from shopgraph.graphdb.formats.common import event_ids as ingest_event_ids
from shopgraph.graphdb.ingest import ingest
from shopgraph.graphdb.store import GraphStore
from shopgraph.graphdb.tables import campaign_log
from shopgraph.simulator import OFFERS, TYPES, load_truth, simulate
from shopgraph.simulator.files import event_ids
from shopgraph.simulator.rounds import (
    ROUND_ARMS,
    answer_round,
    open_round,
    oracle_policy,
    policy_value,
    round_truth,
    true_values,
)

SHOP = {"users": 2000, "items": 300, "interactions": 40_000, "seed": 11}
TINY = {"users": 100, "items": 60, "interactions": 1_500, "seed": 2}  # ingest is slow
NOBODY = pd.DataFrame({"user_id": pd.Series([], dtype=str), "offer": pd.Series([], dtype=str)})


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shop")
    simulate(out, **SHOP)
    return out


@pytest.fixture()
def shop(source: Path, tmp_path: Path) -> Path:
    """A fresh copy of the module's shop, before any round."""
    return Path(shutil.copytree(source, tmp_path / "shop"))


def copy(source: Path, to: Path) -> Path:
    return Path(shutil.copytree(source, to))


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
            if p.is_file()}


def types_of(shop: Path, users: np.ndarray) -> np.ndarray:
    t = load_truth(shop)
    return np.asarray(TYPES)[t["user_type"][pd.Index(t["user_ids"]).get_indexer(users)]]


def random_plan(ctx: Any, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"user_id": ctx.eligible, "offer": rng.choice(ROUND_ARMS,
                                                                      len(ctx.eligible))})


def test_event_ids_follow_the_ingest_rule(shop: Path) -> None:
    parts = [np.array(["a:b", "a", "50%", "plain"], dtype=object), "c:d", np.array(
        ["x", "b:c", "%3A", "u1"], dtype=object)]
    ours = event_ids(*parts)
    theirs = ingest_event_ids(*(pd.Series(p) if isinstance(p, np.ndarray) else p for p in parts))
    assert ours.tolist() == theirs.tolist()
    received = pd.read_parquet(shop / "received.parquet")
    assert (received["event_id"] == "campaign-1:" + received["user_id"] + ":received").all()


def test_the_context_is_what_a_planner_may_know(shop: Path) -> None:
    ctx = open_round(shop, "r1", days=7)
    t = load_truth(shop)
    users = pd.read_parquet(shop / "users.parquet")
    assert ctx.number == 1 and ctx.campaign_id == "round-r1"
    assert ctx.start_ts == int(t["cutoff_ts"]) and ctx.end_ts == ctx.start_ts + 7 * 86_400
    assert ctx.start_day == ctx.start_ts // 86_400 and ctx.send_ts == ctx.start_ts + 9 * 3600
    active = t["user_ids"][t["alive_at_cutoff"] & users["consent"].to_numpy()]
    assert sorted(ctx.eligible.tolist()) == sorted(active.tolist())
    assert 0 < len(ctx.items) <= 60 and set(ctx.items) <= set(t["item_ids"])
    assert ctx.offer_ids == {o: f"round-r1:{o}" for o in OFFERS}
    assert ctx.observed == (shop / "mapping.toml",)
    assert not (shop / "rounds").exists()  # opening a round writes nothing


def test_a_round_ingests_into_the_graph(store: GraphStore, tmp_path: Path) -> None:
    simulate(tmp_path, **TINY)
    ctx = open_round(tmp_path, "r1")
    plan = random_plan(ctx)
    out = answer_round(tmp_path, plan, round_id="r1")
    ingest(store, load("tabular", tmp_path / "mapping.toml"))
    data = load("tabular", out.mapping)
    assert data.problems == []
    summary = ingest(store, data)
    assert summary.already_present == 0 and summary.conflicts == 0
    for rel, file in (("VIEWED", "views.parquet"), ("PURCHASED", "purchases.parquet"),
                      ("RECEIVED", "received.parquet"), ("HELD_OUT", "held_out.parquet")):
        assert summary.relationships.get(rel, 0) == out.events[file], rel
    log = campaign_log(store, "round-r1")
    expected = plan["offer"].replace({"none": "control"}).value_counts().to_dict()
    assert log["arm"].value_counts().to_dict() == expected
    assert int(log["converted"].sum()) == sum(out.converted.values())
    assert log["value"].sum() == pytest.approx(sum(out.spend.values()), abs=0.05)
    second = answer_round(tmp_path, NOBODY, round_id="r2")
    again = ingest(store, load("tabular", second.mapping))
    assert again.already_present == 0 and again.relationships["VIEWED"] > 0


def test_offers_move_persuadables_as_the_truth_says(shop: Path, tmp_path: Path) -> None:
    other = copy(shop, tmp_path / "other")
    ctx = open_round(shop, "r1")
    deal = ctx.eligible[types_of(shop, ctx.eligible) == "deal_seeker"]
    sent = answer_round(shop, pd.DataFrame({"user_id": deal, "offer": "discount"}),
                        round_id="r1")
    held = answer_round(other, pd.DataFrame({"user_id": deal, "offer": "none"}), round_id="r1")
    t = round_truth(shop, "r1")
    p = t["p_convert"][pd.Index(t["user_ids"]).get_indexer(deal)]
    up = p[:, ROUND_ARMS.index("discount")] - p[:, 0]
    assert (up > 0).all() and up.mean() > 0.05
    gained = sent.converted["discount"] - held.converted["none"]
    # one uniform per user and round: the same users convert without the offer, and more with it
    conv = {k: set(pd.read_parquet(s / "rounds/r1/converted.parquet")["user_id"])
            for k, s in (("sent", shop), ("held", other))}
    assert conv["held"] <= conv["sent"] and len(conv["sent"]) - len(conv["held"]) == gained
    assert abs(gained - up.sum()) < 4 * np.sqrt((up * (1 - up)).sum())


def test_outcomes_are_draws_from_the_true_probabilities(shop: Path) -> None:
    ctx = open_round(shop, "r1")
    plan = random_plan(ctx, seed=3)
    out = answer_round(shop, plan, round_id="r1")
    t = round_truth(shop, "r1")
    rows = pd.Index(t["user_ids"]).get_indexer(plan["user_id"])
    arm = np.array([ROUND_ARMS.index(o) for o in plan["offer"]])
    for kind, prob in (("converted", "p_convert"), ("visited", "p_visit")):
        p = t[prob][rows, arm]
        for j, name in enumerate(ROUND_ARMS):
            q = p[arm == j]
            real = getattr(out, kind)[name]
            assert abs(real - q.sum()) < 3.5 * np.sqrt((q * (1 - q)).sum()) + 1, (kind, name)
    assert out.sent == plan["offer"].value_counts().reindex(ROUND_ARMS, fill_value=0).to_dict()


def test_same_request_same_files_and_a_round_is_answered_once(shop: Path,
                                                               tmp_path: Path) -> None:
    twin, other = copy(shop, tmp_path / "twin"), copy(shop, tmp_path / "other")
    plan = random_plan(open_round(shop, "r1"))
    first = answer_round(shop, plan, round_id="r1")
    assert not first.replayed and first.number == 1
    answer_round(twin, plan.sample(frac=1.0, random_state=1), round_id="r1")  # order is no part
    assert digests(shop / "rounds/r1") == digests(twin / "rounds/r1")
    assert digests(shop / "rounds") == digests(twin / "rounds")
    answer_round(other, plan, round_id="r1", seed=99)
    assert (digests(other / "rounds/r1")["views.parquet"]
            != digests(shop / "rounds/r1")["views.parquet"])
    before = digests(shop / "rounds")
    again = answer_round(shop, plan, round_id="r1")
    assert again.replayed and again.request == first.request
    assert {k: v for k, v in vars(again).items() if k != "replayed"} == {
        k: v for k, v in vars(first).items() if k != "replayed"}
    assert digests(shop / "rounds") == before  # the state did not move again
    with pytest.raises(ValueError, match="answered already with another plan"):
        answer_round(shop, plan.iloc[1:], round_id="r1")
    with pytest.raises(ValueError, match="answered already"):
        open_round(shop, "r1")


def test_a_crash_before_the_state_moved_is_repaired(shop: Path) -> None:
    plan = random_plan(open_round(shop, "r1"))
    answer_round(shop, plan, round_id="r1")
    (shop / "rounds/state.npz").unlink()  # as if the process died after renaming the folder
    assert open_round(shop, "r2").number == 2
    assert (shop / "rounds/state.npz").read_bytes() == (shop / "rounds/r1/state.npz").read_bytes()
    assert answer_round(shop, plan, round_id="r1").replayed


def test_the_state_carries_over_to_the_next_process(shop: Path) -> None:
    first = answer_round(shop, random_plan(open_round(shop, "r1"), seed=5), round_id="r1")
    script = ("import sys, pandas as pd; from shopgraph.simulator.rounds import open_round, "
              "answer_round; c = open_round(sys.argv[1], 'r2'); "
              "answer_round(sys.argv[1], pd.DataFrame({'user_id': c.eligible[:50], "
              "'offer': 'bogo'}), round_id='r2')")
    subprocess.run([sys.executable, "-c", script, str(shop)], check=True)
    second = json.loads((shop / "rounds/r2/round.json").read_text())
    assert second["number"] == 2 and second["start_ts"] == first.end_ts
    ctx = open_round(shop, "r3")
    assert ctx.start_ts == second["end_ts"] and ctx.number == 3
    assert ctx.observed == (shop / "mapping.toml", first.mapping, shop / "rounds/r2/mapping.toml")
    views = [pd.read_parquet(f / "views.parquet") for f in (shop, first.folder, shop / "rounds/r2")]
    assert pd.concat([v["event_id"] for v in views]).is_unique
    assert views[1]["ts"].between(first.start_ts, first.end_ts - 1).all()
    assert views[2]["ts"].min() >= first.end_ts
    eligible = [round_truth(shop, r)["eligible"] for r in ("r1", "r2")]
    assert not (eligible[1] & ~eligible[0]).any()  # churned users never come back


def test_without_offers_users_churn_when_the_truth_says(shop: Path) -> None:
    answer_round(shop, NOBODY, round_id="month", days=28)
    t = load_truth(shop)
    day = int((t["cutoff_ts"] - t["origin_ts"]) // 86_400)
    with np.load(shop / "rounds/state.npz") as z:
        death = z["death_day"]
    alive = t["alive_at_cutoff"]
    soon = alive & (t["churn_day"] <= day + 28)  # churn_day D + 28: at the end of the last day
    assert soon.any() and (death[soon] == t["churn_day"][soon]).all()
    assert np.isinf(death[alive & ~soon]).all()


def test_annoyed_users_engage_less_after_an_offer(shop: Path, tmp_path: Path) -> None:
    calm = copy(shop, tmp_path / "calm")
    ctx = open_round(shop, "r1", days=14)
    annoyed = ctx.eligible[types_of(shop, ctx.eligible) == "annoyed"]
    answer_round(shop, pd.DataFrame({"user_id": annoyed, "offer": "informational"}),
                 round_id="r1", days=14)
    answer_round(calm, pd.DataFrame({"user_id": annoyed, "offer": "none"}), round_id="r1",
                 days=14)
    for s in (shop, calm):
        answer_round(s, NOBODY, round_id="r2", days=28)
    t = load_truth(shop)
    rows = pd.Index(t["user_ids"]).get_indexer(annoyed)
    drop = 0.5 * -t["effect_logit"][rows, OFFERS.index("informational")]  # SimParams.annoyance
    e = {s: round_truth(s, "r2")["engagement"][rows] for s in (shop, calm)}
    assert np.allclose(e[shop], e[calm] * np.exp(-drop))
    views = {s: pd.read_parquet(s / "rounds/r2/views.parquet") for s in (shop, calm)}
    seen = {s: int(v["user_id"].isin(annoyed).sum()) for s, v in views.items()}
    assert seen[shop] < 0.8 * seen[calm]
    others = {s: int((~v["user_id"].isin(annoyed)).sum()) for s, v in views.items()}
    assert abs(others[shop] / others[calm] - 1) < 0.1
    churned = {s: int(np.isfinite(np.load(s / "rounds/state.npz")["death_day"][rows]).sum())
               for s in (shop, calm)}
    assert churned[shop] >= churned[calm]


def test_the_oracle_beats_every_policy(shop: Path) -> None:
    ctx = open_round(shop, "r1")
    v = true_values(shop, ctx)
    assert v.shape == (len(ctx.eligible), len(ROUND_ARMS)) and (v[:, 0] == 0).all()
    costs = ctx.costs
    best = policy_value(v, oracle_policy(v, costs), costs)
    net = v - np.array([0.0, *(costs[o] for o in OFFERS)])
    assert best == pytest.approx(np.maximum(net.max(axis=1), 0).sum())
    rng = np.random.default_rng(0)
    for _ in range(20):
        pi = rng.dirichlet(np.ones(len(ROUND_ARMS)), len(v))
        assert policy_value(v, pi, costs) <= best
    for j in range(len(ROUND_ARMS)):
        assert policy_value(v, np.eye(len(ROUND_ARMS))[np.full(len(v), j)], costs) <= best
    assert policy_value(v, np.eye(len(ROUND_ARMS))[np.zeros(len(v), int)], costs) == 0.0
    out = answer_round(shop, pd.DataFrame({"user_id": ctx.eligible, "offer": np.asarray(
        ROUND_ARMS)[oracle_policy(v, costs).argmax(axis=1)]}), round_id="r1")
    assert out.expected_net_value == pytest.approx(best, abs=1e-3)
    assert np.array_equal(true_values(shop, "r1"), v)  # the same truth, before and after
    with pytest.raises(ValueError, match="every row summing to 1"):
        policy_value(v, np.zeros_like(v), costs)


@pytest.mark.parametrize(("change", "message"), [
    (lambda p: p.assign(user_id=["nobody", *p["user_id"][1:]]), "unknown user id 'nobody'"),
    (lambda p: p.assign(offer="coupon"), "unknown offer 'coupon'"),
    (lambda p: pd.concat([p, p.iloc[:1]]), "appears twice"),
    (lambda p: p.drop(columns="offer"), "missing \\['offer'\\]"),
    (lambda p: p.assign(ts=0), "outside the round"),
])
def test_a_bad_plan_says_what_is_wrong(shop: Path, change: Any, message: str) -> None:
    plan = random_plan(open_round(shop, "r1")).iloc[:20]
    with pytest.raises(ValueError, match=message):
        answer_round(shop, change(plan), round_id="r1")
    assert not (shop / "rounds/r1").exists()


def test_users_who_may_not_be_contacted_are_refused(shop: Path) -> None:
    users = pd.read_parquet(shop / "users.parquet")
    t = load_truth(shop)
    gone = users["user_id"][~t["alive_at_cutoff"]].iloc[0]
    with pytest.raises(ValueError, match="may not be contacted"):
        answer_round(shop, pd.DataFrame({"user_id": [gone], "offer": ["bogo"]}), round_id="r1")
    with pytest.raises(ValueError, match="round_id must be"):
        answer_round(shop, NOBODY, round_id="a:b")
