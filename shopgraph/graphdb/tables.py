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
* :func:`redemptions` — one row per redemption: ``user_id``, ``campaign_id``, ``day``;
* :func:`decision_log` — one row per decision a policy logged (schema version 3): who, which
  campaign, the ``offer`` taken and its ``propensity``, ``control``, the policy, model and
  candidates, and the same outcomes as :func:`campaign_log`. Whatever learns from past
  campaigns reads this log and weights each row by its logged propensity.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from shopgraph.graphdb import schema
from shopgraph.graphdb.frames import SourceData

if TYPE_CHECKING:
    from shopgraph.graphdb.store import GraphStore

EDGE_COLUMNS = ("src", "dst", "ts", "value", "arm", "run_id")
DAY = 86_400
CAMPAIGN_PROPS = ("type", "channel", "start_day", "end_day")
#: Stands for a missing ``ts`` in grouped reads (``collect`` would drop a null).
NO_TS = int(np.iinfo(np.int64).min)
#: The ``arm`` of a decision log's forced random control group (``HELD_OUT``).
CONTROL_ARM = "control"


def edge_table(source: SourceData | GraphStore, rel: str, props: Sequence[str] = ()
               ) -> pd.DataFrame:
    """All ``rel`` relationships as ``src, dst, ts, value, arm, run_id`` (missing values
    NaN/None; ``run_id`` marks what shopgraph itself wrote back), then one column per ``props``.

    Args:
        source: a :class:`~shopgraph.graphdb.frames.SourceData` or a connected ``GraphStore``.
        rel: the relationship type.
        props: further relationship properties to read (allow-listed in
            :data:`~shopgraph.graphdb.schema.REL_PROPERTIES`), as stored (None when missing).
    """
    rel = schema.rel(rel)
    unknown = [p for p in props if p not in schema.REL_PROPERTIES or p in EDGE_COLUMNS]
    if unknown:
        raise ValueError(f"relationships have no further properties {unknown}; allowed: "
                         f"{sorted(set(schema.REL_PROPERTIES) - set(EDGE_COLUMNS))}")
    columns = [*EDGE_COLUMNS, *props]
    if isinstance(source, SourceData):
        parts = [e.data for e in source.edges if e.rel == rel]
        frame = (pd.concat(parts, ignore_index=True) if parts
                 else pd.DataFrame(columns=columns))
        for col in ("ts", "value", "arm", "run_id", *props):
            if col not in frame:
                frame[col] = None
    else:
        from shopgraph.graphdb.export import EDGES_PER_QUERY

        src, dst, _ = schema.RELATIONSHIPS[rel]
        match = f"MATCH (s:{src})-[r:{rel}]->(d:{dst}) "
        fields = [("src", "s.id"), ("dst", "d.id"),
                  *((c, f"r.{c}") for c in ("ts", "value", "arm", "run_id", *props))]
        if source.count_rels(rel) <= EDGES_PER_QUERY:
            frame = _columns(source, match, fields)
        else:
            text = match + "RETURN " + ", ".join(f"{e} AS {c}" for c, e in fields)
            frame = _records(source, text, columns)
    out = pd.DataFrame({
        "src": frame["src"].astype(str), "dst": frame["dst"].astype(str),
        "ts": pd.array(pd.to_numeric(frame["ts"], errors="coerce"), dtype="Int64"),
        "value": pd.to_numeric(frame["value"], errors="coerce").astype(float),
        **{col: _objects(frame[col]) for col in ("arm", "run_id", *props)}})
    return out.reset_index(drop=True)


def _records(store: GraphStore, text: str, columns: Sequence[str], **params: Any
             ) -> pd.DataFrame:
    """A read query's records as a frame with ``columns``, taken as plain tuples: the driver's
    dicts (``GraphStore.query``) cost about three times the client's time on big tables."""
    rows = [tuple(r) for r in store.stream(text, what="reading", **params)]
    return pd.DataFrame.from_records(rows, columns=list(columns))


def _columns(store: GraphStore, match: str, fields: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """A read (``match``, then ``(column, expression)`` pairs) as one record holding a list per
    column: the driver decodes it in about two thirds of the time of a record per row (356k
    offers received: 7.2 s against 10.7 s). ``collect`` drops nulls, so a missing value travels
    as an empty list and comes back None; the server holds the whole table, so this is for at
    most ``EDGES_PER_QUERY`` rows (ArcadeDB refuses a ``collect`` of over 2,097,152)."""
    text = match + "RETURN " + ", ".join(f"collect(coalesce({e}, [])) AS {c}" for c, e in fields)
    [record] = store.stream(text, what="reading")  # not query(): its dicts copy every element
    return pd.DataFrame({c: [None if type(v) is list and not v else v for v in record[c]]
                         for c, _ in fields})


def _objects(column: pd.Series) -> pd.Series:
    """``column`` as Python objects, missing values None."""
    return column.astype(object).where(column.notna(), None)


def purchases(source: SourceData | GraphStore, rel_types: Sequence[str] = ("PURCHASED",)
              ) -> pd.DataFrame:
    """Purchases as ``user_id, ts, value``, sorted by user, time and value; rows without a timestamp
    are dropped (they cannot be placed before or after a cutoff).

    From a graph, each type is read grouped by user (one record per buyer, with the lists of
    times and values): the same rows as :func:`edge_table`'s, at a fraction of its cost."""
    if isinstance(source, SourceData):
        table = pd.concat([edge_table(source, rel) for rel in rel_types], ignore_index=True)
        table = table[table["ts"].notna()]
        user, ts, value = (table["src"].to_numpy(dtype=str), table["ts"].to_numpy(dtype=np.int64),
                           table["value"].to_numpy(dtype=float))
    else:
        user, ts, value = _edge_times(source, rel_types)
    out = pd.DataFrame({"user_id": user, "ts": ts, "value": value})
    return out.sort_values(["user_id", "ts", "value"], kind="stable").reset_index(drop=True)


def _edge_times(store: GraphStore, rel_types: Sequence[str]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``user, ts, value`` of every timestamped ``rel_types`` relationship in the graph."""
    from shopgraph.graphdb import cypher
    from shopgraph.graphdb.export import grouped_by_user

    users: list[str] = []
    counts: list[int] = []
    times: list[object] = []
    values: list[object] = []
    for rel in rel_types:
        for columns in grouped_by_user(store, cypher.EDGE_TIMES_BY_SOURCE, schema.rel(rel),
                                       what="reading", no_ts=NO_TS, no_value=float("nan")):
            users.extend(map(str, columns["s"]))
            counts.extend(map(len, columns["ts"]))
            times.extend(chain.from_iterable(columns["ts"]))
            values.extend(chain.from_iterable(columns["v"]))
    ts = pd.to_numeric(pd.Series(times, dtype=object), errors="coerce")
    keep = (ts.notna() & (ts != NO_TS)).to_numpy()
    user = np.repeat(np.asarray(users, dtype=str), counts)
    value = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(float)
    return user[keep], ts[keep].to_numpy(dtype=np.int64), value[keep]


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
    log = with_outcomes(source, log, offer_campaign)
    return log.sort_values(["user_id", "campaign_id"], kind="stable").reset_index(drop=True)[
        ["user_id", "campaign_id", "arm", "treated", "visited", "converted", "value",
         "redeemed"]]


def with_outcomes(source: SourceData | GraphStore, log: pd.DataFrame,
                  offer_campaign: dict[str, str] | None = None) -> pd.DataFrame:
    """``log`` (``user_id``, ``campaign_id``, ...) with what each user did in that campaign:
    ``visited`` (a ``VISITED``), ``converted`` (a ``CONVERTED``), ``value`` (the sum of the
    ``CONVERTED`` values: spend), ``redeemed`` (``COMPLETED`` one of the offers the campaign
    ``INCLUDES``); 0 where none.

    Args:
        source: where the outcomes are read.
        log: the rows to complete.
        offer_campaign: offer id -> campaign id (read from ``INCLUDES`` when not given).
    """
    if offer_campaign is None:
        includes = edge_table(source, "INCLUDES")
        offer_campaign = dict(zip(includes["dst"], includes["src"]))
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
    return log


#: The columns of :func:`decision_log`, in order.
DECISION_LOG_COLUMNS = ("user_id", "campaign_id", "offer", "propensity", "control", "arm",
                        "policy", "policy_version", "model_version", "candidates", "run_id",
                        "round_id", "ts", "score", "visited", "converted", "spend", "redeemed")


def decision_log(source: SourceData | GraphStore, campaign_id: str | None = None
                 ) -> pd.DataFrame:
    """Every decision a policy logged (one row each), with what the user did afterwards.

    The decisions are the ``TARGETED`` (an offer sent) and ``HELD_OUT`` (no offer) relationships
    that carry a ``policy`` (written by :func:`shopgraph.jobs.writeback.write_decisions`; the
    plain write-back of an audience logs no policy and is not read here). Anything that learns
    from past campaigns reads this log and weights each row by its logged ``propensity``
    (inverse-propensity weights ``1 / propensity``, or the ratio of the new policy's
    probability of ``offer`` to it), never the raw sends.

    Outcomes are joined per (user, campaign) as in :func:`campaign_log`, over all time: give
    each planning round its own campaign, or two decisions on one campaign for one user share
    the same outcomes.

    Args:
        source: a ``GraphStore``, or the :class:`~shopgraph.graphdb.frames.SourceData` of
            :func:`~shopgraph.jobs.writeback.decisions_source` (outcomes then from its own
            edges: none).
        campaign_id: only this campaign's decisions.

    Returns:
        The columns of :data:`DECISION_LOG_COLUMNS`: ``offer`` (the action taken,
        :data:`~shopgraph.graphdb.schema.NO_OFFER` for none), ``propensity`` (float, its
        probability under the logging policy), ``control`` (bool: the forced random control
        group), ``arm`` (``treatment``, ``control``, or ``none`` for a policy's own choice of no
        offer), ``policy``, ``policy_version``, ``model_version``, ``candidates`` (the
        candidate action names joined by :data:`~shopgraph.graphdb.schema.CANDIDATE_SEP`:
        ``.str.split("|")`` gives the list), ``run_id``, ``round_id`` (None when not logged),
        ``ts`` (``Int64``, the decision time, may be missing), ``score`` (float, may be NaN),
        then ``visited``, ``converted``, ``spend`` (sum of ``CONVERTED`` values), ``redeemed``;
        sorted by user, campaign and run.
    """
    props = schema.DECISION_PROPERTIES
    sent = edge_table(source, "TARGETED", props).rename(columns={"src": "campaign_id",
                                                                  "dst": "user_id"})
    held = edge_table(source, "HELD_OUT", props).rename(columns={"src": "user_id",
                                                                  "dst": "campaign_id"})
    log = pd.concat([sent, held], ignore_index=True)
    log = log[log["policy"].notna()]
    if campaign_id is not None:
        log = log[log["campaign_id"] == str(campaign_id)]
    log = log.rename(columns={"value": "score"})
    log["propensity"] = pd.to_numeric(log["propensity"], errors="coerce").astype(float)
    log["control"] = (log["arm"] == CONTROL_ARM).to_numpy(dtype=bool)
    log = with_outcomes(source, log).rename(columns={"value": "spend"})
    log = log.sort_values(["user_id", "campaign_id", "run_id"], kind="stable")
    return log.reset_index(drop=True)[list(DECISION_LOG_COLUMNS)]


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
        maps = _property_maps(source, label)
        frame = pd.DataFrame.from_records(maps, columns=["id", *props])
        for col in frame.columns:
            if pd.api.types.is_object_dtype(frame[col]) or frame[col].isna().all():
                frame[col] = _objects(frame[col])
    frame = frame.reindex(columns=["id", *props])
    frame["id"] = frame["id"].astype(str)
    return frame.set_index("id")


def _property_maps(store: GraphStore, label: str) -> list[dict[str, Any]]:
    """One map of the stored properties per ``label`` node: the driver decodes it in two
    thirds of the time one field per allowed property takes, most of them missing (1M users:
    30 s against 44 s), and gathered into one record (up to ArcadeDB's limit on a ``collect``)
    in a fraction of the client's time again (1M users: 9.2 s, 2.4 s of it the client's,
    against 16.1 s, 15.8 s)."""
    from shopgraph.graphdb import cypher
    from shopgraph.graphdb.export import node_values

    return node_values(store, label, cypher.NODE_MAPS, cypher.NODE_MAPS_COLLECTED, "reading")


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
