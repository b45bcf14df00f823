"""Every decision logged for learning (issue 12, schema version 3), on the real graph server:
decisions written back and read again with ``decision_log``, re-runs that write nothing, bad
input refused before any write, outcomes joined, and a version-2 graph taken over as 3."""

from __future__ import annotations

from typing import Any

import neo4j
import numpy as np
import pandas as pd
import pytest

from shopgraph.errors import GraphStoreError, IngestError
from shopgraph.graphdb import cypher, schema, tables
from shopgraph.graphdb.formats.common import event_id, nodes_from_ids
from shopgraph.graphdb.frames import EdgeFrame, NodeFrame, SourceData
from shopgraph.graphdb.ingest import ingest
from shopgraph.graphdb.store import GraphStore
from shopgraph.jobs.writeback import decisions_source, write_back, write_decisions

USERS = ["u0", "u1", "u2", "u3", "u:4", "u5"]
CANDIDATES = ("none", "bogo", "discount")
LOGGED = {"campaign_id": "c1", "run_id": "run-1", "policy": "eps-greedy", "policy_version": "2.1",
          "model_version": "uplift@abc123", "candidates": CANDIDATES}


def decisions() -> pd.DataFrame:
    """Two offers, a policy's own "no offer", and two users in the forced control group."""
    return pd.DataFrame({
        "user_id": USERS,
        "offer": ["bogo", "discount", "none", "none", "bogo", "none"],
        "propensity": [0.9, 1 / 3, 0.05, 0.1, 1.0, 0.1],
        "control": [False, False, False, True, False, True],
        "score": [2.5, 1.25, np.nan, 0.5, 3.0, np.nan],
        "ts": [1_000, 1_000, 1_001, 1_001, None, 1_002]})


def expected_log(**outcomes: list[Any]) -> pd.DataFrame:
    """What decision_log must give back for :func:`decisions` (sorted by user)."""
    d = decisions().sort_values("user_id").reset_index(drop=True)
    n = len(d)
    arm = np.where(d["offer"] != "none", "treatment", np.where(d["control"], "control", "none"))
    out = pd.DataFrame({
        "user_id": d["user_id"].astype(str), "campaign_id": pd.Series(["c1"] * n, dtype=str),
        "offer": d["offer"].astype(object), "propensity": d["propensity"].astype(float),
        "control": d["control"].astype(bool), "arm": arm.astype(object),
        "policy": ["eps-greedy"] * n, "policy_version": ["2.1"] * n,
        "model_version": ["uplift@abc123"] * n, "candidates": ["none|bogo|discount"] * n,
        "run_id": ["run-1"] * n, "round_id": [None] * n,
        "ts": pd.array(d["ts"], dtype="Int64"), "score": d["score"].astype(float),
        "visited": np.array(outcomes.get("visited", [0] * n), dtype=np.int8),
        "converted": np.array(outcomes.get("converted", [0] * n), dtype=np.int8),
        "spend": np.array(outcomes.get("spend", [0.0] * n), dtype=float),
        "redeemed": np.array(outcomes.get("redeemed", [0] * n), dtype=np.int8)})
    # stored properties come back as Python objects (None when missing), the ids as str
    return out.astype({c: object for c in ("offer", "arm", *schema.DECISION_PROPERTIES,
                                           "run_id") if c != "propensity"})


def shop(store: GraphStore, users: list[str] = USERS) -> None:
    """Users, campaign c1 (including offer c1:bogo) and a second campaign c2."""
    camps = NodeFrame("Campaign", pd.DataFrame({"id": ["c1", "c2"], "_line": [0, 0]}))
    offer = NodeFrame("Offer", pd.DataFrame({"id": ["c1:bogo"], "_line": [0]}))
    includes = EdgeFrame("INCLUDES", pd.DataFrame({
        "src": ["c1"], "dst": ["c1:bogo"], "eid": ["c1:bogo"],
        "ts": pd.array([pd.NA], dtype="Int64"), "value": [np.nan], "_line": [1]}))
    ingest(store, SourceData("shop", [], nodes=[camps, offer,
                                                nodes_from_ids("User", pd.Series(users))],
                             edges=[includes]))


def set_version(store: GraphStore, version: int | None) -> None:
    """Make the graph look written by another shopgraph (None: no version recorded)."""

    def work(tx: neo4j.Transaction) -> None:
        tx.run("MATCH (m:ShopgraphMeta) DELETE m").consume()
        if version is not None:
            tx.run(cypher.META_WRITE, key=schema.META_SCHEMA_KEY, version=version).consume()

    store.write(work)


def test_decisions_are_read_back_exactly_and_a_rerun_writes_nothing(store: GraphStore) -> None:
    shop(store)
    summary = write_decisions(store, decisions(), **LOGGED)
    assert summary.relationships == {"TARGETED": 3, "HELD_OUT": 3}
    log = tables.decision_log(store)
    pd.testing.assert_frame_equal(log, expected_log(), check_exact=True)
    assert list(log.columns) == list(tables.DECISION_LOG_COLUMNS)
    # the graph gives what the source alone gives
    pd.testing.assert_frame_equal(tables.decision_log(decisions_source(decisions(), **LOGGED)),
                                  log)
    assert tables.decision_log(store, "c2").empty
    pd.testing.assert_frame_equal(tables.decision_log(store, "c1"), log)
    # direction, arm and event id as written
    rows = store.query("MATCH (c:Campaign)-[r:TARGETED]->(u:User {id: 'u:4'}) "
                       "RETURN r.eid AS eid, r.arm AS arm, r.propensity AS p")
    assert rows == [{"eid": event_id("run-1", "c1", "u:4"), "arm": "treatment", "p": 1.0}]
    before = store.summary()
    again = write_decisions(store, decisions(), **LOGGED)
    assert again.relationships_written == 0 and store.summary() == before
    pd.testing.assert_frame_equal(tables.decision_log(store), log)


def test_decisions_stay_out_of_the_experiment_log_unless_runs_are_asked_for(
        store: GraphStore) -> None:
    shop(store)
    write_decisions(store, decisions(), **LOGGED)
    assert tables.campaign_log(store).empty
    held = tables.campaign_log(store, "c1", include_runs=True)
    assert sorted(held["user_id"]) == ["u2", "u3", "u5"]
    assert dict(zip(held["user_id"], held["arm"])) == {"u2": "none", "u3": "control",
                                                       "u5": "control"}


def test_outcomes_are_joined_per_user_and_campaign(store: GraphStore) -> None:
    shop(store)
    write_decisions(store, decisions(), **LOGGED)

    def rel(name: str, src: list[str], dst: list[str], value: list[float]) -> EdgeFrame:
        return EdgeFrame(name, pd.DataFrame({
            "src": src, "dst": dst, "eid": [f"{name}:{k}" for k in range(len(src))],
            "ts": pd.array([2_000] * len(src), dtype="Int64"), "value": value,
            "_line": np.arange(1, len(src) + 1)}))

    ingest(store, SourceData("outcomes", [], edges=[
        rel("CONVERTED", ["u0", "u0", "u3", "u1"], ["c1", "c1", "c1", "c2"],
            [10.0, 2.5, 7.0, 99.0]),
        rel("VISITED", ["u0", "u2"], ["c1", "c1"], [np.nan, np.nan]),
        rel("COMPLETED", ["u:4"], ["c1:bogo"], [np.nan])]))
    # sorted users: u0 u1 u2 u3 u5 u:4; u1's purchase was in another campaign
    expected = expected_log(visited=[1, 0, 1, 0, 0, 0], converted=[1, 0, 0, 1, 0, 0],
                            spend=[12.5, 0.0, 0.0, 7.0, 0.0, 0.0],
                            redeemed=[0, 0, 0, 0, 0, 1])
    pd.testing.assert_frame_equal(tables.decision_log(store), expected, check_exact=True)


def _drop(column: str) -> pd.DataFrame:
    return decisions().drop(columns=[column])


def _set(column: str, row: int, value: Any) -> pd.DataFrame:
    d = decisions().astype({column: object})
    d.at[row, column] = value
    return d


@pytest.mark.parametrize("bad, column", [
    (_drop("propensity"), "propensity"),
    (_drop("control"), "control"),
    (_set("propensity", 2, 0.0), "propensity"),
    (_set("propensity", 2, 1.5), "propensity"),
    (_set("propensity", 2, np.nan), "propensity"),
    (_set("propensity", 2, "high"), "propensity"),
    (_set("offer", 1, "free-shipping"), "offer"),
    (_set("offer", 1, None), "offer"),
    (_set("user_id", 5, "u0"), "user_id"),
    (_set("user_id", 5, ""), "user_id"),
    (_set("control", 0, None), "control"),
    (_set("control", 0, "yes"), "control"),
    (_set("control", 0, True), "control"),  # a control user given an offer
    (_set("ts", 0, 1.5), "ts"),
    (_set("score", 0, "best"), "score"),
])
def test_bad_decisions_are_refused_before_anything_is_written(
        store: GraphStore, bad: pd.DataFrame, column: str) -> None:
    shop(store)
    before = store.summary()
    with pytest.raises(ValueError, match=rf"column '{column}'|lack columns \['{column}'\]") as err:
        write_decisions(store, bad, **LOGGED)
    assert "\n" not in str(err.value)
    assert store.summary() == before


def test_bad_decision_messages_name_the_column_and_the_value() -> None:
    with pytest.raises(ValueError, match=r"decisions column 'propensity', row 3: a propensity "
                                         r"must be in \(0, 1\], got '1.5' \(1 row\(s\) in all\)"):
        decisions_source(_set("propensity", 2, 1.5), **LOGGED)
    with pytest.raises(ValueError, match=r"lack columns \['offer', 'control'\]"):
        decisions_source(decisions().drop(columns=["offer", "control"]), **LOGGED)
    with pytest.raises(ValueError, match=r"column 'user_id', row 6: .*duplicate user 'u0'"):
        decisions_source(_set("user_id", 5, "u0"), **LOGGED)


@pytest.mark.parametrize("arg, value, message", [
    ("candidates", "none|bogo", "a sequence of action names"),
    ("candidates", ["bogo", "bo|go"], "without '|'"),
    ("candidates", ["bogo", "bogo", "discount"], "listed twice"),
    ("policy", "", "policy must be a non-empty string"),
    ("model_version", None, "model_version must be a non-empty string"),
])
def test_bad_arguments_are_refused(arg: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decisions_source(decisions(), **{**LOGGED, arg: value})


def test_no_offer_is_always_a_candidate_and_a_round_is_logged_when_given() -> None:
    source = decisions_source(decisions(), **{**LOGGED, "candidates": ["bogo", "discount"]},
                              round_id="round-7")
    log = tables.decision_log(source)
    assert set(log["candidates"]) == {"none|bogo|discount"}
    assert set(log["round_id"]) == {"round-7"}
    assert log["candidates"].iloc[0].split(schema.CANDIDATE_SEP) == ["none", "bogo", "discount"]


def test_unknown_users_are_refused_before_anything_is_written(store: GraphStore) -> None:
    shop(store, USERS[:-1])
    before = store.summary()
    with pytest.raises(IngestError, match="u5"):
        write_decisions(store, decisions(), **LOGGED)
    assert store.summary() == before


def test_an_audience_write_back_logs_no_decision(store: GraphStore) -> None:
    shop(store)
    audience = pd.DataFrame({"campaign_id": "c1", "user_id": ["u0", "u1"],
                             "arm": ["treatment", "control"], "score": [1.0, 0.5]})
    assert write_back(store, audience, "plain-run").relationships_written == 2
    assert tables.decision_log(store).empty
    write_decisions(store, decisions(), **LOGGED)
    assert len(tables.decision_log(store)) == len(USERS)


# -- schema version 2 -> 3 ----------------------------------------------------------------------

def test_a_version_2_graph_is_stamped_3_even_with_colons_in_its_ids(store: GraphStore) -> None:
    shop(store)  # "u:4" is fine from version 2 on: its event ids are escaped
    set_version(store, 2)
    write_decisions(store, decisions(), **LOGGED)
    assert store.schema_version() == schema.SCHEMA_VERSION == 3
    assert store.count_nodes("ShopgraphMeta") == 1
    pd.testing.assert_frame_equal(tables.decision_log(store), expected_log())


def test_ensure_schema_stamps_a_version_2_graph_and_still_checks_version_1(
        store: GraphStore) -> None:
    shop(store)
    set_version(store, 2)
    store.ensure_schema()
    assert store.schema_version() == 3
    set_version(store, 1)  # a version-1 graph with an id holding ':' stays refused
    with pytest.raises(GraphStoreError, match=r"ambiguous event ids .* older than schema "
                                              r"version 2; re-ingest"):
        store.ensure_schema()
    assert store.schema_version() == 1
    set_version(store, 4)
    with pytest.raises(GraphStoreError, match="schema version 4, newer than this shopgraph"):
        store.ensure_schema()
