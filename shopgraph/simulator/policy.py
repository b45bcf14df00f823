"""The true value of a policy on a round: :math:`\\sum_u \\sum_a \\pi_{ua} (V_{ua} - c_a)`,
with :math:`V` the round's true expected net spend per user and arm (``rounds.true_values``:
arm 0 is no offer, worth 0) and :math:`c_a` the cost of one send of arm :math:`a`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from shopgraph.simulator.params import ROUND_ARMS


def policy_value(true_matrix: np.ndarray, action_probs: np.ndarray,
                 costs: Mapping[str, float] | Sequence[float] | np.ndarray) -> float:
    """The true expected net value :math:`\\sum_u \\sum_a \\pi_{ua} (V_{ua} - c_a)` of a
    stochastic policy.

    Args:
        true_matrix: ``rounds.true_values`` (users x arms, arm 0 = no offer).
        action_probs: the policy's probabilities, same shape, rows summing to 1.
        costs: cost per send of each arm, as a sequence over the arms (arm 0 costs nothing) or
            a mapping from offer name (a missing offer costs 0).
    """
    v, pi = np.asarray(true_matrix, dtype=float), np.asarray(action_probs, dtype=float)
    if v.ndim != 2 or pi.shape != v.shape:
        raise ValueError(f"action_probs must have the true matrix's shape {v.shape}, got "
                         f"{pi.shape}")
    if (pi < 0).any() or not np.allclose(pi.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("action_probs must be non-negative with every row summing to 1")
    c = arm_costs(costs, v.shape[1])
    return float((pi * (v - c[None, :])).sum())


def oracle_policy(true_matrix: np.ndarray,
                  costs: Mapping[str, float] | Sequence[float] | np.ndarray) -> np.ndarray:
    """The one-hot policy that gives each user the arm of best true net value (ties: the
    first arm, so no offer when nothing pays)."""
    v = np.asarray(true_matrix, dtype=float)
    best = np.argmax(v - arm_costs(costs, v.shape[1])[None, :], axis=1)
    policy: np.ndarray = np.eye(v.shape[1])[best]
    return policy


def arm_costs(costs: Mapping[str, float] | Sequence[float] | np.ndarray, arms: int
              ) -> np.ndarray:
    """Costs per arm as a vector: arm 0 (no offer) is 0."""
    if isinstance(costs, Mapping):
        return np.array([0.0, *(float(costs.get(o, 0.0)) for o in ROUND_ARMS[1:arms])])
    c = np.asarray(costs, dtype=float)
    if c.shape != (arms,) or c[0] != 0:
        raise ValueError(f"costs must give one cost per arm ({arms}), the first (no offer) 0; "
                         f"got {c.tolist()}")
    return c
