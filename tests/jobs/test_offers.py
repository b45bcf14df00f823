"""``shopgraph offers`` on a Hillstrom slice in the real graph server."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from shopgraph.cli.main import app
from shopgraph.errors import ShopgraphError
from shopgraph.graphdb.formats import load
from shopgraph.graphdb.server import EmbeddedServer
from tests.conftest import workspace_on

CAMPAIGN = "hillstrom-2008"
OFFERS = {"Mens E-Mail", "Womens E-Mail"}


def gowalla_head(shared_data: Path, tmp_path: Path) -> Path:
    """Five Gowalla users: nodes without any Hillstrom feature."""
    path = tmp_path / "g.txt"
    path.write_text("".join((shared_data / "gowalla" / "train.txt").open().readlines()[:5]))
    return path


def test_offers_from_a_randomised_campaign_under_a_budget(
        graph_server: EmbeddedServer, shared_data: Path, tmp_path: Path) -> None:
    csv = tmp_path / "h.csv"
    csv.write_text("".join((shared_data / "hillstrom" / "hillstrom.csv").open().readlines()[:4001]))
    with workspace_on(graph_server, tmp_path, "offers") as ws:
        ws.ingest(load("hillstrom", csv))
        ws.ingest(load("lightgcn", gowalla_head(shared_data, tmp_path)))  # users, no features
        out = tmp_path / "plan.csv"
        plan = ws.offers(CAMPAIGN, 600, cost=1.0, value_per_response=40.0, label="visited",
                         kind="logistic", output=out)
        assert set(plan.offers) == OFFERS and 0 < plan.selected <= 600
        assert plan.without_features == 5
        assert plan.budget_used == plan.selected <= plan.budget
        assert plan.gap < 1e-3 and plan.objective <= plan.lp_bound + 1e-9
        listed = pd.read_csv(out)
        assert set(listed["offer"]) <= OFFERS and len(listed) == plan.selected
        assert listed["user_id"].str.startswith("h").all()
        assert (listed["expected_value"] > 0).all()
        assert listed["uplift_reasons"].str.count(";").eq(2).all()
        assert set(listed["arm"]) == {"treatment", "control"}
        assert listed["expected_value"].is_monotonic_decreasing
        capped = ws.offers(CAMPAIGN, 600, cost=1.0, value_per_response=40.0, label="visited",
                           kind="logistic", caps={"Mens E-Mail": 50},
                           output=tmp_path / "capped.csv")
        assert capped.counts.get("Mens E-Mail", 0) <= 50
        again = ws.offers(CAMPAIGN, 600, cost=1.0, value_per_response=40.0, label="visited",
                          kind="logistic", output=out)
        assert again.run_id == plan.run_id
        with pytest.raises(ValueError, match="below the cheapest"):
            ws.offers(CAMPAIGN, 0.5, cost=1.0, value_per_response=40.0, label="visited",
                      kind="logistic")
        with pytest.raises(ValueError, match="no cost given"):
            ws.offers(CAMPAIGN, 100, cost={"Mens E-Mail": 1.0}, label="visited")
        with pytest.raises(ShopgraphError, match="nothing worth sending"):
            ws.offers(CAMPAIGN, 100, cost=1.0, value_per_response=1.0, label="visited",
                      kind="logistic")
        res = CliRunner().invoke(app, ["offers", "--campaign", CAMPAIGN, "--budget", "300",
                                       "--cost", "1", "--value-per-response", "40", "--label",
                                       "visited", "--kind", "logistic", "--json", "-o",
                                       str(tmp_path / "cli.csv"), "-w", str(ws.path)])
        assert res.exit_code == 0, res.output
        assert 0 < json.loads(res.stdout)["selected"] <= 300
