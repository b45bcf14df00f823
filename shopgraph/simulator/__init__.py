"""A seeded shop simulator with known ground truth (``shopgraph simulate``), and rounds in which
it answers a plan (``rounds.py``); see ``docs/simulator.md``."""

from shopgraph.simulator.generate import simulate
from shopgraph.simulator.params import ARMS, OFFERS, TYPES, SimParams
from shopgraph.simulator.rounds import (
    ROUND_ARMS,
    RoundContext,
    RoundOutcome,
    answer_round,
    open_round,
    oracle_policy,
    policy_value,
    round_truth,
    true_values,
)
from shopgraph.simulator.truth import load_truth, true_scores, true_top_k

__all__ = ["ARMS", "OFFERS", "ROUND_ARMS", "TYPES", "RoundContext", "RoundOutcome", "SimParams",
           "answer_round", "load_truth", "open_round", "oracle_policy", "policy_value",
           "round_truth", "simulate", "true_scores", "true_top_k", "true_values"]
