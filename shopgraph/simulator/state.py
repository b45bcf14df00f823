"""The simulated shop between rounds: its world, redrawn from the seed its ``truth.npz`` records,
and what the rounds change, kept in ``rounds/state.npz``.

The state holds the next round's first day, each user's first inactive day, the churn budget of
the active ones and the log-engagement that offers took from them. Churn continues the truth's
own process: :func:`~shopgraph.simulator.stream.draw_lives` churns a user at the end of the first
day on which the cumulative hazard reaches the threshold :math:`E_u \\sim \\text{Exp}(1)`, so the
state keeps the rest of it,

.. math::

    R_u(t) = E_u - \\sum_{t' < t} -\\log(1 - h(e_u(t'))), \\qquad
    e_u(t) = a_u \\exp(-\\delta_u (t - j_u) / 365 + s_u(t)),

and a round spends it day by day at the current engagement. :math:`s_u` is 0 until an offer
annoys the user. A user whom no offer annoyed therefore churns on the truth's ``churn_day``;
one whose engagement fell churns sooner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from shopgraph.simulator.files import write_npz
from shopgraph.simulator.params import SimParams
from shopgraph.simulator.stream import CELLS, DAY, draw_sessions, hazard, utilities
from shopgraph.simulator.truth import load_truth
from shopgraph.simulator.world import World, draw_world, rng_for, seasonality

ROUNDS = "rounds"
STATE = "state.npz"
VERSION = 1


@dataclass
class Shop:
    """A simulated shop as the rounds see it: the redrawn world and the truth they need."""

    folder: Path
    world: World
    seed: int
    origin: int              # epoch seconds of day 0
    days: int                # the observed period; the first round starts on this day
    scale: float             # lambda, the visit rate
    user_ids: np.ndarray     # str, as in the files
    item_ids: np.ndarray
    churn_day: np.ndarray    # the truth's first inactive day (inf: active to the horizon)
    budget: np.ndarray       # the truth's churn budget left at the cutoff
    logsumexp: np.ndarray    # lse_i s_ui of each user, for the promoted items' affinity


def load_shop(folder: str | Path) -> Shop:
    """Read ``truth.npz`` and redraw the world it came from.

    Raises:
        ValueError: the shop was written by a simulator without rounds, or its world cannot be
            redrawn (another shopgraph or numpy); simulate it again.
    """
    folder = Path(folder)
    truth = load_truth(folder)
    if not {"seed", "visit_scale", "logsumexp", "churn_budget_at_cutoff"} <= set(truth):
        raise ValueError(f"the shop at {folder} was simulated before rounds existed (its "
                         "truth.npz lacks what they need); run `shopgraph simulate` again")
    params = SimParams.from_dict(truth["params"])
    origin, cutoff = int(truth["origin_ts"]), int(truth["cutoff_ts"])
    days = (cutoff - origin) // DAY
    seed = int(truth["seed"])
    world = draw_world(params, len(truth["user_ids"]), len(truth["item_ids"]),
                       len(truth["category_ids"]), days, seed)
    if not np.allclose(world.user_factors(), truth["user_factors"]):
        raise ValueError(f"the world of the shop at {folder} cannot be redrawn from its seed "
                         "(simulated with another shopgraph or numpy); simulate it again")
    return Shop(folder, world, seed, origin, days, float(truth["visit_scale"]),
                truth["user_ids"].astype(str), truth["item_ids"].astype(str), truth["churn_day"],
                truth["churn_budget_at_cutoff"], truth["logsumexp"])


@dataclass
class State:
    """What the rounds changed; arrays follow the shop's users."""

    number: int                 # rounds answered so far
    day: int                    # the next round's first day (days since day 0)
    death_day: np.ndarray       # first inactive day; inf: active
    budget: np.ndarray          # R_u, the churn budget left (0 once churned)
    shift: np.ndarray           # s_u, log-engagement lost to offers
    round_ids: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)   # each round's request digest

    def active(self, day: int) -> np.ndarray:
        """Users active on ``day`` (they may churn at its end)."""
        alive: np.ndarray = self.death_day > day
        return alive


def initial_state(shop: Shop) -> State:
    """The state at the end of the observed period, before any round."""
    alive = shop.churn_day > shop.days
    return State(0, shop.days, np.where(alive, np.inf, shop.churn_day),
                 np.where(alive, shop.budget, 0.0), np.zeros(len(alive)))


def save_state(path: Path, state: State) -> None:
    """Write ``state`` as a pickle-free ``.npz`` (same state, same bytes)."""
    write_npz(path, {
        "version": np.int64(VERSION), "number": np.int64(state.number),
        "day": np.int64(state.day), "death_day": state.death_day, "budget": state.budget,
        "shift": state.shift,
        "round_ids": np.asarray(state.round_ids, dtype=str),
        "requests": np.asarray(state.requests, dtype=str)})


def read_state(path: Path) -> State:
    """The state saved at ``path`` by :func:`save_state`."""
    with np.load(path, allow_pickle=False) as z:
        if int(z["version"]) != VERSION:
            raise ValueError(f"{path} is a rounds state of version {int(z['version'])}; this "
                             f"shopgraph reads version {VERSION}")
        return State(int(z["number"]), int(z["day"]), z["death_day"], z["budget"], z["shift"],
                     [str(r) for r in z["round_ids"]], [str(r) for r in z["requests"]])


def current_state(shop: Shop) -> State:
    """The state in ``<shop>/rounds/state.npz``, or the initial one before any round."""
    path = shop.folder / ROUNDS / STATE
    return read_state(path) if path.is_file() else initial_state(shop)


@dataclass
class Lived:
    """Days lived by the shop: the new churn days, budgets and engagement shifts, and the
    ordinary sessions' events as (user, item, ts, kind) parts."""

    death_day: np.ndarray
    budget: np.ndarray
    shift: np.ndarray
    parts: list[tuple[np.ndarray, ...]]


def live(shop: Shop, state: State, days: int, drop: np.ndarray, drop_day: np.ndarray,
         seed: int) -> Lived:
    """Live ``days`` days from ``state.day``: churn, then the ordinary sessions of every active
    user (stage 4 of ``seed``'s streams, one per block of users).

    Args:
        shop: the shop.
        state: where it stands.
        days: how many days.
        drop: log-engagement each user loses (>= 0; 0: none) from ``drop_day`` on.
        drop_day: the day the loss starts, per user.
        seed: the round's stream seed.
    """
    w, p = shop.world, shop.world.params
    t = np.arange(state.day, state.day + days)
    season = seasonality(t, p)
    death, budget = state.death_day.copy(), state.budget.copy()
    users = np.flatnonzero(state.active(state.day))
    item_f = w.item_factors().astype(np.float32)
    parts: list[tuple[np.ndarray, ...]] = []
    step = max(16, CELLS // max(days, len(item_f)))
    for b, start in enumerate(range(0, len(users), step)):
        rows = users[start:start + step]
        after = t[None, :] >= drop_day[rows, None]
        e = w.engagement(rows, t) * np.exp(state.shift[rows, None]
                                           - np.where(after, drop[rows, None], 0.0))
        cum = np.cumsum(-np.log1p(-hazard(e, p)), axis=1)
        crossed = cum >= budget[rows, None]
        gone = crossed.any(axis=1)
        death[rows[gone]] = state.day + crossed[gone].argmax(axis=1) + 1
        budget[rows] = np.where(gone, 0.0, budget[rows] - cum[:, -1])
        rate = shop.scale * e * season[None, :] * (t[None, :] < death[rows, None])
        parts += draw_sessions(w, rows, rate, state.day, shop.origin, rng_for(seed, 4, b),
                               partial(_choice, w, rows, item_f))
    return Lived(death, budget, state.shift - drop, parts)


def _choice(w: World, rows: np.ndarray, item_f: np.ndarray, act: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """Utilities and choice weights of the users ``rows[act]``."""
    s, weight, _ = utilities(w, rows[act], item_f)
    return s, weight
