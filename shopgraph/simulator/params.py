"""The simulator's knobs: user types, their offer effects, and the shop's constants.

Every number of the generative model (``docs/simulator.md``) lives in :class:`SimParams`, so an
experiment can change one (``SimParams(effects=...)``) and the truth file records them all.
Per-type tuples follow :data:`TYPES`; ``effects`` rows follow :data:`TYPES`, columns
:data:`OFFERS`. Feature tables give P(level | type), rows :data:`TYPES`, columns the levels.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

#: Hidden user types: two persuadable ones, two an offer does not move, one it annoys.
TYPES = ("deal_seeker", "convenience", "loyal", "indifferent", "annoyed")
#: Offer types of the randomised campaign, one arm each.
OFFERS = ("discount", "bogo", "free_shipping", "informational")
ARMS = ("control", *OFFERS)
#: Arms of a round (``rounds.py``), the columns of its true values: no offer first.
ROUND_ARMS = ("none", *OFFERS)
#: Levels of the categorical ``User`` properties (Hillstrom's where it has them).
LEVELS = {
    "channel": ("Web", "Phone", "Multichannel"),
    "zip_code": ("Urban", "Suburban", "Rural"),
    "age": ("18-24", "25-34", "35-44", "45-54", "55-64", "65+"),
    "income": ("<35K", "35-74K", "75-124K", "125K+"),
}
CATEGORY_NAMES = (
    "Apparel", "Shoes", "Electronics", "Home", "Beauty", "Toys", "Sports", "Books", "Grocery",
    "Garden", "Kitchen", "Jewellery", "Music", "Pets", "Office", "Health", "Baby", "Outdoor",
    "Games", "Tools", "Auto", "Crafts", "Bags", "Watches")
WEEKLY = (0.95, 0.92, 0.93, 0.97, 1.05, 1.12, 1.06)  # Monday .. Sunday
HOURLY = (0.3, 0.2, 0.1, 0.1, 0.1, 0.2, 0.4, 0.7, 0.9, 1.0, 1.1, 1.2,
          1.4, 1.3, 1.1, 1.0, 1.0, 1.1, 1.3, 1.6, 1.8, 1.7, 1.2, 0.6)
ORIGIN = "2025-01-01"  # day 0, UTC midnight


@dataclass(frozen=True)
class SimParams:
    """Parameters of the generative model (defaults give a plausible shop; see the docs)."""

    dim: int = 16                      # d, taste dimensions
    taste_scale: float = 3.0           # tau, weight of u.v in the utility
    fav_weights: tuple[float, float] = (0.85, 0.45)  # first and second favourite category
    user_noise: float = 0.5            # sd * sqrt(d) of a user's own taste
    item_noise: float = 1.0            # sd * sqrt(d) of an item around its category
    bias_sd: float = 0.8               # sd of the item popularity b_i
    price_mu: float = 3.4              # mean log price (about $30)
    price_cat_sd: float = 0.6          # sd of a category's log price level
    price_item_sd: float = 0.5         # sd of an item's log price in its category
    type_share: tuple[float, ...] = (0.25, 0.20, 0.20, 0.20, 0.15)
    activity: tuple[float, ...] = (1.0, 0.9, 1.8, 0.45, 1.0)      # engagement at joining
    activity_sd: float = 0.6           # sd of log engagement at joining
    price_sensitivity: tuple[float, ...] = (1.6, 0.7, 0.3, 0.8, 0.8)  # gamma
    decay: tuple[float, ...] = (0.6, 0.6, 0.3, 1.5, 0.8)  # mean decay of log engagement, /year
    existing_share: float = 0.6        # users who joined before day 0 (tenure up to 2 years)
    consent_rate: float = 0.96
    hazard_bias: float = -6.5          # theta_0: daily churn logit at engagement 1
    hazard_slope: float = 1.0          # theta_1: per unit of -log engagement
    cart_bias: float = -3.3            # P(cart | view) = sigma(a_c + k_c m)
    cart_slope: float = 0.5
    buy_bias: float = -1.2             # P(buy | cart) = sigma(a_b + k_b m)
    buy_slope: float = 0.3
    yearly_amplitude: float = 0.2      # seasonality peak in mid-December
    black_friday: float = 0.6          # extra traffic over the Black Friday weekend
    campaign_bias: float = -2.0        # eta's intercept
    campaign_base: tuple[float, ...] = (-0.3, -0.3, 1.2, -1.5, 0.0)  # eta per type
    engagement_weight: float = 0.5     # eta's weight of log engagement
    affinity_weight: float = 0.4       # eta's weight of the standardised promo affinity
    visit_lift: float = 1.5            # visit logit = eta + lift + effect / 2
    effects: tuple[tuple[float, ...], ...] = (   # log-odds effect, types x offers
        (1.2, 1.0, 0.3, 0.0),
        (0.3, 0.2, 1.2, 0.1),
        (0.0, 0.0, 0.0, 0.0),
        (0.0, 0.0, 0.0, 0.0),
        (-0.7, -0.7, -0.7, -1.0))
    effect_spread: float = 0.25        # sd of the log of a user's effect multiplier
    newsletter_share: float = 0.4      # campaign-0 goes to this share of the most engaged
    annoyance: float = 0.5             # rounds: log-engagement lost per unit of -Delta_uo > 0
    promo_items: int = 60              # most items an offer applies to
    channel: tuple[tuple[float, ...], ...] = (
        (0.70, 0.10, 0.20), (0.25, 0.15, 0.60), (0.40, 0.20, 0.40), (0.50, 0.35, 0.15),
        (0.20, 0.65, 0.15))
    zip_code: tuple[tuple[float, ...], ...] = (
        (0.45, 0.45, 0.10), (0.15, 0.30, 0.55), (0.40, 0.45, 0.15), (0.40, 0.45, 0.15),
        (0.35, 0.45, 0.20))
    age: tuple[tuple[float, ...], ...] = (
        (0.25, 0.35, 0.20, 0.10, 0.06, 0.04), (0.10, 0.25, 0.30, 0.20, 0.10, 0.05),
        (0.05, 0.20, 0.30, 0.25, 0.12, 0.08), (0.20, 0.25, 0.20, 0.15, 0.10, 0.10),
        (0.03, 0.07, 0.15, 0.20, 0.25, 0.30))
    income: tuple[tuple[float, ...], ...] = (
        (0.45, 0.35, 0.15, 0.05), (0.15, 0.35, 0.35, 0.15), (0.10, 0.30, 0.35, 0.25),
        (0.30, 0.35, 0.25, 0.10), (0.20, 0.35, 0.30, 0.15))

    def __post_init__(self) -> None:
        k = len(TYPES)
        for name in ("type_share", "activity", "price_sensitivity", "decay", "campaign_base",
                     "effects", *LEVELS):
            if len(getattr(self, name)) != k:
                raise ValueError(f"{name} needs one entry per user type {TYPES}, got "
                                 f"{len(getattr(self, name))}")
        if self.annoyance < 0:
            raise ValueError(f"annoyance must be at least 0, got {self.annoyance}")
        if any(len(row) != len(OFFERS) for row in self.effects):
            raise ValueError(f"each effects row needs one entry per offer {OFFERS}")
        for name, levels in LEVELS.items():
            if any(len(row) != len(levels) for row in getattr(self, name)):
                raise ValueError(f"each {name} row needs one probability per level {levels}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SimParams:
        """The parameters of :meth:`to_json`'s dict (lists become tuples again); a key this
        version does not know is an error, one it added keeps its default."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown simulator parameters {unknown}; was the shop written by "
                             "a newer shopgraph?")

        def frozen(v: Any) -> Any:
            return tuple(frozen(x) for x in v) if isinstance(v, list) else v

        return cls(**{k: frozen(v) for k, v in values.items()})

    def to_json(self) -> str:
        """The parameters as a JSON object (tuples become lists)."""
        return json.dumps(asdict(self), sort_keys=True)
