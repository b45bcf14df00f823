"""Lifetimes and the interaction stream: who is active on which day, how often they visit, what
they view (a multinomial logit over the catalogue), cart and buy.

.. math::

    h_u(t) = \\sigma(\\theta_0 - \\theta_1 \\log e_u(t)), \\qquad
    \\text{churn at the end of the first day with }
    \\textstyle\\sum_{t' \\le t} -\\log(1 - h_u(t')) \\ge E_u,\\ E_u \\sim \\text{Exp}(1)

    N_u(t) \\sim \\text{Poisson}(\\lambda\\, e_u(t)\\, S(t)) \\text{ while active}, \\quad
    P(\\text{view } i) = \\frac{e^{s_{ui}}}{\\sum_j e^{s_{uj}}}, \\quad
    P(\\text{cart}) = \\sigma(a_c + k_c m_{ui}), \\quad P(\\text{buy} \\mid \\text{cart})
    = \\sigma(a_b + k_b m_{ui})

with the match :math:`m_{ui} = s_{ui} - b_i` (popularity makes an item seen, not bought). The
hazard depends on the latent engagement only, so lifetimes are drawn first and the visit scale
:math:`\\lambda` is then set to hit the requested number of interactions in expectation.
Users are processed in blocks, each with its own random stream, so memory stays bounded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
from scipy.special import expit
from threadpoolctl import threadpool_limits

from shopgraph.parallel import Engine, LocalEngine
from shopgraph.simulator.params import HOURLY, SimParams
from shopgraph.simulator.world import World, rng_for

DAY = 86_400
CELLS = 1 << 22  # floats per block matrix
CHUNK = 256  # columns per chunk of sample_choice
VIEW, CART, BUY = 0, 1, 2


def hazard(e: np.ndarray, p: SimParams) -> np.ndarray:
    """Daily churn probability at engagement ``e``."""
    h: np.ndarray = expit(p.hazard_bias - p.hazard_slope * np.log(np.maximum(e, 1e-12)))
    return h


@dataclass
class Lives:
    """Per user: ``death_day`` (first inactive day; inf past the span), the unscaled expected
    sessions before the cutoff, the hazard on the cutoff day, P(churned by the horizon) and the
    churn budget left at the cutoff, ``E_u - sum_{t < D} -log(1 - h_u(t))`` (0 once churned),
    which the rounds (``state.py``) go on spending."""

    death_day: np.ndarray
    expected: np.ndarray
    hazard_at_cutoff: np.ndarray
    p_churn_horizon: np.ndarray
    budget: np.ndarray


def draw_lives(w: World, season: np.ndarray, days: int, seed: int) -> Lives:
    """Churn days from the engagement-driven hazard (stage 2 of the seed's streams)."""
    n, span = len(w.join_day), len(season)
    t = np.arange(span)
    out = Lives(np.full(n, np.inf), np.zeros(n), np.zeros(n), np.ones(n), np.zeros(n))
    step = max(1, CELLS // span)
    for b, start in enumerate(range(0, n, step)):
        rows = np.arange(start, min(n, start + step))
        e = w.engagement(rows, t)
        h = hazard(e, w.params)
        joined = t[None, :] >= w.join_day[rows, None]
        cum = np.cumsum(np.where(joined, -np.log1p(-h), 0.0), axis=1)
        threshold = rng_for(seed, 2, b).exponential(size=len(rows))
        crossed = cum >= threshold[:, None]
        death = np.where(crossed.any(axis=1), crossed.argmax(axis=1) + 1.0, np.inf)
        out.budget[rows] = np.where(death > days, threshold - cum[:, days - 1], 0.0)
        active = joined & (t[None, :] < death[:, None])
        out.death_day[rows] = death
        out.expected[rows] = (active[:, :days] * e[:, :days] * season[None, :days]).sum(axis=1)
        out.hazard_at_cutoff[rows] = h[:, days]
        stay = np.prod(1 - h[:, days:], axis=1)
        out.p_churn_horizon[rows] = np.where(death > days, 1 - stay, 1.0)
    return out


def sample_rows(weights: np.ndarray, who: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One column per entry of ``who``, drawn with probability proportional to row ``who`` of
    the non-negative ``weights`` (one ``searchsorted`` over the stacked row CDFs)."""
    if not len(who):
        return np.zeros(0, dtype=np.int64)
    rows, pos = np.unique(who, return_inverse=True)
    cdf = np.cumsum(weights[rows], axis=1, dtype=np.float64)
    cdf /= cdf[:, -1:]
    cdf += np.arange(len(rows))[:, None]
    width = weights.shape[1]
    found = np.searchsorted(cdf.ravel(), pos + rng.random(len(who)), side="right")
    col: np.ndarray = np.minimum(found - pos * width, width - 1)
    return col


def sample_choice(weight: np.ndarray, who: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Like :func:`sample_rows`, for wide rows (a user's weights over the catalogue): the chunk
    of :data:`CHUNK` columns first, by the row's chunk sums, then the column inside it, so a draw
    reads one chunk of its row and the rows are summed once instead of accumulated."""
    if not len(who):
        return np.zeros(0, dtype=np.int64)
    width = weight.shape[1]
    starts = np.arange(0, width, CHUNK)
    sums = np.add.reduceat(weight, starts, axis=1).astype(np.float64)
    chunk = sample_rows(sums, who, rng)
    cols = starts[chunk, None] + np.arange(CHUNK)[None, :]
    inside = cols < width
    part = np.where(inside, weight[who[:, None], np.minimum(cols, width - 1)], 0)
    cdf = np.cumsum(part, axis=1, dtype=np.float64)
    target = rng.random(len(who)) * cdf[:, -1]
    pick = np.minimum((cdf <= target[:, None]).sum(axis=1), inside.sum(axis=1) - 1)
    col: np.ndarray = starts[chunk] + pick
    return col


def utilities(w: World, rows: np.ndarray, item_f: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per user of ``rows``: the utilities ``s`` and weights ``exp(s - max)`` of every item
    (float32: the sampler's hot path) and the log-sum-exp of ``s`` (float64)."""
    s = w.user_factors(rows).astype(np.float32) @ item_f.T
    top = s.max(axis=1, keepdims=True)
    weight = np.subtract(s, top)
    np.exp(weight, out=weight)
    return s, weight, top[:, 0] + np.log(weight.sum(axis=1, dtype=np.float64))


def funnel(p: SimParams, match: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """P(cart | view) and P(buy | cart) at the match ``m = s - b``."""
    one = match.dtype.type
    return (expit(one(p.cart_bias) + one(p.cart_slope) * match),
            expit(one(p.buy_bias) + one(p.buy_slope) * match))


def _sigmoid_into(match: np.ndarray, bias: float, slope: float, out: np.ndarray) -> np.ndarray:
    """``sigma(bias + slope * match)`` written into ``out``: one exp and in-place arithmetic,
    a third of ``expit``'s time on float32 here."""
    one = match.dtype.type
    np.multiply(match, one(-slope), out=out)
    out -= one(bias)
    np.exp(out, out=out)
    out += one(1)
    np.reciprocal(out, out=out)
    return out


def session_yield(w: World, s: np.ndarray, weight: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Expected carts and buys per session of each row's user."""
    p = w.params
    match = s - w.item_bias.astype(s.dtype)[None, :]
    step = np.empty_like(match)
    carted = _sigmoid_into(match, p.cart_bias, p.cart_slope, step)
    carted *= weight
    total = weight.sum(axis=1, dtype=np.float64)
    carts = carted.sum(axis=1, dtype=np.float64) / total
    carted *= _sigmoid_into(match, p.buy_bias, p.buy_slope, match)
    return carts, carted.sum(axis=1, dtype=np.float64) / total


def events_per_session(w: World, lives: Lives, seed: int, sample: int = 1000) -> float:
    """Expected interactions (view + cart + buy) per session, weighted by expected sessions,
    from a seeded sample of users; used to set the visit scale."""
    n = len(w.join_day)
    rows = np.sort(rng_for(seed, 4).permutation(n)[:sample])
    s, weight, _ = utilities(w, rows, w.item_factors().astype(np.float32))
    carts, buys = session_yield(w, s, weight)
    if lives.expected[rows].sum() <= 0:
        return 1.0
    return float(np.average(1 + carts + buys, weights=lives.expected[rows]))


def draw_sessions(w: World, rows: np.ndarray, rate: np.ndarray, first_day: int, origin: int,
                  rng: np.random.Generator,
                  utility: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
                  ) -> list[tuple[np.ndarray, ...]]:
    """The sessions of the users ``rows`` on the days ``first_day + column`` of ``rate`` (the
    expected sessions per user and day; 0 where inactive) and the views, carts and buys they
    lead to, as (user, item, ts, kind) parts, one per kind. ``utility(positions)`` gives the
    utilities and choice weights (:func:`utilities`) of those rows: only users with a session
    need them."""
    p = w.params
    who = np.repeat(np.arange(len(rows)), rng.poisson(rate.sum(axis=1)))
    day = first_day + sample_rows(rate, who, rng)
    act, pos = np.unique(who, return_inverse=True)
    s, weight = utility(act)
    item = sample_choice(weight, pos, rng)
    cart_p, buy_p = funnel(p, s[pos, item].astype(np.float64) - w.item_bias[item])
    cart = rng.random(len(who)) < cart_p
    buy = cart & (rng.random(len(who)) < buy_p)
    hour_p = np.asarray(HOURLY) / sum(HOURLY)
    sec = rng.choice(24, len(who), p=hour_p) * 3600 + rng.integers(0, 3600, len(who))
    view_ts = origin + day * DAY + sec
    cart_ts = view_ts + 1 + rng.exponential(300, len(who)).astype(np.int64)
    buy_ts = cart_ts + 1 + rng.exponential(900, len(who)).astype(np.int64)
    user = rows[who]
    return [(user[keep], item[keep], ts[keep], np.full(len(user[keep]), code, dtype=np.int8))
            for code, keep, ts in ((VIEW, slice(None), view_ts), (CART, cart, cart_ts),
                                   (BUY, buy, buy_ts))]


def _rows(s: np.ndarray, weight: np.ndarray, act: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return _take(s, act), _take(weight, act)


def _take(a: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``a[rows]``, without the copy when ``rows`` (sorted, unique) are all of them."""
    return a if len(rows) == len(a) else a[rows]


@dataclass
class Stream:
    """The user->item events (``kind``: VIEW, CART, BUY) and per-user truths of the stream:
    log-sum-exp of the utilities and P(no purchase in the horizon)."""

    user: np.ndarray
    item: np.ndarray
    ts: np.ndarray
    kind: np.ndarray
    logsumexp: np.ndarray
    p_no_purchase: np.ndarray


BLOCKS_PER_TASK = 64
"""Blocks of users (each with its own random stream) per partition of :func:`draw_stream`."""


@dataclass(frozen=True)
class _Shop:
    """What every partition of the stream needs."""

    world: World
    lives: Lives
    season: np.ndarray
    scale: float
    days: int
    origin: int
    seed: int
    step: int


def draw_stream(w: World, lives: Lives, season: np.ndarray, scale: float, days: int,
                origin: int, seed: int, engine: Engine | None = None,
                on_progress: Callable[[int, int], None] | None = None) -> Stream:
    """Sessions, views, carts and buys of every user (stage 3 of the seed's streams).

    Users go in blocks of about :data:`CELLS` utilities, each block drawing from its own
    stream, and :data:`BLOCKS_PER_TASK` blocks make a partition of ``engine`` (default: this
    process), so the result is the same whichever engine ran it. ``on_progress(done, total)``
    is called with the users drawn so far.
    """
    n, span = len(w.join_day), len(season)
    step = max(16, CELLS // max(len(w.item_bias), span))
    shop = _Shop(w, lives, season, scale, days, origin, seed, step)
    blocks = -(-n // step)
    tasks = (range(b, min(blocks, b + BLOCKS_PER_TASK))
             for b in range(0, blocks, BLOCKS_PER_TASK))
    parts: list[tuple[np.ndarray, ...]] = []
    lse, no_buy = [], []
    for events, block_lse, block_no_buy in (engine or LocalEngine()).map(_stream_blocks, shop,
                                                                          tasks):
        parts += events
        lse.append(block_lse)
        no_buy.append(block_no_buy)
        if on_progress:
            on_progress(sum(map(len, lse)), n)
    user, item, ts, kind = (np.concatenate(c) for c in zip(*parts))
    return Stream(user.astype(np.int64), item.astype(np.int64), ts.astype(np.int64), kind,
                  np.concatenate(lse), np.concatenate(no_buy))


def _stream_blocks(shop: _Shop, blocks: range
                   ) -> tuple[list[tuple[np.ndarray, ...]], np.ndarray, np.ndarray]:
    """The events of the users of ``blocks``, their log-sum-exps and P(no purchase).

    BLAS runs on one thread here: a threaded product splits the sums differently, so the
    utilities (and, rarely, a draw) would depend on where the partition ran.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _draw_blocks(shop, blocks)


def _draw_blocks(shop: _Shop, blocks: range
                 ) -> tuple[list[tuple[np.ndarray, ...]], np.ndarray, np.ndarray]:
    w, lives, season, days = shop.world, shop.lives, shop.season, shop.days
    p, n, span = w.params, len(w.join_day), len(season)
    t, item_f = np.arange(span), w.item_factors().astype(np.float32)
    first, stop = blocks.start * shop.step, min(n, blocks.stop * shop.step)
    lse, no_buy = np.zeros(stop - first), np.ones(stop - first)
    parts: list[tuple[np.ndarray, ...]] = []
    for b in blocks:
        rng = rng_for(shop.seed, 3, b)
        rows = np.arange(b * shop.step, min(n, (b + 1) * shop.step))
        e = w.engagement(rows, t)
        death = lives.death_day[rows, None]
        rate = shop.scale * e * season[None, :] * (t[None, :] >= w.join_day[rows, None])
        active = np.where(t[None, :] < death, rate, 0.0)
        s, weight, lse[rows - first] = utilities(w, rows, item_f)
        parts += draw_sessions(w, rows, active, 0, shop.origin, rng,
                               partial(_rows, s, weight))
        # P(no purchase in [days, span)): each active day first buys with prob 1 - e^-mu,
        # then churns with the hazard; churned users never buy again.
        live = np.flatnonzero(death[:, 0] > days)
        _, buys = session_yield(w, _take(s, live), _take(weight, live))
        alive, stay = np.ones(len(live)), np.zeros(len(live))
        h = hazard(e[live, days:], p)
        for j in range(span - days):
            alive *= np.exp(-rate[live, days + j] * buys)
            stay += alive * h[:, j]
            alive *= 1 - h[:, j]
        no_buy[rows[live] - first] = stay + alive
    return parts, lse, no_buy
