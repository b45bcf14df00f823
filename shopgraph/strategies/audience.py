"""Ad audiences: a ranked list of users for one campaign, with a random control group held out.

Ranking. Each candidate may carry ``retrieval_score`` (user embedding against the campaign's
items), ``response_proba`` (:mod:`~shopgraph.strategies.response`) and ``churn_risk``. The
scores live on different scales, so each is turned into its percentile rank among the eligible
candidates, ``pct_k`` in (0, 1] (ties share the average rank; a missing value counts as 0.5,
neither for nor against), and blended with weights ``w_k``:

.. math::
    \\text{score}(u) = \\frac{\\sum_k w_k \\, \\text{pct}_k(u)}{\\sum_k |w_k|}

A negative weight favours low values: ``churn_risk: +1`` makes a win-back campaign that prefers
users about to leave, ``churn_risk: -1`` a campaign that leaves them alone. The ``n`` best
(ties broken by user id) form the audience.

Control group. A user is held out when ``h(campaign, seed, user) < control_share``, where
``h`` reads the first 8 bytes of ``SHA-256("<campaign>:<seed>:<user>")`` as a big-endian integer
divided by 2**64, a uniform draw in [0, 1). It depends on neither the score nor the other users,
so the control group is a random sample of the audience (the same users for any ``n``) and a
re-run with the same seed reproduces it exactly. The send is the audience minus the control.

Consent. Users whose ``consent`` is false are left out entirely: not sent, and not in the
control group either, which must be a sample of users the campaign could have contacted. With
``require_consent`` users with unknown consent are left out too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

COMPONENTS = ("retrieval_score", "response_proba", "churn_risk")
DEFAULT_WEIGHTS: dict[str, float] = {"retrieval_score": 1.0, "response_proba": 1.0,
                                     "churn_risk": 0.0}
TREATMENT, CONTROL = "treatment", "control"


def control_draw(user_ids: Iterable[object], campaign_id: str, seed: int | str = 0
                 ) -> np.ndarray:
    """Each user's uniform draw in [0, 1) for ``campaign_id`` (see the module docstring)."""
    prefix = f"{campaign_id}:{seed}:"
    return np.array([int.from_bytes(hashlib.sha256(f"{prefix}{u}".encode()).digest()[:8],
                                    "big") / 2.0**64 for u in user_ids], dtype=float)


def assign_control(user_ids: Iterable[object], campaign_id: str, share: float,
                   seed: int | str = 0) -> np.ndarray:
    """True for the users held out of ``campaign_id``'s send (about ``share`` of them)."""
    if not 0.0 <= share < 1.0:
        raise ValueError(f"control share must be in [0, 1), got {share}")
    return control_draw(user_ids, campaign_id, seed) < share


def eligible(candidates: pd.DataFrame, consent: pd.Series | None = None,
             require_consent: bool = False) -> pd.Series:
    """True for candidates that may be contacted: consent not false (and known, if required).

    Args:
        candidates: has ``user_id`` and optionally a ``consent`` column.
        consent: consent per user id (e.g. ``user_features(...)["consent"]``), used where the
            candidates have no ``consent`` column.
        require_consent: also leave out users whose consent is unknown.
    """
    if "consent" in candidates:
        given = candidates["consent"]
    elif consent is not None:
        given = pd.Series(consent.reindex(candidates["user_id"].astype(str)).to_numpy(),
                          index=candidates.index)
    else:
        given = pd.Series(None, index=candidates.index, dtype=object)
    known = given.notna()
    yes = known & given.astype(object).where(known, False).map(_truthy)
    no = known & ~yes
    return yes if require_consent else ~no


def _truthy(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "y", "t")
    return bool(value)


def blend(candidates: pd.DataFrame, weights: Mapping[str, float]) -> np.ndarray:
    """The weighted percentile blend of the module docstring, one value per candidate."""
    unknown = set(weights) - set(COMPONENTS)
    if unknown:
        raise ValueError(f"unknown score components {sorted(unknown)}; use {COMPONENTS}")
    used = {k: float(w) for k, w in weights.items() if w and k in candidates}
    if not used:
        raise ValueError(f"no score to rank by: the candidates need one of {COMPONENTS} with a "
                         f"non-zero weight (weights {dict(weights)}, columns "
                         f"{list(candidates.columns)})")
    total = np.zeros(len(candidates))
    for col, w in used.items():
        values = pd.to_numeric(candidates[col], errors="coerce")
        pct = values.rank(pct=True, method="average").fillna(0.5).to_numpy(dtype=float)
        total += w * pct
    return total / sum(abs(w) for w in used.values())


def rank_audience(candidates: pd.DataFrame, campaign_id: str, *, n: int | None = None,
                  weights: Mapping[str, float] | None = None, control_share: float = 0.1,
                  seed: int | str = 0, consent: pd.Series | None = None,
                  require_consent: bool = False, value: float = 1.0) -> pd.DataFrame:
    """The ranked audience of ``campaign_id``, the control group marked.

    Args:
        candidates: one row per user: ``user_id`` plus any of :data:`COMPONENTS`, optionally
            ``consent``, ``offer`` (the chosen offer) and ``value`` (worth of a response).
        campaign_id: the campaign; also salts the control draw.
        n: audience size, control group included (all eligible candidates when None).
        weights: component weights (default :data:`DEFAULT_WEIGHTS`); missing columns count 0.
        control_share: expected share of the audience held out, in [0, 1).
        seed: salts the control draw; the same seed gives the same control group.
        consent: consent per user id, where ``candidates`` has no ``consent`` column.
        require_consent: leave out users whose consent is unknown too.
        value: worth of one response, where ``candidates`` has no ``value`` column.

    Returns:
        Columns ``campaign_id, rank, user_id, [offer], score, <components present>,
        expected_value, arm`` (``treatment`` or ``control``), best first. ``expected_value`` is
        ``response_proba * value`` (NaN without a response probability). ``attrs`` records
        the counts of candidates, consent exclusions, send and control.

    Raises:
        ValueError: bad arguments, no ``user_id`` column, duplicate users or nothing to rank by.
    """
    if "user_id" not in candidates:
        raise ValueError("candidates need a user_id column")
    if n is not None and n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if not 0.0 <= control_share < 1.0:
        raise ValueError(f"control_share must be in [0, 1), got {control_share}")
    ids = candidates["user_id"].astype(str)
    if ids.duplicated().any():
        raise ValueError(f"user {ids[ids.duplicated()].iloc[0]!r} appears twice among the "
                         "candidates; give one row per user")
    ok = eligible(candidates, consent, require_consent).to_numpy(dtype=bool)
    pool = candidates.loc[ok].copy()
    pool["user_id"] = pool["user_id"].astype(str)
    pool["score"] = blend(pool, DEFAULT_WEIGHTS if weights is None else weights)
    pool = pool.sort_values(["score", "user_id"], ascending=[False, True], kind="stable")
    if n is not None:
        pool = pool.head(n)
    held = assign_control(pool["user_id"], str(campaign_id), control_share, seed)
    worth = pd.to_numeric(pool["value"], errors="coerce") if "value" in pool else value
    proba = (pd.to_numeric(pool["response_proba"], errors="coerce") if "response_proba" in pool
             else np.nan)
    out = pd.DataFrame({"campaign_id": str(campaign_id), "rank": np.arange(1, len(pool) + 1),
                        "user_id": pool["user_id"].to_numpy()})
    if "offer" in pool:
        out["offer"] = pool["offer"].to_numpy()
    out["score"] = pool["score"].to_numpy()
    for col in COMPONENTS:
        if col in pool:
            out[col] = pd.to_numeric(pool[col], errors="coerce").to_numpy(dtype=float)
    out["expected_value"] = np.asarray(proba * worth, dtype=float) * np.ones(len(pool))
    out["arm"] = np.where(held, CONTROL, TREATMENT)
    out.attrs.update({"candidates": len(candidates), "no_consent": int((~ok).sum()),
                      "send": int((~held).sum()), "control": int(held.sum()),
                      "control_share": control_share, "seed": seed})
    return out
