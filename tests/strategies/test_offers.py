"""Budgeted offer selection: known optima, the constraints, the optimality report, bad input."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from shopgraph.errors import ShopgraphError
from shopgraph.strategies.offers import select_offers


def brute_force(values, costs, budget, caps=None, allowed=None):
    """The best total value over every assignment (each user: one offer or none)."""
    n, k = values.shape
    caps = np.full(k, n) if caps is None else np.asarray(caps)
    best = 0.0
    for pick in itertools.product(range(-1, k), repeat=n):
        pick = np.array(pick)
        on = pick >= 0
        if allowed is not None and not allowed[np.flatnonzero(on), pick[on]].all():
            continue
        if costs[pick[on]].sum() > budget + 1e-9:
            continue
        if (np.bincount(pick[on], minlength=k) > caps).any():
            continue
        best = max(best, values[np.flatnonzero(on), pick[on]].sum())
    return best


def everyone(n):
    return np.ones(n, dtype=bool)


def test_budget_binding_hand_case() -> None:
    values = np.array([[5.0, 8.0], [4.0, 1.0], [3.0, 6.0]])
    sel = select_offers(values, [1.0, 2.0], 3.0, consent=everyone(3), offers=["a", "b"])
    # b to user 0 (8, cost 2) + a to user 1 (4, cost 1) = 12 beats 8 + 3 and 6 + 5 + 4 (cost 4)
    assert sel.assignment.tolist() == [1, 0, -1]
    assert sel.labels().tolist() == ["b", "a", None]
    rep = sel.report
    assert rep.objective == pytest.approx(12.0) and rep.budget_used == pytest.approx(3.0)
    assert rep.counts == {"a": 1, "b": 1} and rep.users == 2
    assert rep.lp_bound >= rep.objective - 1e-9 and rep.gap >= 0


def test_lp_gap_is_reported_when_the_relaxation_is_fractional() -> None:
    sel = select_offers(np.array([[5.0], [4.0], [4.0]]), [2.0], 3.0, consent=everyone(3))
    rep = sel.report
    assert sel.assignment.tolist() == [0, -1, -1]
    assert rep.objective == pytest.approx(5.0)
    assert rep.lp_bound == pytest.approx(7.0)  # user 0 plus half of user 1
    assert rep.bound == pytest.approx(5.0) and rep.gap == pytest.approx(0.0)  # proven optimal
    assert "reduced-cost fixing" in rep.status


@pytest.mark.parametrize("seed", range(12))
def test_matches_brute_force_on_random_small_instances(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, k = 6, 3
    values = np.round(rng.normal(1.0, 2.0, size=(n, k)), 1)
    costs = rng.integers(1, 4, size=k).astype(float)
    budget = float(rng.integers(int(costs.min()), 10))
    caps = rng.integers(1, 4, size=k)
    allowed = rng.random((n, k)) > 0.2
    allowed[0] = True
    sel = select_offers(values, costs, budget, consent=everyone(n), eligible=allowed, caps=caps)
    assert sel.report.objective == pytest.approx(
        brute_force(np.where(values > 0, values, 0.0), costs, budget, caps, allowed), abs=1e-9)
    on = sel.assignment >= 0
    assert allowed[on, sel.assignment[on]].all()
    assert (values[on, sel.assignment[on]] > 0).all()
    assert costs[sel.assignment[on]].sum() <= budget + 1e-9
    assert (np.bincount(sel.assignment[on], minlength=k) <= caps).all()


@pytest.mark.parametrize("seed", range(3))
def test_reduced_cost_fixing_keeps_the_exact_optimum_of_a_direct_milp(seed: int) -> None:
    from scipy.optimize import Bounds, LinearConstraint, milp

    rng = np.random.default_rng(seed)
    n, k = 300, 3
    values = rng.integers(-2, 10, size=(n, k)).astype(float)
    costs, budget, caps = np.array([2.0, 3.0, 5.0]), 301.0, np.array([40, 60, 30])
    sel = select_offers(values, costs, budget, consent=everyone(n), caps=caps, mip_rel_gap=0)
    rows = [np.kron(np.eye(n), np.ones(k)), np.tile(costs, n)[None, :],
            np.tile(np.eye(k), n)]
    direct = milp(-np.where(values > 0, values, 0).ravel(), integrality=np.ones(n * k),
                  bounds=Bounds(0, 1), options={"mip_rel_gap": 0},
                  constraints=LinearConstraint(np.vstack(rows), -np.inf,
                                               np.r_[np.ones(n), budget, caps]))
    assert sel.report.objective == pytest.approx(-direct.fun)
    assert sel.report.lp_bound > sel.report.objective  # the LP relaxation was fractional
    assert sel.report.gap == pytest.approx(0.0, abs=1e-9)


def test_caps_bind() -> None:
    values = np.array([[9.0, 1.0], [8.0, 2.0], [7.0, 3.0]])
    sel = select_offers(values, [1.0, 1.0], 10.0, consent=everyone(3), caps=[1, 5])
    assert sel.assignment.tolist() == [0, 1, 1]
    assert sel.report.counts == {"0": 1, "1": 2}


def test_consent_eligibility_frequency_and_negative_values_are_respected() -> None:
    values = np.array([[10.0, 9.0], [5.0, 6.0], [4.0, 3.0], [-1.0, -2.0], [7.0, 8.0]])
    consent = np.array([False, True, True, True, True])
    eligible = np.array([[True, True], [True, False], [True, True], [True, True],
                         [True, True]])
    sel = select_offers(values, [1.0, 1.0], 100.0, consent=consent, eligible=eligible,
                        recent_contacts=[0, 0, 0, 0, 3], max_contacts=3)
    # user 0 opted out, user 1 cannot get offer 1, user 3 has no positive value,
    # user 4 was contacted 3 times in the window
    assert sel.assignment.tolist() == [-1, 0, 0, -1, -1]
    frame = sel.to_frame(["u0", "u1", "u2", "u3", "u4"], reasons=[["r1"], ["r2"]])
    assert frame["user_id"].tolist() == ["u1", "u2"] and frame["value"].tolist() == [5.0, 4.0]
    assert frame["reasons"].tolist() == [["r1"], ["r2"]]


def test_missing_consent_counts_as_no_consent() -> None:
    sel = select_offers(np.ones((4, 1)), [1.0], 10.0, consent=[True, None, np.nan, 1.0])
    assert sel.assignment.tolist() == [0, -1, -1, 0]


def test_budget_below_the_cheapest_offer_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"budget 1 is below the cheapest offer's cost 2 "
                                         r"\('cheap'\), so no offer can be sent"):
        select_offers(np.ones((2, 2)), [2.0, 5.0], 1.0, consent=everyone(2),
                      offers=["cheap", "dear"])


def test_offer_with_no_eligible_user_is_a_clear_error() -> None:
    eligible = np.array([[True, False], [True, False]])
    with pytest.raises(ShopgraphError, match=r"offer\(s\) \['dear'\] have no eligible user"):
        select_offers(np.ones((2, 2)), [1.0, 1.0], 5.0, consent=everyone(2),
                      eligible=eligible, offers=["cheap", "dear"])
    with pytest.raises(ShopgraphError, match="have no eligible user"):  # nobody consented
        select_offers(np.ones((2, 2)), [1.0, 1.0], 5.0, consent=[False, False])


def test_nothing_worth_sending_is_reported_not_an_empty_success() -> None:
    with pytest.raises(ShopgraphError, match=r"nothing worth sending.*best -0\.5"):
        select_offers(np.array([[-0.5, -1.0], [-2.0, -3.0]]), [1.0, 1.0], 5.0,
                      consent=everyone(2))


@pytest.mark.parametrize("kwargs, message", [
    (dict(values=np.ones(3)), r"values must be 2-D"),
    (dict(costs=[1.0]), r"costs must have shape \(2,\); got \(1,\)"),
    (dict(consent=everyone(2)), r"consent must have shape \(3,\); got \(2,\)"),
    (dict(eligible=np.ones((3, 3), bool)), r"eligible must have shape \(3, 2\)"),
    (dict(costs=[1.0, -1.0]), r"costs must be finite and >= 0"),
    (dict(values=np.array([[1, np.nan]] * 3)), r"values has NaN"),
    (dict(max_contacts=2), r"give recent_contacts and max_contacts together"),
    (dict(caps=[1, -1]), r"caps must be >= 0"),
])
def test_bad_arguments_raise_value_error(kwargs, message) -> None:
    args = dict(values=np.ones((3, 2)), costs=[1.0, 1.0], budget=2.0, consent=everyone(3))
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        select_offers(args.pop("values"), args.pop("costs"), args.pop("budget"), **args)


def test_64000_users_solve_in_seconds_within_the_reported_gap() -> None:
    rng = np.random.default_rng(0)
    n, k = 64_000, 2
    values = rng.normal(0.02, 0.03, size=(n, k))
    start = time.perf_counter()
    sel = select_offers(values, [1.0, 2.0], 0.5 * n, consent=rng.random(n) > 0.05)
    seconds = time.perf_counter() - start
    rep = sel.report
    assert seconds < 10  # 0.5-0.7 s on dev-2c
    assert rep.budget_used <= 0.5 * n and rep.gap <= 1e-4
    assert rep.objective <= rep.bound + 1e-9 and rep.bound <= rep.lp_bound + 1e-9
