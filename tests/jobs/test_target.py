"""``shopgraph target`` end to end on the small taste shop in the real graph server: retrieval
candidates, consent, a reproducible control group, exports, write-back, reasons."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from shopgraph.cli.main import app
from shopgraph.graphdb.frames import NodeFrame, SourceData
from shopgraph.graphdb.server import EmbeddedServer
from shopgraph.strategies.audience import assign_control
from shopgraph.workspace import Workspace
from tests.conftest import workspace_on
from tests.retrieval.test_queries import N_USERS, taste_shop

OPTED_OUT = ("u1", "u3", "u5")


def people(folder: Path) -> SourceData:
    """E-mail and consent for every user; three gamers opted out."""
    ids = [f"u{j}" for j in range(N_USERS)]
    f = folder / "people.csv"
    f.write_text("\n".join(ids))
    frame = pd.DataFrame({"id": ids, "email": [f" U.{j}@GMAIL.com " for j in range(N_USERS)],
                          "consent": [u not in OPTED_OUT for u in ids], "_line": 0})
    return SourceData("people", [f], nodes=[NodeFrame("User", frame)])


@pytest.fixture(scope="module")
def shop(graph_server: EmbeddedServer, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Workspace]:
    folder = tmp_path_factory.mktemp("targeting")
    with workspace_on(graph_server, folder, "targeting") as ws:
        ws.ingest(taste_shop(folder))
        ws.ingest(people(folder))
        ws.train("spectral", progress=False, k=16)
        ws.build_index("spectral")
        yield ws


def test_audience_follows_taste_consent_and_a_reproducible_control_group(
        shop: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "c1.csv"
    result = shop.target("c1", 20, control_share=0.25, seed=1, output=out)
    frame = result.frame
    assert len(frame) == 20 and result.send + result.control == 20
    assert all(int(u[1:]) % 2 == 1 for u in frame["user_id"])  # gamers, for a games campaign
    assert not set(frame["user_id"]) & set(OPTED_OUT) and result.no_consent == 3
    expected = assign_control(frame["user_id"], "c1", 0.25, seed=1)
    assert (frame["arm"] == "control").tolist() == expected.tolist()
    assert set(frame["top_item"]) <= {"i25", "i26"}
    assert frame["because_of"].notna().all()
    assert any("no churn head" in note for note in result.used)  # no timestamps here
    listed = pd.read_csv(out)
    assert listed["run_id"].nunique() == 1 and listed["run_id"][0] == result.run_id
    assert listed["user_id"].tolist() == frame["user_id"].tolist()
    first = out.read_bytes()
    again = shop.target("c1", 20, control_share=0.25, seed=1, output=out)
    assert again.run_id == result.run_id and out.read_bytes() == first
    other = shop.target("c1", 20, control_share=0.25, seed=2, output=tmp_path / "s2.csv")
    assert other.run_id != result.run_id


def test_pseudonyms_and_email_hashes(shop: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "p.parquet"
    shop.target("c1", 10, output=out, pseudonymise=True, email_hashes=True)
    listed = pd.read_parquet(out)
    assert "user_id" not in listed and listed["pseudo_id"].str.fullmatch("[0-9a-f]{64}").all()
    key = shop.path / "pseudonym.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    import hashlib

    expected = {hashlib.sha256(f"u{j}@gmail.com".encode()).hexdigest() for j in range(N_USERS)}
    assert set(listed["email_sha256"]) <= expected


def test_write_back_records_the_run_once_and_the_campaign_log_reads_it(
        shop: Workspace, tmp_path: Path) -> None:
    result = shop.target("c1", 12, control_share=0.3, seed=3, output=tmp_path / "w.csv",
                         write_back=True)
    assert result.written_back == 12
    store = shop.store()
    rows = store.query("MATCH (c:Campaign {id: 'c1'})-[r:TARGETED]->(u:User) "
                       "WHERE r.run_id = $run RETURN count(r) AS n", run=result.run_id)
    assert rows[0]["n"] == result.send
    again = shop.target("c1", 12, control_share=0.3, seed=3, output=tmp_path / "w.csv",
                        write_back=True)
    assert again.written_back == 0
    log = shop.campaign_log("c1", include_runs=True)
    assert (~log["treated"]).sum() == result.control
    assert shop.campaign_log("c1").empty  # a plan is not an experiment's record


def test_cli_target_json_and_errors(shop: Workspace, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["target", "--campaign", "c1", "-n", "8", "--json", "-o",
                              str(tmp_path / "cli.csv"), "-w", str(shop.path)])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["audience"] == 8 and Path(summary["path"]).is_file()
    assert summary["run_id"] == shop.target("c1", 8, output=tmp_path / "x.csv").run_id
    res = runner.invoke(app, ["target", "-w", str(shop.path)])
    assert res.exit_code != 0 and "give --campaign" in res.output
    with pytest.raises(ValueError, match="promotes no items"):
        shop.target("c2", 5)


DAY = 86_400
START = 1_700_000_000


def history(folder: Path) -> SourceData:
    """Timestamped purchases (one in three users stops buying after day 150; the others buy
    monthly to day 360), a channel per user (odd users web, even phone), and a past campaign
    c0 sent to everyone whose coupon only the odd users (gamers) redeemed."""
    from shopgraph.graphdb.frames import EdgeFrame

    users = [f"u{j}" for j in range(N_USERS)]
    rows = [(u, f"i{(j % 2) * 20 + d // 30 % 20}", START + d * DAY)
            for j, u in enumerate(users) for d in range(0, 361, 30)
            if j % 3 or d <= 150]
    buys = pd.DataFrame({"src": [r[0] for r in rows], "dst": [r[1] for r in rows],
                         "eid": [f"t:{r[0]}:{r[2]}" for r in rows],
                         "ts": pd.array([r[2] for r in rows], dtype="Int64"),
                         "value": 10.0, "_line": 0})

    def edges(pairs: list[tuple[str, str]], ts: int | None = None) -> pd.DataFrame:
        return pd.DataFrame({"src": [a for a, _ in pairs], "dst": [b for _, b in pairs],
                             "eid": [f"{a}>{b}" for a, b in pairs],
                             "ts": pd.array([ts] * len(pairs), dtype="Int64"),
                             "value": float("nan"), "_line": 0})

    f = folder / "history.csv"
    f.write_text("\n".join(users))
    people_frame = pd.DataFrame({"id": users, "channel": ["web" if j % 2 else "phone"
                                                         for j in range(N_USERS)], "_line": 0})
    camp = pd.DataFrame({"id": ["c0", "c1"], "type": ["TypeA", "TypeA"],
                         "start_day": [100, 400], "end_day": [130, 430], "_line": 0})
    return SourceData("history", [f], nodes=[
        NodeFrame("User", people_frame), NodeFrame("Campaign", camp),
        NodeFrame("Offer", pd.DataFrame({"id": ["c0:o"], "_line": [0]}))], edges=[
        EdgeFrame("PURCHASED", buys),
        EdgeFrame("INCLUDES", edges([("c0", "c0:o")])),
        EdgeFrame("APPLIES_TO", edges([("c0:o", "i21")])),
        EdgeFrame("EXPOSED", edges([(u, "c0") for u in users])),
        EdgeFrame("COMPLETED", edges([(u, "c0:o") for j, u in enumerate(users) if j % 2],
                                     START + 110 * DAY))])


def test_heads_rerank_a_winback_campaign_and_explain_it(
        graph_server: EmbeddedServer, tmp_path: Path) -> None:
    with workspace_on(graph_server, tmp_path, "heads") as ws:
        ws.ingest(taste_shop(tmp_path))
        ws.ingest(history(tmp_path))
        ws.train("spectral", progress=False, k=16)
        ws.build_index("spectral")
        plain = ws.target("c1", 20, control_share=0.0, output=tmp_path / "a.csv")
        winback = ws.target("c1", 20, control_share=0.0, winback=True,
                            output=tmp_path / "b.csv")
        notes = " | ".join(winback.used)
        assert "response head (lightgbm) on 60 past exposures of 1 campaigns" in notes
        assert "churn head" in notes and "no churn head" not in notes
        frame = winback.frame
        stopped = {f"u{j}" for j in range(N_USERS) if j % 3 == 0}
        assert frame.set_index("user_id")["churn_risk"].groupby(
            lambda u: u in stopped).mean().pipe(lambda m: m[True] > m[False] + 0.2)
        assert (len(set(winback.frame["user_id"]) & stopped)
                > len(set(plain.frame["user_id"]) & stopped))
        listed = pd.read_csv(tmp_path / "b.csv")
        assert {"risk_band", "churn_reasons", "response_reasons", "top_item",
                "because_of"} <= set(listed.columns)
        assert listed["churn_reasons"].str.contains("recency_days|frequency|monetary").any()
        assert plain.frame["response_proba"].notna().all()
