"""``simulate``: draw a shop, its history, its campaigns and its future, and write them with the
ground truth. The generative model is in ``docs/simulator.md``; the steps are in
``world.py`` (who and what), ``stream.py`` (lifetimes and interactions), ``campaigns.py``
(the two past campaigns) and ``files.py`` (the layout on disk)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shopgraph.parallel import Engine
from shopgraph.simulator import files
from shopgraph.simulator.campaigns import TERMS, Campaign, Campaigns, Outcome, draw_campaigns
from shopgraph.simulator.params import ARMS, OFFERS, ORIGIN, TYPES, SimParams
from shopgraph.simulator.stream import (
    BUY,
    DAY,
    Lives,
    Stream,
    draw_lives,
    draw_stream,
    events_per_session,
)
from shopgraph.simulator.world import World, draw_world, seasonality

RELS = ("VIEWED", "CARTED", "PURCHASED")  # by event kind
PREFIX = ("v", "c", "p")


def simulate(out_dir: str | Path, *, users: int = 20_000, items: int = 5_000,
             interactions: int = 500_000, seed: int = 0, days: int = 365,
             horizon_days: int = 90, categories: int | None = None,
             params: SimParams | None = None, engine: Engine | None = None,
             on_progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Simulate a shop with known ground truth and write it to ``out_dir``.

    Args:
        out_dir: the folder to write (created; files of an earlier run are replaced).
        users: number of users.
        items: number of items.
        interactions: the expected number of user->item events (views, carts, purchases)
            in the ingestable files; the realised number is close to it.
        seed: the seed; the same arguments give byte-identical files.
        days: length of the observed period, from 2025-01-01 (at least 200: the campaigns
            start 180 and 75 days before its end).
        horizon_days: length of the future kept out of the mapping (``holdout.parquet``) and
            scored by the churn truth.
        categories: number of categories (default: items / 100, between 4 and 24).
        params: the generative model's parameters (default :class:`SimParams`).
        engine: where the users' streams are drawn, in partitions (default: this process);
            any engine gives the same files.
        on_progress: called as ``(users done, users)`` while the streams are drawn.

    Returns:
        A summary: sizes, counts per file, dates, campaigns with their arms and conversion
        rates, and the files written.
    """
    p = params or SimParams()
    cats = (categories if categories is not None
            else min(int(np.clip(items // 100, 4, 24)), items))
    for name, value, low in (("users", users, 20), ("items", items, 2), ("days", days, 200),
                             ("horizon_days", horizon_days, 1), ("interactions", interactions, 0),
                             ("categories", cats, 1)):
        if value < low:
            raise ValueError(f"{name} must be at least {low}, got {value}")
    if cats > items:
        raise ValueError(f"categories ({cats}) cannot exceed items ({items}); pass fewer")
    origin_day = (dt.date.fromisoformat(ORIGIN) - dt.date(1970, 1, 1)).days
    origin, cutoff = origin_day * DAY, (origin_day + days) * DAY
    end = cutoff + horizon_days * DAY

    world = draw_world(p, users, items, cats, days, seed)
    season = seasonality(np.arange(days + horizon_days), p)
    lives = draw_lives(world, season, days, seed)
    expected = lives.expected.sum()
    kappa = events_per_session(world, lives, seed)
    scale = interactions / (kappa * expected) if expected > 0 else 0.0
    stream = draw_stream(world, lives, season, scale, days, origin, seed, engine,
                         on_progress)
    camps = draw_campaigns(world, lives.death_day, stream.logsumexp, days, origin, seed)

    uid = files.numbered("u", users)
    iid = files.numbered("i", items)
    cid = np.array([n.lower().replace(" ", "-") for n in world.category_names], dtype=object)
    events = _events(world, stream, camps, end)
    ts, kind, user = events["ts"], events["kind"], events["user"]
    seen = ts < cutoff
    buys = seen & (kind == BUY)
    tables = {
        "users.parquet": _users(world, uid, user[buys], ts[buys], events["value"][buys],
                                camps.test, origin),
        "items.parquet": pd.DataFrame({"item_id": iid, "name": [
            f"{world.category_names[c]} item {i}" for i, c in enumerate(world.item_category)],
            "category": cid[world.item_category], "price": world.price}),
        "categories.parquet": pd.DataFrame({"category_id": cid, "name": world.category_names}),
        **campaign_tables(world, ((camps.newsletter, ("informational",)), (camps.test, OFFERS)),
                          iid, origin_day),
    }
    for k, rel in enumerate(RELS):
        rows = seen & (kind == k)
        frame = pd.DataFrame({"event_id": events["event_id"][rows], "user_id": uid[user[rows]],
                              "item_id": iid[events["item"][rows]], "ts": ts[rows]})
        if rel == "PURCHASED":
            frame["value"] = events["value"][rows]
            frame["quantity"] = events["quantity"][rows].astype(np.int64)
        tables[{"VIEWED": "views.parquet", "CARTED": "carts.parquet",
                "PURCHASED": "purchases.parquet"}[rel]] = frame
    tables.update(_campaign_edges(camps, uid))
    later = ~seen
    holdout = pd.DataFrame({
        "event_id": events["event_id"][later], "rel": np.asarray(RELS, dtype=object)[kind[later]],
        "user_id": uid[user[later]], "item_id": iid[events["item"][later]], "ts": ts[later],
        "value": events["value"][later], "quantity": events["quantity"][later]})
    bought_later = np.zeros(users, dtype=bool)
    bought_later[user[later & (kind == BUY)]] = True
    truth = _truth(world, lives, stream, camps, uid, iid, cid, p, origin, cutoff, end,
                   bought_later)
    truth.update(seed=np.int64(seed), visit_scale=np.float64(scale),  # for the rounds
                 logsumexp=stream.logsumexp, churn_budget_at_cutoff=lives.budget)
    written = files.write_shop(Path(out_dir), f"simshop-s{seed}", tables, holdout, truth)

    test_log = tables["received.parquet"]["arm"].value_counts()
    conv = camps.test_outcome
    rates = {a: float(np.mean(conv.buy_ts[conv.arm == j] >= 0)) if (conv.arm == j).any()
             else None for j, a in enumerate(ARMS)}
    day = dt.date.fromisoformat(ORIGIN)
    return {
        "out_dir": str(out_dir), "mapping": str(Path(out_dir) / files.MAPPING), "seed": seed,
        "users": users, "items": items, "categories": cats,
        "interactions": int(seen.sum()),
        "by_type": {rel: int((seen & (kind == k)).sum()) for k, rel in enumerate(RELS)},
        "holdout_interactions": int(later.sum()),
        "origin": day.isoformat(), "cutoff": (day + dt.timedelta(days)).isoformat(),
        "horizon_end": (day + dt.timedelta(days + horizon_days)).isoformat(),
        "alive_at_cutoff": int(truth["alive_at_cutoff"].sum()),
        "churned_in_horizon": int(truth["churned_in_horizon"].sum()),
        "campaigns": {
            camps.newsletter.id: {"type": camps.newsletter.type, "randomised": False,
                                  "arms": {"exposed": len(camps.newsletter_outcome.users)},
                                  "converted": int((camps.newsletter_outcome.buy_ts >= 0).sum())},
            camps.test.id: {"type": camps.test.type, "randomised": True,
                            "arms": {"control": int((conv.arm == 0).sum()),
                                     **{a: int(test_log.get(a, 0)) for a in OFFERS}},
                            "conversion_rate": rates}},
        "offers": tables["offers.parquet"]["offer_id"].tolist(),
        "files": written,
    }


def _events(w: World, stream: Stream, camps: Campaigns, end: int) -> dict[str, np.ndarray]:
    """All user->item events before ``end``, in time order, with event ids."""
    parts = [(stream.user, stream.item, stream.ts, stream.kind,
              np.where(stream.kind == BUY, w.price[stream.item], np.nan),
              np.where(stream.kind == BUY, 1.0, np.nan)),
             camps.newsletter_outcome.events, camps.test_outcome.events]
    user, item, ts, kind, value, qty = (np.concatenate(c) for c in zip(*parts))
    order = np.lexsort((kind, item, user, ts))
    order = order[ts[order] < end]
    out = {"user": user[order], "item": item[order], "ts": ts[order], "kind": kind[order],
           "value": value[order], "quantity": qty[order]}
    eid = np.empty(len(order), dtype=object)
    for k, prefix in enumerate(PREFIX):
        rows = out["kind"] == k
        eid[rows] = files.numbered(prefix, int(rows.sum()))
    out["event_id"] = eid
    return out


def _users(w: World, uid: np.ndarray, user: np.ndarray, ts: np.ndarray, value: np.ndarray,
           test: Campaign, origin: int) -> pd.DataFrame:
    """User properties as of the offer test's start (Hillstrom's definitions): ``recency``,
    months since the last purchase (NaN: none yet); ``history``, the last year's spend;
    ``newbie``, joined in the last year."""
    n, start = len(uid), origin + test.start * DAY
    before = ts < start
    last = np.full(n, -1, dtype=np.int64)
    np.maximum.at(last, user[before], ts[before])
    recency = np.where(last >= 0, np.ceil((start - last) / (30 * DAY)), np.nan)
    year = before & (ts >= start - 365 * DAY)
    history = np.round(np.bincount(user[year], weights=value[year], minlength=n), 2)
    frame = pd.DataFrame({"user_id": uid, "email": uid + "@example.com",
                          "consent": w.consent, "recency": recency, "history": history,
                          "newbie": (w.join_day > test.start - 365).astype(np.int64)})
    for name, levels in w.features.items():
        frame[name] = levels.astype(object)
    return frame


def campaign_tables(w: World, camps: Sequence[tuple[Campaign, Sequence[str]]], iid: np.ndarray,
                    origin_day: int) -> dict[str, pd.DataFrame]:
    """The ``Campaign``, ``Offer`` (``<campaign>:<kind>``, one per kind) and ``APPLIES_TO``
    tables of ``camps``, pairs of a campaign and the offer kinds it includes."""
    rows, offers, links = [], [], []
    for camp, kinds in camps:
        rows.append((camp.id, camp.name, camp.type, origin_day + camp.start,
                     origin_day + camp.end, "email"))
        for kind in kinds:
            name, reward, difficulty = TERMS[kind]
            if kind == "bogo":
                reward = float(np.median(w.price[camp.items]))
            oid = f"{camp.id}:{kind}"
            offers.append((oid, camp.id, name, kind, reward, difficulty,
                           float(camp.end - camp.start + 1), "email"))
            links += [(oid, i) for i in iid[camp.items]]
    return {
        "campaigns.parquet": pd.DataFrame(rows, columns=[
            "campaign_id", "name", "type", "start_day", "end_day", "channel"]),
        "offers.parquet": pd.DataFrame(offers, columns=[
            "offer_id", "campaign_id", "name", "type", "reward", "difficulty", "duration",
            "channels"]),
        "offer_items.parquet": pd.DataFrame(links, columns=["offer_id", "item_id"])}


def campaign_edge(cid: str, uid: np.ndarray, o: Outcome, rows: np.ndarray, what: str, dst: Any,
                  ts: np.ndarray, value: np.ndarray | None = None, arm: Any = None
                  ) -> pd.DataFrame:
    """One campaign relationship table of the participants ``o.users[rows]``: event ids
    ``<campaign>:<user>:<what>`` (:func:`files.event_ids`), ``user_id``, ``dst = (column,
    ids)``, ``ts`` and, when given, ``value`` and ``arm``."""
    users = uid[o.users[rows]]
    frame = pd.DataFrame({"event_id": files.event_ids(cid, users, what), "user_id": users,
                          dst[0]: dst[1], "ts": ts[rows]})
    if value is not None:
        frame["value"] = value[rows]
    if arm is not None:
        frame["arm"] = arm
    return frame


def _campaign_edges(camps: Campaigns, uid: np.ndarray) -> dict[str, pd.DataFrame]:
    news, test = camps.newsletter_outcome, camps.test_outcome
    n0, n1 = camps.newsletter.id, camps.test.id
    arm = np.asarray(ARMS, dtype=object)[test.arm]
    treated, control = test.arm > 0, test.arm == 0
    done = ~np.isnan(test.reward)

    def both(what: str, mask: tuple[np.ndarray, np.ndarray], ts: str,
             value: str | None = None) -> pd.DataFrame:
        return pd.concat([campaign_edge(c, uid, o, m, what, ("campaign_id", c), getattr(o, ts),
                                        None if value is None else getattr(o, value))
                          for c, o, m in ((n0, news, mask[0]), (n1, test, mask[1]))],
                         ignore_index=True)

    return {
        "exposed.parquet": campaign_edge(n0, uid, news, np.ones(len(news.users), bool),
                                         "exposed", ("campaign_id", n0), news.send_ts),
        "received.parquet": campaign_edge(n1, uid, test, treated, "received",
                                          ("offer_id", n1 + ":" + arm[treated]), test.send_ts,
                                          arm=arm[treated]),
        "held_out.parquet": campaign_edge(n1, uid, test, control, "held_out",
                                          ("campaign_id", n1), test.send_ts, arm="control"),
        "visited.parquet": both("visited", (news.visit_ts >= 0, test.visit_ts >= 0),
                                "visit_ts"),
        "converted.parquet": both("converted", (news.buy_ts >= 0, test.buy_ts >= 0),
                                  "buy_ts", "spend"),
        "completed.parquet": campaign_edge(n1, uid, test, done, "completed",
                                           ("offer_id", n1 + ":" + arm[done]), test.buy_ts,
                                           test.reward),
    }


def _truth(w: World, lives: Lives, stream: Stream, camps: Campaigns, uid: np.ndarray,
           iid: np.ndarray, cid: np.ndarray, p: SimParams, origin: int, cutoff: int, end: int,
           bought_later: np.ndarray) -> dict[str, np.ndarray | np.generic]:
    days = (cutoff - origin) // DAY
    horizon = (end - cutoff) // DAY
    death = lives.death_day
    alive = death > days
    e_cut = w.engagement(slice(None), np.array([days]))[:, 0]
    return {
        "params": np.asarray(p.to_json()), "origin_ts": np.int64(origin),
        "cutoff_ts": np.int64(cutoff), "horizon_end_ts": np.int64(end),
        "user_ids": uid.astype(str), "item_ids": iid.astype(str),
        "category_ids": cid.astype(str), "type_names": np.asarray(TYPES),
        "arm_names": np.asarray(ARMS),
        "user_factors": w.user_factors(), "item_factors": w.item_factors(),
        "user_taste": w.user_taste, "item_taste": w.item_taste, "item_bias": w.item_bias,
        "item_log_price": w.log_price, "item_category": w.item_category,
        "price_sensitivity": w.price_sensitivity, "user_type": w.user_type,
        "activity": w.activity, "decay": w.decay, "join_day": w.join_day,
        "churn_day": death, "engagement_at_cutoff": e_cut, "alive_at_cutoff": alive,
        "churned_in_horizon": alive & (death <= days + horizon),
        "hazard_at_cutoff": lives.hazard_at_cutoff, "p_churn_horizon": lives.p_churn_horizon,
        "p_no_purchase_horizon": stream.p_no_purchase,
        "no_purchase_in_horizon": ~bought_later,
        **camps.truth,
    }
