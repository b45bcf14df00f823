"""The tables the strategy layer learns from, read from the graph or straight from a loader.

Both sources give the same pandas frames, so benchmarks can read a dataset's files directly and
the product reads the graph, through one code path:

* :func:`purchases` — one row per purchase: ``user_id``, ``ts`` (int64 seconds), ``value``;
* :func:`campaign_log` — one row per user in a campaign: ``user_id``, ``campaign_id``, ``arm``,
  ``treated`` (received it, or was exposed), ``visited``, ``converted``, ``value`` (spend),
  ``redeemed`` (completed one of its offers);
* :func:`user_features` — the ``User`` nodes' properties, indexed by ``user_id``;
* :func:`campaign_features` — one row per campaign: ``type``, ``channel``, ``start_day``,
  ``end_day``, ``duration`` (days), ``offers`` (offers it includes), ``items`` (distinct items
  its offers apply to);
* :func:`redemptions` — one row per redemption: ``user_id``, ``campaign_id``, ``day``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from shopgraph.graphdb import schema
from shopgraph.graphdb.frames import SourceData

if TYPE_CHECKING:
    from shopgraph.graphdb.store import GraphStore

EDGE_COLUMNS = ("src", "dst", "ts", "value", "arm", "run_id")
DAY = 86_400
CAMPAIGN_PROPS = ("type", "channel", "start_day", "end_day")


def edge_table(source: SourceData | GraphStore, rel: str) -> pd.DataFrame:
    """All ``rel`` relationships as ``src, dst, ts, value, arm, run_id`` (missing values
    NaN/None; ``run_id`` marks what shopgraph itself wrote back).

    Args:
        source: a :class:`~shopgraph.graphdb.frames.SourceData` or a connected ``GraphStore``.
        rel: the relationship type.
    """
    rel = schema.rel(rel)
    if isinstance(source, SourceData):
        parts = [e.data for e in source.edges if e.rel == rel]
        frame = (pd.concat(parts, ignore_index=True) if parts
                 else pd.DataFrame(columns=list(EDGE_COLUMNS)))
        for col in ("ts", "value", "arm", "run_id"):
            if col not in frame:
                frame[col] = None
    else:
        src, dst, _ = schema.RELATIONSHIPS[rel]
        text = (f"MATCH (s:{src})-[r:{rel}]->(d:{dst}) "
                "RETURN s.id AS src, d.id AS dst, r.ts AS ts, r.value AS value, r.arm AS arm, "
                "r.run_id AS run_id")
        frame = pd.DataFrame(source.query(text), columns=list(EDGE_COLUMNS))
    out = pd.DataFrame({
        "src": frame["src"].astype(str), "dst": frame["dst"].astype(str),
        "ts": pd.array(pd.to_numeric(frame["ts"], errors="coerce"), dtype="Int64"),
        "value": pd.to_numeric(frame["value"], errors="coerce").astype(float),
        "arm": frame["arm"].astype(object).where(frame["arm"].notna(), None),
        "run_id": frame["run_id"].astype(object).where(frame["run_id"].notna(), None)})
    return out.reset_index(drop=True)


def purchases(source: SourceData | GraphStore, rel_types: Sequence[str] = ("PURCHASED",)
              ) -> pd.DataFrame:
    """Purchases as ``user_id, ts, value``, sorted by user, time and value; rows without a timestamp
    are dropped (they cannot be placed before or after a cutoff)."""
    parts = [edge_table(source, rel) for rel in rel_types]
    table = pd.concat(parts, ignore_index=True)
    table = table[table["ts"].notna()]
    out = pd.DataFrame({"user_id": table["src"].to_numpy(dtype=str),
                        "ts": table["ts"].to_numpy(dtype=np.int64),
                        "value": table["value"].to_numpy(dtype=float)})
    return out.sort_values(["user_id", "ts", "value"], kind="stable").reset_index(drop=True)


def campaign_ids(source: SourceData | GraphStore) -> list[str]:
    """The ids of every campaign."""
    if isinstance(source, SourceData):
        ids = [str(i) for n in source.nodes if n.label == "Campaign" for i in n.data["id"]]
    else:
        ids = [str(r["id"]) for r in source.query("MATCH (c:Campaign) RETURN c.id AS id")]
    return sorted(set(ids))


def campaign_log(source: SourceData | GraphStore, campaign_id: str | None = None,
                 include_runs: bool = False) -> pd.DataFrame:
    """Who took part in each campaign (or one), under which arm, and what they did.

    Treated users come from ``RECEIVED`` (an offer the campaign ``INCLUDES``) or ``EXPOSED``;
    control users from ``HELD_OUT``. Outcomes: ``VISITED`` / ``CONVERTED`` (``value`` = spend)
    towards the campaign, ``COMPLETED`` of one of its offers (``redeemed``). Relationships that
    shopgraph wrote back itself (they carry a ``run_id``: planned sends and control groups) are
    left out unless ``include_runs``: a plan is not an experiment's record, and mixing its
    control group into a past experiment's would bias every uplift learnt from it.
    """
    includes = edge_table(source, "INCLUDES").rename(columns={"src": "campaign_id",
                                                               "dst": "offer"})
    offer_campaign = dict(zip(includes["offer"], includes["campaign_id"]))
    received = edge_table(source, "RECEIVED")
    received["campaign_id"] = received["dst"].map(offer_campaign)
    received["arm"] = received["arm"].where(received["arm"].notna(), received["dst"])
    exposed = edge_table(source, "EXPOSED").assign(campaign_id=lambda f: f["dst"])
    exposed["arm"] = exposed["arm"].where(exposed["arm"].notna(), "exposed")
    held = edge_table(source, "HELD_OUT").assign(campaign_id=lambda f: f["dst"])
    if not include_runs:
        received, exposed, held = (f[f["run_id"].isna()] for f in (received, exposed, held))
    held["arm"] = held["arm"].where(held["arm"].notna(), "control")
    frames = [f.assign(treated=t)[["src", "campaign_id", "arm", "treated"]]
              for f, t in ((received, True), (exposed, True), (held, False))]
    log = pd.concat(frames, ignore_index=True).dropna(subset=["campaign_id"])
    log = log.drop_duplicates(["src", "campaign_id"]).rename(columns={"src": "user_id"})
    if campaign_id is not None:
        log = log[log["campaign_id"] == str(campaign_id)]
    key = ["user_id", "campaign_id"]
    visited = edge_table(source, "VISITED").rename(columns={"src": "user_id",
                                                            "dst": "campaign_id"})
    converted = edge_table(source, "CONVERTED").rename(columns={"src": "user_id",
                                                                "dst": "campaign_id"})
    completed = edge_table(source, "COMPLETED")
    completed["campaign_id"] = completed["dst"].map(offer_campaign)
    completed = completed.rename(columns={"src": "user_id"})
    log = log.merge(visited[key].drop_duplicates().assign(visited=1), on=key, how="left")
    spend = converted.groupby(key, as_index=False)["value"].sum().assign(converted=1)
    log = log.merge(spend, on=key, how="left")
    log = log.merge(completed[key].dropna().drop_duplicates().assign(redeemed=1), on=key,
                    how="left")
    for col in ("visited", "converted", "redeemed"):
        log[col] = log[col].fillna(0).astype(np.int8)
    log["value"] = log["value"].fillna(0.0)
    return log.sort_values(key, kind="stable").reset_index(drop=True)[
        ["user_id", "campaign_id", "arm", "treated", "visited", "converted", "value",
         "redeemed"]]


def node_table(source: SourceData | GraphStore, label: str, props: Sequence[str]) -> pd.DataFrame:
    """The ``props`` of every ``label`` node (allow-listed in the schema), indexed by ``id``."""
    label = schema.label(label)
    unknown = set(props) - set(schema.NODE_PROPERTIES[label])
    if unknown:
        raise ValueError(f"{label} has no properties {sorted(unknown)}")
    if isinstance(source, SourceData):
        parts = [n.data for n in source.nodes if n.label == label]
        frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["id"])
        frame = frame.drop_duplicates("id", keep="last")
    else:
        fields = ", ".join(f"n.{p} AS {p}" for p in props)
        frame = pd.DataFrame(source.query(f"MATCH (n:{label}) RETURN n.id AS id, {fields}"),
                             columns=["id", *props])
    frame = frame.reindex(columns=["id", *props])
    frame["id"] = frame["id"].astype(str)
    return frame.set_index("id")


def user_features(source: SourceData | GraphStore, props: Sequence[str] | None = None
                  ) -> pd.DataFrame:
    """The ``User`` nodes' properties (all known ones by default), indexed by ``user_id``."""
    props = list(props or schema.NODE_PROPERTIES["User"])
    frame = node_table(source, "User", props)
    return frame.rename_axis("user_id").dropna(axis=1, how="all")


def campaign_features(source: SourceData | GraphStore) -> pd.DataFrame:
    """One row per campaign, indexed by ``campaign_id`` (see the module docstring).

    Args:
        source: a loader's :class:`~shopgraph.graphdb.frames.SourceData` or a ``GraphStore``.
    """
    out = node_table(source, "Campaign", CAMPAIGN_PROPS).rename_axis("campaign_id")
    for col in ("start_day", "end_day"):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype(float)
    for col in ("type", "channel"):
        out[col] = out[col].astype(object).where(out[col].notna(), None)
    out["duration"] = out["end_day"] - out["start_day"] + 1
    includes = edge_table(source, "INCLUDES")
    out["offers"] = includes.groupby("src")["dst"].nunique().reindex(out.index).fillna(0)
    applies = edge_table(source, "APPLIES_TO")
    items = includes[["src", "dst"]].merge(applies[["src", "dst"]], left_on="dst",
                                           right_on="src", suffixes=("", "_item"))
    out["items"] = items.groupby("src")["dst_item"].nunique().reindex(out.index).fillna(0)
    return out.sort_index()


def redemptions(source: SourceData | GraphStore) -> pd.DataFrame:
    """Every ``COMPLETED`` offer as ``user_id, campaign_id, day`` (``day`` NaN without a ts)."""
    includes = edge_table(source, "INCLUDES")
    completed = edge_table(source, "COMPLETED")
    campaign = completed["dst"].map(dict(zip(includes["dst"], includes["src"])))
    day = pd.to_numeric(completed["ts"], errors="coerce").astype(float) // DAY
    out = pd.DataFrame({"user_id": completed["src"], "campaign_id": campaign, "day": day})
    return out.dropna(subset=["campaign_id"]).reset_index(drop=True)


def campaign_items(store: GraphStore, campaign_id: str) -> list[str]:
    """The items a campaign promotes (``Campaign-INCLUDES->Offer-APPLIES_TO->Item``).

    Raises:
        UnknownIdError: the campaign is not in the graph.
    """
    from shopgraph.errors import UnknownIdError
    from shopgraph.graphdb import cypher

    rows = store.query(cypher.CAMPAIGN_ITEMS, campaign=str(campaign_id))
    if not rows:
        raise UnknownIdError(f"campaign {campaign_id!r} is not in the graph")
    return [i for i in rows[0]["items"] if i is not None]
