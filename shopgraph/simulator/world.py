"""The latent shop: items with tastes, categories and prices; users with a hidden type, a taste,
a price sensitivity, an engagement curve and the observable properties their type colours.

.. math::

    c_k \\sim \\text{unit}(\\mathcal N(0, I_d)), \\quad
    v_i = c_{k(i)} + \\tfrac{\\sigma_v}{\\sqrt d}\\,\\epsilon_i, \\quad
    u_u = w_1 c_{k_1(u)} + w_2 c_{k_2(u)} + \\tfrac{\\sigma_u}{\\sqrt d}\\,\\epsilon_u

    s_{ui} = \\tau\\, u_u^\\top v_i + b_i - \\gamma_u (\\log p_i - \\overline{\\log p}), \\qquad
    e_u(t) = a_u \\exp(-\\delta_u (t - j_u) / 365)

``s`` is the utility of the choice model (``stream.py``) and ``e`` the engagement that drives
both the visit rate and the churn hazard. ``s = U^T V`` with the augmented factors of
:meth:`World.user_factors` and :meth:`World.item_factors`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from shopgraph.simulator.params import CATEGORY_NAMES, LEVELS, ORIGIN, WEEKLY, SimParams


def rng_for(seed: int, *stage: int) -> np.random.Generator:
    """An independent stream per (seed, stage, block): results do not depend on call order."""
    return np.random.default_rng([seed, *stage])


@dataclass
class World:
    """Everything drawn before time starts; arrays are per user or per item."""

    params: SimParams
    user_type: np.ndarray        # int8 index into TYPES
    user_taste: np.ndarray       # (users, d)
    price_sensitivity: np.ndarray
    activity: np.ndarray         # a_u, engagement at joining (median user ~ 1)
    decay: np.ndarray            # delta_u, per year
    join_day: np.ndarray         # int; negative: joined before day 0
    consent: np.ndarray          # bool
    effect_mult: np.ndarray      # m_u, scales the type's offer effects
    features: dict[str, np.ndarray]   # categorical User properties (LEVELS)
    item_taste: np.ndarray       # (items, d)
    item_bias: np.ndarray
    item_category: np.ndarray    # int index into category_names
    price: np.ndarray
    category_names: list[str]

    @property
    def log_price(self) -> np.ndarray:
        """``log p_i`` centred on the catalogue's mean."""
        lp = np.log(self.price)
        centred: np.ndarray = lp - lp.mean()
        return centred

    def user_factors(self, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """``[tau u_u, 1, -gamma_u]``: with :meth:`item_factors`, ``s = U @ V.T``."""
        p = self.params
        u = self.user_taste[rows]
        return np.hstack([p.taste_scale * u, np.ones((len(u), 1)),
                          -self.price_sensitivity[rows, None]])

    def item_factors(self) -> np.ndarray:
        """``[v_i, b_i, log p_i - mean]``."""
        return np.hstack([self.item_taste, self.item_bias[:, None], self.log_price[:, None]])

    def engagement(self, rows: np.ndarray | slice, days: np.ndarray) -> np.ndarray:
        """``e_u(t)`` for the users ``rows`` (rows) and ``days`` (columns)."""
        age = (days[None, :] - self.join_day[rows, None]) / 365.0
        e: np.ndarray = self.activity[rows, None] * np.exp(
            -self.decay[rows, None] * np.maximum(age, 0))
        return e


def seasonality(days: np.ndarray, p: SimParams) -> np.ndarray:
    """Traffic multiplier per day: weekday x yearly wave (peak mid-December) x Black Friday."""
    origin = dt.date.fromisoformat(ORIGIN)
    dates = [origin + dt.timedelta(days=int(d)) for d in days]
    week = np.array([WEEKLY[d.weekday()] for d in dates])
    doy = np.array([d.timetuple().tm_yday for d in dates], dtype=float)
    yearly = 1 + p.yearly_amplitude * np.cos(2 * np.pi * (doy - 350) / 365.25)
    since = np.array([(d - _black_friday(d.year)).days for d in dates])
    bump = 1 + p.black_friday * ((since >= 0) & (since <= 3))  # Friday to Cyber Monday
    return week * yearly * bump


def _black_friday(year: int) -> dt.date:
    """The day after the fourth Thursday of November."""
    first = dt.date(year, 11, 1)
    thursday = first + dt.timedelta(days=(3 - first.weekday()) % 7 + 21)
    return thursday + dt.timedelta(days=1)


def _category_names(k: int) -> list[str]:
    n = len(CATEGORY_NAMES)
    return [CATEGORY_NAMES[i % n] + (f" {i // n + 1}" if i >= n else "") for i in range(k)]


def draw_world(p: SimParams, users: int, items: int, categories: int, days: int,
               seed: int) -> World:
    """Draw the catalogue and the customers (stage 1 of the seed's streams)."""
    rng = rng_for(seed, 1)
    d, k = p.dim, categories
    centres = rng.standard_normal((k, d))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    share = rng.dirichlet(np.full(k, 5.0))
    cat = np.concatenate([np.arange(k), rng.choice(k, items - k, p=share)])
    cat = rng.permutation(cat)
    item_taste = centres[cat] + p.item_noise / np.sqrt(d) * rng.standard_normal((items, d))
    level = p.price_mu + p.price_cat_sd * rng.standard_normal(k)
    price = np.exp(level[cat] + p.price_item_sd * rng.standard_normal(items))
    price = np.maximum(np.round(price, 0) - 0.01, 0.99)

    kind = rng.choice(len(p.type_share), users, p=np.asarray(p.type_share) / sum(p.type_share))
    fav = rng.dirichlet(np.full(k, 2.0))
    k1, k2 = rng.choice(k, users, p=fav), rng.choice(k, users, p=fav)
    taste = (p.fav_weights[0] * centres[k1] + p.fav_weights[1] * centres[k2]
             + p.user_noise / np.sqrt(d) * rng.standard_normal((users, d)))
    gamma = np.asarray(p.price_sensitivity)[kind] * np.exp(0.3 * rng.standard_normal(users))
    activity = np.asarray(p.activity)[kind] * np.exp(p.activity_sd * rng.standard_normal(users))
    decay = rng.exponential(np.asarray(p.decay)[kind])
    old = rng.random(users) < p.existing_share
    join = np.where(old, -rng.integers(1, 731, users), rng.integers(0, days, users))
    features = {}
    for name, levels in LEVELS.items():
        cum = np.cumsum(np.asarray(getattr(p, name)), axis=1)[kind]
        pick = (rng.random(users)[:, None] * cum[:, -1:] >= cum).sum(axis=1)
        features[name] = np.asarray(levels)[np.minimum(pick, len(levels) - 1)]
    return World(
        params=p, user_type=kind.astype(np.int8), user_taste=taste, price_sensitivity=gamma,
        activity=activity, decay=decay, join_day=join.astype(np.int64),
        consent=rng.random(users) < p.consent_rate,
        effect_mult=np.exp(p.effect_spread * rng.standard_normal(users)), features=features,
        item_taste=item_taste, item_bias=p.bias_sd * rng.standard_normal(items),
        item_category=cat.astype(np.int64), price=price, category_names=_category_names(k))
