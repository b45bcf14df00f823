"""A seeded shop simulator with known ground truth (``shopgraph simulate``); see
``docs/simulator.md``."""

from shopgraph.simulator.generate import simulate
from shopgraph.simulator.params import ARMS, OFFERS, TYPES, SimParams
from shopgraph.simulator.truth import load_truth, true_scores, true_top_k

__all__ = ["ARMS", "OFFERS", "TYPES", "SimParams", "load_truth", "simulate", "true_scores",
           "true_top_k"]
