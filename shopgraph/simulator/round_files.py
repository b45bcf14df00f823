"""A round's files: its tables in the shop's layout, so ``shopgraph ingest tabular
<shop>/rounds/<id>/mapping.toml`` reads them like the shop's, and beside them (not in the
mapping) the plan, the round's truth, the state after it and its record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shopgraph.artifacts import atomic_path
from shopgraph.simulator import files
from shopgraph.simulator.campaigns import Campaign, Outcome
from shopgraph.simulator.generate import PREFIX, RELS, campaign_edge, campaign_tables
from shopgraph.simulator.params import OFFERS, ROUND_ARMS
from shopgraph.simulator.state import STATE, State, save_state
from shopgraph.simulator.stream import BUY, DAY
from shopgraph.simulator.world import World

RECORD, SENDS, ROUND_TRUTH = "round.json", "sends.parquet", "truth.npz"


def round_tables(w: World, uid: np.ndarray, iid: np.ndarray, origin: int, camp: Campaign,
                 parts: list[tuple[np.ndarray, ...]], out: Outcome, part: np.ndarray
                 ) -> dict[str, pd.DataFrame]:
    """The tables of the round ``camp`` in the shop's layout (``files.NODES`` / ``EDGES``).

    Args:
        w: the world.
        uid: the users' ids; ``iid``: the items'.
        origin: epoch seconds of day 0.
        camp: the round's campaign.
        parts: the ordinary sessions' (user, item, ts, kind) parts.
        out: the campaign's draws for every active user.
        part: which users take part (are in the plan), per user of the shop.
    """
    cid = camp.id
    price = w.price
    ordinary = [(u, i, t, k, np.where(k == BUY, price[i], np.nan), np.where(k == BUY, 1.0, np.nan))
                for u, i, t, k in parts]
    user, item, ts, kind, value, qty = (np.concatenate(c) for c in zip(*ordinary, out.events))
    order = np.lexsort((kind, item, user, ts))
    user, item, ts, kind, value, qty = (a[order] for a in (user, item, ts, kind, value, qty))
    tables = campaign_tables(w, ((camp, OFFERS),), iid, origin // DAY)
    for k, (rel, prefix) in enumerate(zip(RELS, PREFIX)):
        rows = kind == k
        frame = pd.DataFrame({
            "event_id": files.event_ids(cid, files.numbered(prefix, int(rows.sum()))),
            "user_id": uid[user[rows]], "item_id": iid[item[rows]], "ts": ts[rows]})
        if rel == "PURCHASED":
            frame["value"] = value[rows]
            frame["quantity"] = qty[rows].astype(np.int64)
        tables[{"VIEWED": "views.parquet", "CARTED": "carts.parquet",
                "PURCHASED": "purchases.parquet"}[rel]] = frame
    inside = part[out.users]
    names = np.asarray(ROUND_ARMS, dtype=object)[out.arm]
    treated, control = inside & (out.arm > 0), inside & (out.arm == 0)
    done = inside & ~np.isnan(out.reward)
    tables.update({
        "received.parquet": campaign_edge(cid, uid, out, treated, "received",
                                          ("offer_id", cid + ":" + names[treated]),
                                          out.send_ts, arm=names[treated]),
        "held_out.parquet": campaign_edge(cid, uid, out, control, "held_out",
                                          ("campaign_id", cid), out.send_ts, arm="control"),
        "visited.parquet": campaign_edge(cid, uid, out, inside & (out.visit_ts >= 0), "visited",
                                         ("campaign_id", cid), out.visit_ts),
        "converted.parquet": campaign_edge(cid, uid, out, inside & (out.buy_ts >= 0),
                                           "converted", ("campaign_id", cid), out.buy_ts,
                                           out.spend),
        "completed.parquet": campaign_edge(cid, uid, out, done, "completed",
                                           ("offer_id", cid + ":" + names[done]), out.buy_ts,
                                           out.reward)})
    return tables


def write_round(folder: Path, name: str, tables: dict[str, pd.DataFrame], frame: pd.DataFrame,
                truth: dict[str, Any], after: State, record: dict[str, Any]) -> None:
    """Write a round's files into ``folder``; ``record["files"]`` lists them."""
    present = [f for f, t in tables.items() if len(t)]
    for f in present:
        files.write_table(folder / f, tables[f])
    with atomic_path(folder / files.MAPPING, files.MODE) as tmp:
        tmp.write_text(files.mapping_text(name, present), encoding="utf-8")
    files.write_table(folder / SENDS, frame)
    files.write_npz(folder / ROUND_TRUTH, truth)
    save_state(folder / STATE, after)
    written = [files.MAPPING, *(f for f in files.files(present) if f in present), SENDS,
               ROUND_TRUTH, STATE, RECORD]
    record["files"] = written
    with atomic_path(folder / RECORD, files.MODE) as tmp:
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
