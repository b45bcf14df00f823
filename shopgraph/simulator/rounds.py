"""Rounds: the simulated shop answers a plan, so a campaign loop can run round after round
against the truth (``docs/simulator.md``, "Rounds: answering a plan").

A round is an e-mail campaign ``round-<id>`` over ``days`` days from the shop's current day. It
promotes up to ``promo_items`` items of two categories and includes the four offers of
:data:`~shopgraph.simulator.params.OFFERS`. :func:`open_round` tells a planner what it may know:
the window, the items, the offers and who can be contacted (active and consenting). It gives no
truth. :func:`answer_round` takes the plan (``user_id``, ``offer``, optional ``ts``) and draws
what happens from the true model of ``campaigns.py``. Every active user converts (buys their
promoted item) with probability :math:`\\sigma(\\eta_u + \\Delta_{uo})`, where :math:`o` is
their offer and a user not sent one has :math:`\\Delta = 0`, as in the control arm. The draw
also covers the shop's ordinary sessions and churn (``state.py``). An offer with a negative
effect costs the user ``annoyance`` × :math:`|\\Delta_{uo}|` of log-engagement for good: fewer
visits, a higher churn hazard and a lower :math:`\\eta` in later rounds. The round's files go
to ``<shop>/rounds/<id>/`` (``shopgraph ingest tabular <shop>/rounds/<id>/mapping.toml``). The
state moves on in ``<shop>/rounds/state.npz``.

:func:`true_values` gives the scorer the true expected net spend of each arm, the way
``jobs/truth.py::plan_truth`` defines it: :math:`V_{ua} = p_{ua} v_{ua} - p_{u0} v_{u0}`, before
the offer's cost. :func:`policy_value` gives any stochastic policy's true expected net value.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import re
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shopgraph.simulator import files
from shopgraph.simulator.campaigns import (
    SEND_HOUR,
    Campaign,
    Outcome,
    arm_probabilities,
    baseline,
    eligible,
    offer_effects,
    promoted,
    run,
)
from shopgraph.simulator.params import OFFERS, ROUND_ARMS
from shopgraph.simulator.policy import arm_costs, oracle_policy, policy_value
from shopgraph.simulator.round_files import (
    RECORD,
    ROUND_TRUTH,
    round_tables,
    write_round,
)
from shopgraph.simulator.state import (
    ROUNDS,
    STATE,
    Shop,
    State,
    current_state,
    live,
    load_shop,
    read_state,
    save_state,
)
from shopgraph.simulator.stream import DAY
from shopgraph.simulator.world import rng_for

__all__ = ["ROUND_ARMS", "RoundContext", "RoundOutcome", "answer_round", "arm_costs",
           "open_round", "oracle_policy", "outcome_dict", "policy_value", "round_seed",
           "round_truth", "true_values"]

ROUND_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class RoundContext:
    """What a planner may know before a round; nothing in it comes from the truth.

    Attributes:
        round_id: the round's id; ``campaign_id`` is ``round-<round_id>``.
        number: 1 for the shop's first round.
        start_ts: the round's first second (epoch s); ``end_ts`` the first second after it.
        start_day: ``start_ts // 86400``, as ``Campaign.start_day`` in the graph.
        send_ts: the default send time (09:00 of the first day).
        eligible: ids of the users who may be sent an offer (active, consenting), sorted.
        items: ids of the promoted items; ``offer_ids``: offer name -> ``Offer`` id.
        costs: the shop's cost of one send of each offer (as in its ``run.toml``).
        observed: the mapping files the shop has published so far (the shop's, then each
            answered round's), to ingest before planning.
    """

    round_id: str
    number: int
    campaign_id: str
    days: int
    start_ts: int
    end_ts: int
    start_day: int
    send_ts: int
    eligible: np.ndarray
    items: tuple[str, ...]
    offer_ids: dict[str, str]
    costs: dict[str, float]
    observed: tuple[Path, ...]
    arms: tuple[str, ...] = ROUND_ARMS


@dataclass(frozen=True)
class RoundOutcome:
    """What a round did; ``round.json`` in its folder holds the same (less the paths).

    Per arm of :data:`ROUND_ARMS` over the round's participants (the users in the plan; ``none``
    is the held-out group): ``sent``, ``visited``, ``converted`` and ``spend`` (realised spend on
    the promoted items). ``rewards``: value of the completed offers; ``send_cost``: sends times
    :attr:`RoundContext.costs`. ``expected_uplift``: the plan's true expected extra spend,
    :math:`\\sum_u V_{u, a_u}`; ``expected_net_value`` = that minus ``send_cost``. ``events``:
    rows per file. ``replayed``: the round had been answered before; nothing was drawn again.
    """

    round_id: str
    number: int
    campaign_id: str
    start_ts: int
    end_ts: int
    request: str
    sent: dict[str, int]
    visited: dict[str, int]
    converted: dict[str, int]
    spend: dict[str, float]
    rewards: float
    send_cost: float
    expected_uplift: float
    expected_net_value: float
    active_at_start: int
    churned: int
    events: dict[str, int]
    files: list[str]
    folder: Path
    mapping: Path
    replayed: bool = False


def open_round(shop_dir: str | Path, round_id: str, *, days: int = 7) -> RoundContext:
    """The context of the shop's next round, for a planner (it changes nothing).

    Raises:
        ValueError: a bad round id or length, or a round id answered already.
    """
    _check(round_id, days)
    shop = load_shop(shop_dir)
    state = _state(shop)
    if round_id in state.round_ids or (_rounds(shop) / round_id).exists():
        raise ValueError(f"round {round_id!r} was answered already (see "
                         f"{_rounds(shop) / round_id}); open a new round id")
    return _context(shop, state, round_id, days)


def answer_round(shop_dir: str | Path, sends: pd.DataFrame, *, round_id: str, days: int = 7,
                 seed: int | None = None) -> RoundOutcome:
    """Answer a plan: draw the round's outcomes, write its files and move the shop on.

    Args:
        shop_dir: a folder written by ``shopgraph simulate``.
        sends: one row per planned user: ``user_id``, ``offer`` (one of :data:`ROUND_ARMS`;
            ``none`` or ``control`` holds the user out as control) and optionally ``ts``, the
            send time (epoch s or datetime; default and NaN: 09:00 of the first day).
        round_id: letters, digits, ``_``, ``.``, ``-``; names the folder and the campaign.
        days: the round's length.
        seed: the seed of the outcome draws (default: the shop's). The context (items,
            eligibility) does not depend on it.

    Returns:
        The outcome. Answering a round again with the same request returns the first answer
        (``replayed``); with another request it raises.

    Raises:
        ValueError: a malformed plan, a user who is unknown or may not be contacted, a send
            time outside the round, or a round answered with another request.
    """
    _check(round_id, days)
    frame = _normalise(sends)
    shop = load_shop(shop_dir)
    seed = shop.seed if seed is None else int(seed)
    request = _digest(round_id, days, seed, frame)
    rounds = _rounds(shop)
    rounds.mkdir(parents=True, exist_ok=True)
    with _locked(rounds):
        state = _settled(shop)
        folder = rounds / round_id
        if folder.exists():
            return _replay(folder, request)
        if round_id in state.round_ids:
            raise ValueError(f"round {round_id!r} was answered but its folder {folder} is gone; "
                             "the shop has moved past it")
        ctx = _context(shop, state, round_id, days)
        tables, truth, after, record = _draw(shop, state, ctx, frame, seed, request)
        tmp = rounds / f".tmp-{round_id}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        write_round(tmp, f"simshop-s{shop.seed}-{round_id}", tables, frame, truth, after,
                    record)
        tmp.rename(folder)  # the round is answered; a crash before the next line is repaired
        save_state(rounds / STATE, after)
    return _outcome(record, folder)


def round_truth(shop_dir: str | Path, which: str | RoundContext) -> dict[str, Any]:
    """The truth of a round at its start, per user of the shop: ``p_convert``, ``p_visit`` and
    ``value_if_converted`` (users x :data:`ROUND_ARMS`), ``active``, ``eligible``,
    ``engagement``, ``user_ids``. An answered round's comes from its folder; an open one's from
    the shop's current state."""
    shop_dir = Path(shop_dir)
    ctx = which if isinstance(which, RoundContext) else None
    round_id = ctx.round_id if ctx else str(which)
    _check(round_id, ctx.days if ctx else 1)
    path = shop_dir / ROUNDS / round_id / ROUND_TRUTH
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            out: dict[str, Any] = {k: z[k] for k in z.files}
        if ctx is not None and int(out["number"]) != ctx.number:
            raise ValueError(f"round {round_id!r} was answered as round {int(out['number'])}, "
                             f"not as the context's round {ctx.number}")
        return out
    shop = load_shop(shop_dir)
    state = _state(shop)
    if ctx is not None and (ctx.number != state.number + 1
                            or ctx.start_ts != shop.origin + state.day * DAY):
        raise ValueError(f"the context of round {round_id!r} is stale: the shop has answered "
                         f"{state.number} rounds since; open the round again")
    return _truth(shop, state, _context(shop, state, round_id, ctx.days if ctx else 7))[0]


def true_values(shop_dir: str | Path, which: str | RoundContext,
                users: Sequence[str] | np.ndarray | None = None) -> np.ndarray:
    """The true expected net spend of each arm per user (users x :data:`ROUND_ARMS`): spend
    under the arm minus spend without an offer, before the offer's cost; 0 for inactive users.

    Args:
        shop_dir: the shop.
        which: a round id (answered, or the next round's) or a :class:`RoundContext`.
        users: user ids (default: the round's eligible users, sorted).
    """
    t = round_truth(shop_dir, which)
    ids = pd.Index(t["user_ids"])
    rows = (np.flatnonzero(t["eligible"]) if users is None
            else ids.get_indexer(np.asarray(users, dtype=str)))
    if (rows < 0).any():
        bad = np.asarray(users, dtype=str)[rows < 0][0]
        raise ValueError(f"unknown user id {bad!r}; the shop's ids look like {ids[0]!r}")
    spend = t["p_convert"][rows] * t["value_if_converted"][rows]
    value: np.ndarray = (spend - spend[:, :1]) * t["active"][rows, None]
    return value


def _check(round_id: str, days: int) -> None:
    if not isinstance(round_id, str) or not ROUND_ID.fullmatch(round_id):
        raise ValueError(f"round_id must be 1-64 letters, digits, '_', '.' or '-' starting with "
                         f"a letter or digit, got {round_id!r}")
    if not 1 <= days <= 366:
        raise ValueError(f"days must be between 1 and 366, got {days}")


def _rounds(shop: Shop) -> Path:
    return shop.folder / ROUNDS


@contextmanager
def _locked(rounds: Path) -> Iterator[None]:
    """One answering process at a time per shop."""
    with open(rounds / ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _settled(shop: Shop) -> State:
    """The current state, after making current a round that a crash left answered (its folder
    in place) but not current (``state.npz`` not yet moved on). Call under :func:`_locked`."""
    state = current_state(shop)
    rounds = _rounds(shop)
    while True:
        done = [f.parent for f in sorted(rounds.glob(f"*/{RECORD}"))
                if f.parent.name not in state.round_ids
                and json.loads(f.read_text(encoding="utf-8"))["number"] == state.number + 1]
        if not done:
            return state
        state = read_state(done[0] / STATE)
        save_state(rounds / STATE, state)


def _state(shop: Shop) -> State:
    """The current state (repaired as in :func:`_settled`); nothing is written before the
    first round."""
    if not _rounds(shop).is_dir():
        return current_state(shop)
    with _locked(_rounds(shop)):
        return _settled(shop)


def round_seed(seed: int, number: int, round_id: str) -> int:
    """The seed of a round's streams: the shop's seed, the round's number and id."""
    digest = hashlib.sha256(f"{seed}\x1f{number}\x1f{round_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _context(shop: Shop, state: State, round_id: str, days: int) -> RoundContext:
    w, number = shop.world, state.number + 1
    items = promoted(w, 2, w.params.promo_items, rng_for(round_seed(shop.seed, number, round_id),
                                                         1))
    start = shop.origin + state.day * DAY
    rounds = _rounds(shop)
    return RoundContext(
        round_id, number, f"round-{round_id}", days, start, start + days * DAY, start // DAY,
        start + SEND_HOUR * 3600, shop.user_ids[eligible(w, state.death_day, state.day)],
        tuple(str(i) for i in shop.item_ids[items]), {o: f"round-{round_id}:{o}" for o in OFFERS},
        dict(files.OFFER_COSTS),
        (shop.folder / files.MAPPING, *(rounds / r / files.MAPPING for r in state.round_ids)))


def _campaign(shop: Shop, ctx: RoundContext) -> Campaign:
    day = (ctx.start_ts - shop.origin) // DAY
    items = np.sort(pd.Index(shop.item_ids).get_indexer(list(ctx.items)))
    return Campaign(ctx.campaign_id, f"Round {ctx.round_id}", "round", day,
                    day + ctx.days - 1, items)


def _truth(shop: Shop, state: State, ctx: RoundContext, seed: int | None = None
           ) -> tuple[dict[str, Any], np.ndarray]:
    """The round's truth (see :func:`round_truth`) and one promoted item per user (drawn)."""
    w = shop.world
    camp = _campaign(shop, ctx)
    key = round_seed(shop.seed if seed is None else seed, ctx.number, ctx.round_id)
    eta, value, pick = baseline(w, camp, shop.logsumexp, key, 2, shift=state.shift)
    p_visit, p_convert = arm_probabilities(w.params, eta, offer_effects(w))
    e = w.engagement(slice(None), np.array([camp.start]))[:, 0] * np.exp(state.shift)
    truth = {"user_ids": shop.user_ids, "arm_names": np.asarray(ROUND_ARMS),
             "number": np.int64(ctx.number), "start_ts": np.int64(ctx.start_ts),
             "p_visit": p_visit, "p_convert": p_convert, "value_if_converted": value,
             "active": state.active(state.day),
             "eligible": eligible(w, state.death_day, state.day), "engagement": e}
    return truth, pick


def _normalise(sends: pd.DataFrame) -> pd.DataFrame:
    """The plan as ``user_id``, ``offer`` (``none`` for control), ``ts`` (-1: default), sorted
    by user id."""
    if not isinstance(sends, pd.DataFrame):
        raise ValueError(f"sends must be a pandas DataFrame, got {type(sends).__name__}")
    missing = [c for c in ("user_id", "offer") if c not in sends.columns]
    if missing:
        raise ValueError(f"sends needs the columns user_id and offer; missing {missing}")
    offer = sends["offer"].astype(str).replace({"control": "none"})
    bad = offer[~offer.isin(ROUND_ARMS)]
    if len(bad):
        raise ValueError(f"unknown offer {bad.iloc[0]!r}; use one of {', '.join(ROUND_ARMS)} "
                         "(or control)")
    ts = pd.Series(-1, index=sends.index, dtype=np.int64)
    if "ts" in sends.columns:
        raw = sends["ts"]
        if pd.api.types.is_datetime64_any_dtype(raw):
            raw = pd.to_datetime(raw, utc=True).astype("int64") // 10**9
        num = pd.to_numeric(raw, errors="coerce")
        if (num.isna() & raw.notna()).any():
            raise ValueError(f"ts must be epoch seconds or datetimes, got "
                             f"{raw[num.isna() & raw.notna()].iloc[0]!r}")
        ts = num.fillna(-1).astype(np.int64)
    frame = pd.DataFrame({"user_id": sends["user_id"].astype(str).to_numpy(dtype=object),
                          "offer": offer.to_numpy(dtype=object), "ts": ts.to_numpy()})
    dup = frame["user_id"].duplicated()
    if dup.any():
        raise ValueError(f"user {frame['user_id'][dup].iloc[0]!r} appears twice in sends; "
                         "plan one offer per user")
    return frame.sort_values("user_id", kind="stable").reset_index(drop=True)


def _digest(round_id: str, days: int, seed: int, frame: pd.DataFrame) -> str:
    rows = frame["user_id"] + "\t" + frame["offer"] + "\t" + frame["ts"].astype(str)
    text = f"{round_id}\n{days}\n{seed}\n" + "\n".join(rows)
    return hashlib.sha256(text.encode()).hexdigest()


def _draw(shop: Shop, state: State, ctx: RoundContext, frame: pd.DataFrame, seed: int,
          request: str) -> tuple[dict[str, pd.DataFrame], dict[str, Any], State, dict[str, Any]]:
    """Draw the round: its tables, truth, the state after it and its record."""
    w, n = shop.world, len(shop.user_ids)
    pos = pd.Index(shop.user_ids).get_indexer(frame["user_id"].to_numpy(dtype=str))
    if (pos < 0).any():
        raise ValueError(f"unknown user id {frame['user_id'][pos < 0].iloc[0]!r} in sends; the "
                         f"shop's ids look like {shop.user_ids[0]!r}")
    ok = eligible(w, state.death_day, state.day)
    if not ok[pos].all():
        first = frame["user_id"][~ok[pos]].iloc[0]
        raise ValueError(f"{int((~ok[pos]).sum())} user(s) in sends may not be contacted "
                         f"(churned or without consent), e.g. {first!r}; plan for "
                         "RoundContext.eligible")
    ts = np.where(frame["ts"].to_numpy() < 0, ctx.send_ts, frame["ts"].to_numpy())
    late = (ts < ctx.start_ts) | (ts >= ctx.end_ts)
    if late.any():
        raise ValueError(f"send time {int(ts[late][0])} is outside the round [{ctx.start_ts}, "
                         f"{ctx.end_ts})")
    arm = np.zeros(n, dtype=np.int64)
    arm[pos] = [ROUND_ARMS.index(o) for o in frame["offer"]]
    part = np.zeros(n, dtype=bool)
    part[pos] = True
    send = np.full(n, ctx.send_ts, dtype=np.int64)
    send[pos] = ts
    truth, pick = _truth(shop, state, ctx, seed)
    key = round_seed(seed, ctx.number, ctx.round_id)
    delta = offer_effects(w)[np.arange(n), arm]
    drop = np.where(arm > 0, w.params.annoyance * np.maximum(-delta, 0.0), 0.0)
    lived = live(shop, state, ctx.days, drop, (send - shop.origin) // DAY, key)
    users = np.flatnonzero(truth["active"])
    death_ts = shop.origin + lived.death_day * DAY  # inf: active
    until = np.where(death_ts > send, np.minimum(death_ts, ctx.end_ts), ctx.end_ts)
    camp = _campaign(shop, ctx)
    out = run(w, camp, users, arm[users], truth["p_visit"], truth["p_convert"], pick,
              shop.origin, key, 3, send=send[users], until=until[users].astype(np.int64))
    tables = round_tables(w, shop.user_ids, shop.item_ids, shop.origin, camp, lived.parts, out,
                          part)
    after = State(state.number + 1, state.day + ctx.days, lived.death_day, lived.budget,
                  lived.shift, [*state.round_ids, ctx.round_id],
                  [*state.requests, request])
    record = _record(shop, ctx, truth, out, part, request, tables, after, state)
    return tables, truth, after, record


def _record(shop: Shop, ctx: RoundContext, truth: dict[str, Any], out: Outcome, part: np.ndarray,
            request: str, tables: dict[str, pd.DataFrame], after: State, before: State
            ) -> dict[str, Any]:
    """The round's summary (``round.json``), without paths."""
    inside = part[out.users]
    arm, conv = out.arm[inside], out.buy_ts[inside] >= 0
    spend = np.nan_to_num(out.spend[inside])
    value = (truth["p_convert"] * truth["value_if_converted"])[out.users[inside]]
    uplift = float((value[np.arange(len(arm)), arm] - value[:, 0]).sum())
    cost = float(sum(ctx.costs[ROUND_ARMS[a]] for a in arm if a > 0))
    active = before.active(before.day)
    return {
        "round_id": ctx.round_id, "number": ctx.number, "campaign_id": ctx.campaign_id,
        "start_ts": ctx.start_ts, "end_ts": ctx.end_ts, "request": request,
        "sent": {a: int((arm == j).sum()) for j, a in enumerate(ROUND_ARMS)},
        "visited": {a: int((out.visit_ts[inside][arm == j] >= 0).sum())
                    for j, a in enumerate(ROUND_ARMS)},
        "converted": {a: int(conv[arm == j].sum()) for j, a in enumerate(ROUND_ARMS)},
        "spend": {a: round(float(spend[arm == j].sum()), 2) for j, a in enumerate(ROUND_ARMS)},
        "rewards": round(float(np.nansum(out.reward[inside])), 2),
        "send_cost": round(cost, 2), "expected_uplift": round(uplift, 4),
        "expected_net_value": round(uplift - cost, 4),
        "active_at_start": int(active.sum()),
        "churned": int((active & ~after.active(after.day)).sum()),
        "events": {f: len(t) for f, t in tables.items()}, "files": []}


def _replay(folder: Path, request: str) -> RoundOutcome:
    """The answer of a round answered before, after checking the request is the same."""
    record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
    if record["request"] != request:
        raise ValueError(f"round {record['round_id']!r} was answered already with another plan "
                         "(sends, days or seed); a round is answered once: use a new round id")
    return _outcome(record, folder, replayed=True)


def _outcome(record: dict[str, Any], folder: Path, replayed: bool = False) -> RoundOutcome:
    return RoundOutcome(**record, folder=folder, mapping=folder / files.MAPPING,
                        replayed=replayed)


def outcome_dict(outcome: RoundOutcome) -> dict[str, Any]:
    """The outcome as JSON-ready values (paths as strings)."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(outcome).items()}
