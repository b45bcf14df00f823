"""The report's campaign-loop section (``results["loop"]``, see :mod:`shopgraph.report.build`):
a row per round, cumulative value against the baselines, each round's DR interval against the
truth, and what exploration cost."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from shopgraph.report import plots
from shopgraph.report.html import NA, fmt, is_num, mapping, row, table, truth_of
from shopgraph.report.plots import Series

#: the per-round table's columns that hold the truth (left out on a real shop)
LOOP_TRUTH_COLUMNS = ("true value", "DR covers truth", "greedy: true", "exploration cost: true")


def _num(v: object) -> float:
    """``v`` as a float; NaN when it is not a number (``None``, a string, a bool)."""
    return float(v) if is_num(v) else float("nan")


def _with_ci(value: object, low: object, high: object) -> str:
    """``value`` over ``[low, high]`` (a second, smaller line), the interval only when both ends
    are finite numbers."""
    text = fmt(value)
    if math.isfinite(_num(low)) and math.isfinite(_num(high)):
        text += f"<br><small>[{fmt(low)}, {fmt(high)}]</small>"
    return text


def _cumulative(values: Sequence[float]) -> list[float]:
    """Running sums from 0 (before the first round); a NaN carries on to the end."""
    out = [0.0]
    for v in values:
        out.append(out[-1] + v)
    return out


def _loop_round(i: int, rec: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, float]]:
    """One round's table cells (by column) and its numbers for the charts and summary."""
    truth, dr = truth_of(rec), mapping(mapping(rec, "ope_policy"), "dr")
    greedy_dr = mapping(mapping(rec, "ope_greedy"), "dr")
    nums = {"true": _num(truth.get("policy_value")), "greedy": _num(truth.get("greedy_value")),
            "dr": _num(dr.get("value")), "low": _num(dr.get("ci_low")),
            "high": _num(dr.get("ci_high")), "greedy_dr": _num(greedy_dr.get("value")),
            "cost": _num(rec.get("cost"))}
    nums["explore"] = nums["greedy"] - nums["true"]
    nums["explore_dr"] = nums["greedy_dr"] - nums["dr"]
    known = all(math.isfinite(nums[k]) for k in ("true", "low", "high"))
    nums["covers"] = float(nums["low"] <= nums["true"] <= nums["high"]) if known else math.nan
    sends = {str(k): v for k, v in mapping(rec, "sends").items() if is_num(v)}
    comparisons = mapping(rec, "readout").get("comparisons")
    first = comparisons[0] if isinstance(comparisons, Sequence) and comparisons and \
        isinstance(comparisons[0], Mapping) else {}
    revenue = mapping(mapping(first, "revenue"), "difference")
    srm = mapping(mapping(rec, "readout"), "srm")
    policy = rec.get("policy")
    cells = {
        "round (policy)": escape(str(rec.get("round", i + 1)))
        + (f"<br><small>{fmt(policy)}</small>" if policy is not None else ""),
        "sends (per offer)": (fmt(sum(sends.values())) if sends else NA)
        + "".join(f"<br><small>{escape(k)}&nbsp;{fmt(v)}</small>" for k, v in sends.items()),
        "cost": fmt(rec.get("cost")), "control": fmt(rec.get("control")),
        "true value": fmt(truth.get("policy_value")),
        "DR estimate [95% CI]": _with_ci(dr.get("value"), dr.get("ci_low"), dr.get("ci_high")),
        "DR covers truth": fmt(bool(nums["covers"])) if known else NA,
        "greedy: true": fmt(truth.get("greedy_value")),
        "greedy: DR": _with_ci(greedy_dr.get("value"), greedy_dr.get("ci_low"),
                               greedy_dr.get("ci_high")),
        "exploration cost: true": fmt(nums["explore"]),
        "exploration cost: DR": fmt(nums["explore_dr"]),
        "revenue/user vs control [95% CI]": _with_ci(revenue.get("diff"), revenue.get("ci_low"),
                                                     revenue.get("ci_high")),
        "SRM": ("not&nbsp;checked" if srm.get("checkable") is False
                else fmt(srm["flagged"]) if isinstance(srm.get("flagged"), bool) else NA),
    }
    return cells, nums


def loop_section(sec: Mapping[str, Any]) -> list[str]:
    rounds = sec.get("rounds")
    if not isinstance(rounds, Sequence) or isinstance(rounds, str):
        raise ValueError(f"loop.rounds should be a list of round records, got "
                         f"{type(rounds).__name__}")
    records = [r for r in rounds if isinstance(r, Mapping)]
    if not records:
        return ['<p class="not-run">no rounds finished yet</p>']
    rows = [_loop_round(i, r) for i, r in enumerate(records)]
    nums = {k: [n[k] for _, n in rows] for k in rows[0][1]}
    has_truth = any(math.isfinite(v) for k in ("true", "greedy") for v in nums[k])
    head = [h for h in rows[0][0] if has_truth or h not in LOOP_TRUTH_COLUMNS]
    body = table([[cells[h] for h in head] for cells, _ in rows], head,
                 [i for i, h in enumerate(head) if h in LOOP_TRUTH_COLUMNS])
    parts = [_loop_summary(nums, has_truth), f'<div style="overflow-x: auto">{body}</div>']

    x = list(range(len(records) + 1))
    series = []
    if has_truth:
        series += [Series("policy (true)", x, _cumulative(nums["true"]), markers=True),
                   Series("greedy candidate (true)", x, _cumulative(nums["greedy"]),
                          markers=True)]
    baselines = mapping(sec, "baselines")
    for name, values in baselines.items():
        if isinstance(values, Sequence) and not isinstance(values, str):
            ys = _cumulative([_num(v) for v in values[:len(records)]])
            series.append(Series(str(name), x[:len(ys)], ys, markers=True))
    series.append(Series("policy (DR estimate)", x, _cumulative(nums["dr"]), dashed=True,
                         markers=True))
    figs = [plots.line_chart(
        "loop-cumulative", "Cumulative net value by round", series, x_label="rounds finished",
        y_label="cumulative net value", x_integer=True,
        hlines=[] if "no sends" in baselines else [(0.0, "no sends")]),
        plots.interval_chart(
            "loop-intervals", "DR estimate and 95% interval by round",
            [str(r.get("round", i + 1)) for i, r in enumerate(records)], nums["dr"],
            nums["low"], nums["high"], truth=nums["true"] if has_truth else None,
            label="policy DR estimate", truth_label="true value", value_label="net value")]
    return [*parts, row(*figs)]


def _loop_summary(nums: Mapping[str, list[float]], has_truth: bool) -> str:
    """One line: the totals over the rounds, and how often the DR interval covered the truth."""
    n = len(nums["dr"])
    facts = [f"{n} round{'s' if n != 1 else ''}"]
    if has_truth:
        covered = [v for v in nums["covers"] if math.isfinite(v)]
        facts += [f"cumulative true net value {fmt(sum(nums['true']))} (greedy candidate "
                  f"{fmt(sum(nums['greedy']))})",
                  f"cumulative exploration cost {fmt(sum(nums['explore']))} (DR estimate "
                  f"{fmt(sum(nums['explore_dr']))})",
                  f"DR 95% interval covered the truth in {int(sum(covered))} of {len(covered)}"
                  " rounds"]
    else:
        facts += [f"cumulative DR estimate {fmt(sum(nums['dr']))}",
                  f"estimated exploration cost {fmt(sum(nums['explore_dr']))}"]
    facts.append(f"send cost {fmt(sum(nums['cost']))}")
    return '<p class="summary">' + "; ".join(facts) + ".</p>"


