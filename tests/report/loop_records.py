"""Two rounds of ``shopgraph loop`` on a simulated shop, as the loop's state file records them.

Copied from a real run (``loop/state.json``, rounds w01 and w02) and trimmed: the readout keeps
the revenue comparison and the SRM check, the off-policy estimates keep IPS and DR.
"""

from __future__ import annotations

import copy
from typing import Any

_ROUNDS: list[dict[str, Any]] = [
    {"round": "w01", "campaign": "round-w01", "policy": "thompson", "users": 1308,
     "sends": {"discount": 2, "bogo": 4, "free_shipping": 4, "informational": 67},
     "control": 137, "cost": 49.400000000000006, "estimated_value": -40.223517698992254,
     "readout": {"control": "control", "level": 0.95, "comparisons": [
         {"treatment": "policy", "control": "control", "n_treatment": 1171, "n_control": 137,
          "revenue": {"metric": "revenue", "treatment_mean": 1.8813834329632793,
                      "control_mean": 1.823211678832117,
                      "difference": {"diff": 0.05817175413116216, "se": 0.6207597147300723,
                                     "ci_low": -1.1677872126292959,
                                     "ci_high": 1.2841307208916202,
                                     "p_value": 0.9254565554924934}}}],
         "srm": {"checkable": False, "observed": {"control": 137, "policy": 1171},
                 "expected_shares": None, "chi2": None, "p_value": None, "threshold": 0.001,
                 "flagged": False}},
     "ope_policy": {
         "ips": {"value": 16.97854996045376, "ci_low": -101.4739283548639,
                 "ci_high": 158.0572988399685, "se": 67.17443160170775, "ess": 1308.0},
         "dr": {"value": 13.977746716084527, "ci_low": -100.92915992971591,
                "ci_high": 167.28769059319586, "se": 68.3082008314641, "ess": 1308.0}},
     "ope_greedy": {
         "ips": {"value": 0.0, "ci_low": 0.0, "ci_high": 0.0, "se": 0.0,
                 "ess": 1231.0000000000002},
         "dr": {"value": 0.0, "ci_low": 0.0, "ci_high": 0.0, "se": 0.0,
                "ess": 1231.0000000000002}},
     "truth": {"policy_value": -42.237871233144716, "realised_value": -57.23293595006051,
               "greedy_value": 0.0},
     "seconds": 35.3},
    {"round": "w02", "campaign": "round-w02", "policy": "thompson", "users": 1291,
     "sends": {"discount": 2, "bogo": 5, "free_shipping": 3, "informational": 61},
     "control": 129, "cost": 51.2, "estimated_value": -34.310688567992884,
     "readout": {"control": "control", "level": 0.95, "comparisons": [
         {"treatment": "policy", "control": "control",
          "revenue": {"metric": "revenue",
                      "difference": {"diff": 0.5416505890672325, "se": 0.6151488462490439,
                                     "ci_low": -0.6725420042669998,
                                     "ci_high": 1.7558431824014649,
                                     "p_value": 0.3798036856775834}}}],
         "srm": {"checkable": False, "observed": {"control": 129, "policy": 1162},
                 "threshold": 0.001, "flagged": False}},
     "ope_policy": {
         "ips": {"value": 55.78046664909091, "ci_low": -102.18470359873398,
                 "ci_high": 251.8873685736889, "se": 93.2510115726262, "ess": 1291.0},
         "dr": {"value": 43.24639029531544, "ci_low": -127.03630846633847,
                "ci_high": 242.28982983937115, "se": 92.60060250161986, "ess": 1291.0}},
     "ope_greedy": {
         "ips": {"value": 1833.1463119338391, "ci_low": -1196.8762777113686,
                 "ci_high": 5723.119546993818, "se": 1764.8904004155945,
                 "ess": 78.53477066314792},
         "dr": {"value": 1521.3113802414032, "ci_low": -1637.593348595171,
                "ci_high": 5336.7836419154555, "se": 1739.7059726314656,
                "ess": 78.53477066314792}},
     "truth": {"policy_value": -42.68939897926873, "realised_value": -54.027105387931506,
               "greedy_value": -358.0866550915068},
     "seconds": 14.2},
]


def two_rounds(*, truth: bool = True) -> list[dict[str, Any]]:
    """A fresh copy of the two records; ``truth=False`` drops the simulator's truth (a real
    shop)."""
    rounds = copy.deepcopy(_ROUNDS)
    if not truth:
        for r in rounds:
            del r["truth"]
    return rounds
