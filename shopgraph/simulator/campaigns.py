"""The past campaigns: a targeted newsletter (``campaign-0``, not randomised) and a randomised
offer test (``campaign-1``: one arm per offer type and a control arm held out).

A user's chance to buy a promoted item during a campaign, without and with offer :math:`o`:

.. math::

    \\eta_u = \\alpha + \\beta_{\\text{type}(u)} + w_e \\log e_u(t_0) + w_a z_u, \\qquad
    \\Delta_{uo} = m_u\\, \\Delta_{\\text{type}(u), o}

    P(\\text{convert} \\mid o) = \\sigma(\\eta_u + \\Delta_{uo}), \\qquad
    P(\\text{visit} \\mid o) = \\sigma(\\eta_u + \\ell + \\Delta_{uo} / 2)

with :math:`z_u` the standardised log share of the promoted items in the user's choice model
(:math:`\\operatorname{lse}_{i \\in \\text{promo}} s_{ui} - \\operatorname{lse}_i s_{ui}`) and
:math:`\\Delta_{\\cdot, \\text{control}} = 0`. One uniform draw decides both outcomes, so
converters are visitors. A visit views one promoted item (drawn from the choice model restricted
to them); a conversion carts and buys it at the offer's terms (:data:`TERMS`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, logsumexp

from shopgraph.simulator.params import ARMS, OFFERS, SimParams
from shopgraph.simulator.stream import BUY, CART, DAY, VIEW, sample_rows
from shopgraph.simulator.world import World, rng_for

#: offer -> (name, reward, difficulty): reward in dollars to the customer; bogo's reward is
#: the second item (its nominal reward is the promoted items' median price).
TERMS = {"discount": ("$5 off orders of $20", 5.0, 20.0),
         "bogo": ("Buy one, get one free", np.nan, 0.0),
         "free_shipping": ("Free shipping", 4.99, 0.0),
         "informational": ("New season, new picks", 0.0, 0.0)}
SEND_HOUR = 9


@dataclass(frozen=True)
class Campaign:
    """One campaign: its id, days (epoch days; ``end`` inclusive) and promoted items."""

    id: str
    name: str
    type: str
    start: int
    end: int
    items: np.ndarray


def promoted(w: World, categories: int, limit: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``limit`` random items of ``categories`` random categories, sorted."""
    cats = rng.choice(len(w.category_names), min(categories, len(w.category_names)),
                      replace=False)
    pool = np.flatnonzero(np.isin(w.item_category, cats))
    return np.sort(rng.choice(pool, min(limit, len(pool)), replace=False))


def arm_values(w: World, items: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per promoted item and arm (:data:`ARMS`): spend, quantity and the reward completed
    (NaN: the offer is not completed)."""
    price = w.price[items]
    spend, qty = np.repeat(price[:, None], len(ARMS), 1), np.ones((len(items), len(ARMS)))
    reward = np.full((len(items), len(ARMS)), np.nan)
    d, b, f = (ARMS.index(o) for o in ("discount", "bogo", "free_shipping"))
    ok = price >= TERMS["discount"][2]
    spend[:, d] = np.where(ok, price - TERMS["discount"][1], price)
    reward[:, d] = np.where(ok, TERMS["discount"][1], np.nan)
    qty[:, b], reward[:, b] = 2, price
    reward[:, f] = TERMS["free_shipping"][1]
    return spend, qty, reward


def baseline(w: World, camp: Campaign, lse: np.ndarray, seed: int, stage: int,
             shift: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``eta`` of every user at the campaign's start, the expected value of each arm given a
    conversion, and one promoted item per user (drawn from the restricted choice model).
    ``shift``: each user's log-engagement lost to earlier offers (the rounds' state; default
    none)."""
    p, n = w.params, len(lse)
    spend, _, _ = arm_values(w, camp.items)
    item_f = w.item_factors()[camp.items]
    aff, value, pick = np.zeros(n), np.zeros((n, len(ARMS))), np.zeros(n, dtype=np.int64)
    step = 100_000
    for b, start in enumerate(range(0, n, step)):
        rows = np.arange(start, min(n, start + step))
        s = w.user_factors(rows) @ item_f.T
        top = logsumexp(s, axis=1)
        q = np.exp(s - top[:, None])
        aff[rows] = top - lse[rows]
        value[rows] = q @ spend
        pick[rows] = camp.items[sample_rows(q, np.arange(len(rows)),
                                            rng_for(seed, stage, 1, b))]
    z = (aff - aff.mean()) / (aff.std() or 1.0)
    e = w.engagement(slice(None), np.array([camp.start]))[:, 0]
    if shift is not None:
        e = e * np.exp(shift)
    eta = (p.campaign_bias + np.asarray(p.campaign_base)[w.user_type]
           + p.engagement_weight * np.log(e) + p.affinity_weight * z)
    return eta, value, pick


def arm_probabilities(p: SimParams, eta: np.ndarray, delta: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """P(visit) and P(convert) per user and arm, from ``eta`` (users) and the offer effects
    ``delta`` (users x arms, control first and 0)."""
    return expit(eta[:, None] + p.visit_lift + delta / 2), expit(eta[:, None] + delta)


def offer_effects(w: World) -> np.ndarray:
    """``Delta_uo`` per user and arm (:data:`ARMS`: control first, 0)."""
    effect = np.asarray(w.params.effects)[w.user_type] * w.effect_mult[:, None]
    return np.hstack([np.zeros((len(effect), 1)), effect])


def eligible(w: World, death: np.ndarray, day: int) -> np.ndarray:
    """Users a campaign starting on ``day`` may contact: joined before, active, consenting."""
    ok: np.ndarray = (w.join_day < day) & (death > day) & w.consent
    return ok


@dataclass
class Outcome:
    """A campaign's participants (user indices), their arm (index into :data:`ARMS`) and what
    they did; ``events`` are the user->item events (user, item, ts, kind, value, quantity)."""

    users: np.ndarray
    arm: np.ndarray
    send_ts: np.ndarray
    visit_ts: np.ndarray      # -1: no visit
    buy_ts: np.ndarray        # -1: no conversion
    spend: np.ndarray         # NaN: no conversion
    reward: np.ndarray        # NaN: no offer completed
    events: tuple[np.ndarray, ...]


def run(w: World, camp: Campaign, users: np.ndarray, arm: np.ndarray, p_visit: np.ndarray,
        p_convert: np.ndarray, pick: np.ndarray, origin: int, seed: int, stage: int,
        send: np.ndarray | None = None, until: np.ndarray | None = None) -> Outcome:
    """Draw the participants' visits and conversions and the events they leave.

    A response happens at a uniform time in ``[send, until)`` per participant (epoch seconds;
    default: the first day's 09:00 send and the end of the campaign's last day).
    """
    rng = rng_for(seed, stage, 2)
    u = rng.random(len(users))
    visit = u < p_visit[users, arm]
    conv = u < p_convert[users, arm]
    item = pick[users]
    spend_t, qty_t, reward_t = arm_values(w, camp.items)
    at = np.searchsorted(camp.items, item)
    if send is None:
        send = np.full(len(users), origin + camp.start * DAY + SEND_HOUR * 3600)
    if until is None:
        until = np.full(len(users), origin + (camp.end + 1) * DAY)
    view_ts = send + (rng.random(len(users)) * (until - send)).astype(np.int64)
    cart_ts = view_ts + 1 + rng.exponential(300, len(users)).astype(np.int64)
    buy_ts = cart_ts + 1 + rng.exponential(900, len(users)).astype(np.int64)
    spend, qty = spend_t[at, arm], qty_t[at, arm]
    events = tuple(np.concatenate(c) for c in zip(*(
        (users[m], item[m], ts[m], np.full(int(m.sum()), k, np.int8),
         np.where(k == BUY, spend, np.nan)[m], np.where(k == BUY, qty, np.nan)[m])
        for k, m, ts in ((VIEW, visit, view_ts), (CART, conv, cart_ts), (BUY, conv, buy_ts)))))
    return Outcome(users, arm, send, np.where(visit, view_ts, -1),
                   np.where(conv, buy_ts, -1), np.where(conv, spend, np.nan),
                   np.where(conv, reward_t[at, arm], np.nan), events)


@dataclass
class Campaigns:
    """Both campaigns, their outcomes, and the offer test's truth per user and arm."""

    newsletter: Campaign
    test: Campaign
    newsletter_outcome: Outcome
    test_outcome: Outcome
    truth: dict[str, np.ndarray]


def draw_campaigns(w: World, death: np.ndarray, lse: np.ndarray, days: int, origin: int,
                   seed: int) -> Campaigns:
    """The newsletter 180 days and the offer test 75 days before the cutoff (stage 5)."""
    p, n = w.params, len(lse)
    rng = rng_for(seed, 5)
    news = Campaign("campaign-0", "Newsletter", "newsletter", days - 180, days - 174,
                    promoted(w, 1, p.promo_items // 2, rng))
    test = Campaign("campaign-1", "Offer test", "offer_test", days - 75, days - 62,
                    promoted(w, 2, p.promo_items, rng))
    delta = offer_effects(w)
    effect = delta[:, 1:]

    eta0, _, pick0 = baseline(w, news, lse, seed, 6)
    pv0, pc0 = arm_probabilities(p, eta0, delta)
    info = ARMS.index("informational")
    ok = np.flatnonzero(eligible(w, death, news.start))
    e0 = w.engagement(ok, np.array([news.start]))[:, 0]
    score = np.log(e0) + 0.5 * rng.standard_normal(len(ok))
    sent = np.sort(ok[np.argsort(-score, kind="stable")[: int(p.newsletter_share * len(ok))]])
    out0 = run(w, news, sent, np.full(len(sent), info), pv0, pc0, pick0, origin, seed, 6)

    eta, value, pick = baseline(w, test, lse, seed, 7)
    p_visit, p_convert = arm_probabilities(p, eta, delta)
    users = np.flatnonzero(eligible(w, death, test.start))
    arm = rng.integers(0, len(ARMS), len(users))
    out1 = run(w, test, users, arm, p_visit, p_convert, pick, origin, seed, 7)
    names = np.full(n, "", dtype=f"<U{max(map(len, ARMS))}")
    names[users] = np.asarray(ARMS)[arm]
    exposed = np.zeros(n, dtype=bool)
    exposed[sent] = True
    truth = {"campaign_arm": names, "p_visit": p_visit, "p_convert": p_convert,
             "value_if_converted": value, "effect_logit": effect,
             "newsletter_sent": exposed, "newsletter_p_convert": pc0[:, [0, info]]}
    assert effect.shape[1] == len(OFFERS)
    return Campaigns(news, test, out0, out1, truth)
