"""Write-back of a planned list to the real graph server: the send, the control group, and
re-runs that write nothing."""

from __future__ import annotations

import pandas as pd

from shopgraph.graphdb import tables
from shopgraph.graphdb.formats.common import nodes_from_ids
from shopgraph.graphdb.frames import NodeFrame, SourceData
from shopgraph.graphdb.ingest import ingest
from shopgraph.graphdb.store import GraphStore
from shopgraph.jobs.writeback import write_back
from tests.strategies.test_exports import make_audience


def test_write_back_targets_the_send_holds_out_the_control_and_reruns_write_nothing(
        store: GraphStore) -> None:
    aud, run = make_audience(seed=5)
    users = nodes_from_ids("User", pd.Series([str(i) for i in range(200)]))
    camp = NodeFrame("Campaign", pd.DataFrame({"id": ["c7"], "_line": [0]}))
    ingest(store, SourceData("nodes", [], nodes=[camp, users]))
    summary = write_back(store, aud, run)
    send, control = aud.attrs["send"], aud.attrs["control"]
    assert summary.relationships == {"TARGETED": send, "HELD_OUT": control}
    assert store.count_rels("TARGETED") == send and store.count_rels("HELD_OUT") == control
    again = write_back(store, aud, run)
    assert again.relationships_written == 0 and store.count_rels("TARGETED") == send
    rows = store.query("MATCH (c:Campaign)-[r:TARGETED]->(u:User) RETURN DISTINCT r.run_id AS run,"
                       " r.arm AS arm")
    assert rows == [{"run": run, "arm": "treatment"}]
    log = tables.campaign_log(store, "c7", include_runs=True)
    assert sorted(log["user_id"]) == sorted(aud.loc[aud["arm"] == "control", "user_id"])
    assert set(log["arm"]) == {"control"} and not log["treated"].any()
