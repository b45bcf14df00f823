"""The report's campaign loop section (issue 12): a row per round, cumulative value, DR intervals
against the truth, in real headless Chromium too."""

from __future__ import annotations

import json
import re
import warnings
import xml.etree.ElementTree as ET
from html import unescape
from pathlib import Path
from typing import Any

import pytest

import shopgraph
from shopgraph.report import ReportWarning, build_report, plots, render_report
from shopgraph.report.plots import Series
from tests.report.loop_records import two_rounds
from tests.report.test_report import SVG, _area, _chromium, _console, _open, _page

TRUTH_HEADS = ("true value", "DR covers truth", "greedy: true", "exploration cost: true")


def _render(results: dict[str, Any]) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("error", ReportWarning)
        return render_report(results)


def _section(html: str) -> str:
    (sec,) = re.findall(r'<section id="loop">.*?</section>', html, flags=re.S)
    return sec


def _text(cell: str) -> str:
    return unescape(re.sub(r"<[^>]+>", "", re.sub(r"<br>", " ", cell))).strip()


def _table(html: str) -> list[dict[str, str]]:
    """The loop table as one dict per round, header -> cell text."""
    sec = _section(html)
    head = [_text(h) for h in re.findall(r"<th[^>]*>(.*?)</th>", sec)]
    rows = re.findall(r"<tbody>(.*?)</tbody>", sec, flags=re.S)[0]
    return [dict(zip(head, (_text(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row))))
            for row in re.findall(r"<tr>(.*?)</tr>", rows)]


def _svg(html: str, name: str) -> ET.Element:
    (svg,) = re.findall(rf'<svg [^>]*data-plot="{name}".*?</svg>', html, flags=re.S)
    return ET.fromstring(svg)


def _series(root: ET.Element) -> dict[str, list[tuple[float, float]]]:
    return {line.get("data-series", ""): [tuple(map(float, p.split(",")))
                                          for p in line.get("points", "").split()]
            for line in root.iter(f"{SVG}polyline")}


# --- the section --------------------------------------------------------------------------

def test_issue_12_table_holds_each_rounds_numbers_beside_the_truth() -> None:
    html = _render({"loop": {"rounds": two_rounds()}})
    w01, w02 = _table(html)
    assert w01["round (policy)"] == "w01 thompson"
    assert w01["sends (per offer)"] == ("77 discount\xa02 bogo\xa04 free_shipping\xa04 "
                                        "informational\xa067")
    assert (w01["cost"], w01["control"], w01["true value"]) == ("49.4", "137", "-42.24")
    assert w01["DR estimate [95% CI]"] == "13.98 [-100.9, 167.3]"
    assert w01["DR covers truth"] == w02["DR covers truth"] == "yes"
    assert (w02["greedy: true"], w02["greedy: DR"]) == ("-358.1", "1,521.3 [-1,637.6, 5,336.8]")
    assert w01["exploration cost: true"] == "42.24"  # greedy 0 - policy -42.24
    assert w02["exploration cost: true"] == "-315.4"
    assert (w01["exploration cost: DR"], w02["exploration cost: DR"]) == ("-13.98", "1,478.1")
    assert w01["revenue/user vs control [95% CI]"] == "0.05817 [-1.168, 1.284]"
    assert w01["SRM"] == "not\xa0checked"
    sec = _section(html)
    assert "cumulative true net value -84.93 (greedy candidate -358.1)" in sec
    assert "cumulative exploration cost -273.2 (DR estimate 1,464.1)" in sec
    assert "covered the truth in 2 of 2 rounds" in sec and "send cost 100.6" in sec
    assert sec.count('<td class="true">') == 2 * len(TRUTH_HEADS)
    assert "estimates beside ground truth" in html and "not run" not in sec


def test_issue_12_charts_show_cumulative_value_and_intervals_against_the_truth() -> None:
    html = _render({"loop": {"rounds": two_rounds(),
                             "baselines": {"oracle": [30.0, 35.0], "no sends": [0, 0]}}})
    assert {"loop-cumulative", "loop-intervals"} <= set(_page(html).plots)
    cumulative = _series(_svg(html, "loop-cumulative"))
    assert set(cumulative) == {"policy (true)", "greedy candidate (true)", "oracle", "no sends",
                               "policy (DR estimate)"}
    assert all(len(pts) == 3 for pts in cumulative.values())  # from 0, then after each round
    start = {pts[0] for pts in cumulative.values()}
    assert len(start) == 1  # all start at (0, 0)
    ys = {k: [y for _, y in pts] for k, pts in cumulative.items()}
    assert ys["policy (true)"] == sorted(ys["policy (true)"])  # losing: lower is larger y
    assert ys["oracle"] == sorted(ys["oracle"], reverse=True)
    assert ys["no sends"][0] == ys["no sends"][-1]
    intervals = _svg(html, "loop-intervals")
    segments = [e for e in intervals.iter(f"{SVG}line") if e.get("class") == "interval"]
    dots = [e for e in intervals.iter(f"{SVG}circle") if e.get("class") == "estimate"]
    diamonds = [e for e in intervals.iter(f"{SVG}path") if e.get("class") == "truth"]
    assert len(segments) == len(dots) == len(diamonds) == 2
    for seg, dot, truth in zip(segments, dots, diamonds):
        lo, hi = sorted([float(seg.get("y1")), float(seg.get("y2"))])
        assert float(seg.get("x1")) == float(dot.get("cx")) == float(truth.get("data-x"))
        assert lo <= float(dot.get("cy")) <= hi and lo <= float(truth.get("data-y")) <= hi


def test_a_real_shop_has_no_truth_columns_or_series() -> None:
    html = _render({"loop": {"rounds": two_rounds(truth=False)}})
    w01, _ = _table(html)
    assert not set(TRUTH_HEADS) & set(w01)
    assert w01["DR estimate [95% CI]"] == "13.98 [-100.9, 167.3]"
    assert w01["exploration cost: DR"] == "-13.98"
    sec = _section(html)
    assert 'class="true"' not in sec and "estimates beside ground truth" not in html
    assert "cumulative DR estimate 57.22" in sec and "estimated exploration cost 1,464.1" in sec
    assert set(_series(_svg(html, "loop-cumulative"))) == {"policy (DR estimate)"}
    assert not list(_svg(html, "loop-intervals").iter(f"{SVG}path"))


def test_missing_keys_and_non_finite_numbers_degrade_to_na() -> None:
    rounds = two_rounds()
    rounds[0] = {"round": "w01", "ope_policy": {"dr": {"value": float("nan")}},
                 "readout": {"skipped": "one arm only"}, "truth": {"policy_value": 5.0}}
    rounds[1]["readout"]["srm"] = {"checkable": True, "flagged": True}
    del rounds[1]["ope_greedy"], rounds[1]["sends"]
    html = _render({"loop": {"rounds": [*rounds, "not a record"],
                             "baselines": {"odd": [1.0, "x", 2.0, 9.0], "bad": 3}}})
    w01, w02 = _table(html)
    assert w01["round (policy)"] == "w01" and w01["DR estimate [95% CI]"] == "n/a"
    assert w01["DR covers truth"] == "n/a" and w01["greedy: true"] == "n/a"
    assert w01["revenue/user vs control [95% CI]"] == "n/a" and w01["SRM"] == "n/a"
    assert (w02["sends (per offer)"], w02["greedy: DR"]) == ("n/a", "n/a")
    assert w02["SRM"] == "yes"
    assert "nan" not in _section(html).lower()
    assert "covered the truth in 1 of 1 rounds" in _section(html)
    assert set(_series(_svg(html, "loop-cumulative"))) >= {"odd", "policy (true)"}


def test_text_is_escaped() -> None:
    nasty = '<b>"x"&</b>'
    rounds = two_rounds()
    rounds[0].update(round=nasty, policy=nasty, sends={nasty: 3})
    html = _render({"loop": {"rounds": rounds, "baselines": {nasty: [1, 2]}}})
    assert "<b>" not in html
    assert html.count("&lt;b&gt;&quot;x&quot;&amp;&lt;/b&gt;") >= 4
    for name in ("loop-cumulative", "loop-intervals"):
        _svg(html, name)  # still well-formed XML


@pytest.mark.parametrize(("loop", "shown"), [({"rounds": []}, "no rounds finished yet"),
                                             ({}, "not run")])
def test_no_rounds(loop: dict[str, Any], shown: str) -> None:
    sec = _section(_render({"loop": loop}))
    assert shown in sec and "<svg" not in sec


def test_rounds_that_are_not_a_list_are_a_problem_note() -> None:
    with pytest.warns(ReportWarning, match="loop.rounds should be a list"):
        html = render_report({"loop": {"rounds": {"w01": {}}}})
    assert 'class="problem"' in _section(html)


# --- the plots ----------------------------------------------------------------------------

def test_interval_chart_is_valid_svg_with_everything_inside_the_plot_area() -> None:
    nan = float("nan")
    root = ET.fromstring(plots.interval_chart(
        "iv", "t", ["a", "b", "c", "d"], [1.0, 5.0, nan, 2.0], [-3.0, 4.0, 0.0, nan],
        [4.0, 9.0, 2.0, nan], truth=[0.5, 10.0, nan, 2.5]))
    assert root.get("data-plot") == "iv" and root.find(f"{SVG}title").text == "t"
    x0, y0, x1, y1 = _area(root)
    marks = [(float(c.get("cx")), float(c.get("cy"))) for c in root.iter(f"{SVG}circle")]
    marks += [(float(p.get("data-x")), float(p.get("data-y"))) for p in root.iter(f"{SVG}path")]
    marks += [(float(e.get(f"x{i}")), float(e.get(f"y{i}"))) for e in root.iter(f"{SVG}line")
              if e.get("class") == "interval" for i in (1, 2)]
    assert len(marks) == 3 + 3 + 3 * 2  # three of each: a NaN leaves out its part
    assert all(x0 <= x <= x1 and y0 <= y <= y1 for x, y in marks)
    texts = {t.text for t in root.iter(f"{SVG}text")}
    assert {"a", "b", "c", "d"} <= texts and "nan" not in ET.tostring(root, "unicode").lower()


def test_interval_chart_errors_and_no_data() -> None:
    with pytest.raises(ValueError, match="high has 1 values for 2 categories"):
        plots.interval_chart("x", "t", ["a", "b"], [1, 2], [0, 1], [3])
    root = ET.fromstring(plots.interval_chart("x", "t", [], [], [], []))
    assert any(t.text == "no data" for t in root.iter(f"{SVG}text"))


@pytest.mark.parametrize("n", [1, 2, 4, 30])
def test_line_chart_integer_x_ticks_are_whole_numbers(n: int) -> None:
    root = ET.fromstring(plots.line_chart("c", "t", [Series("a", list(range(n + 1)),
                                                             [0.0] * (n + 1))], x_integer=True))
    ticks = [t.text or "" for t in root.iter(f"{SVG}text") if t.get("class") == "tick"
             and t.get("text-anchor") == "middle"]
    assert ticks and all(re.fullmatch(r"\d+", t) for t in ticks), ticks
    assert ticks[0] == "0" and int(ticks[-1]) >= n


# --- the workspace and a real browser -----------------------------------------------------

def _loop_workspace(tmp_path: Path) -> shopgraph.Workspace:
    ws = shopgraph.open(tmp_path / "ws")
    w01, w02 = two_rounds()
    ws.layout.loop_state.parent.mkdir(parents=True)
    ws.layout.loop_state.write_text(json.dumps({"rounds": {"w02": w02, "w01": w01},
                                                "ingested": {}}))
    return ws


def test_workspace_report_adds_the_loop_rounds_in_order(tmp_path: Path) -> None:
    ws = _loop_workspace(tmp_path)
    html = ws.report().read_text(encoding="utf-8")  # no run results: the loop alone
    assert [r["round (policy)"] for r in _table(html)] == ["w01 thompson", "w02 thompson"]
    ws.layout.run_results.parent.mkdir(parents=True, exist_ok=True)
    ws.layout.run_results.write_text(json.dumps({"churn": {"roc_auc": 0.7}}))
    html = ws.report().read_text(encoding="utf-8")
    assert len(_table(html)) == 2 and "0.7" in html


def test_workspace_report_without_loop_or_results_still_says_run_first(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="shopgraph run"):
        shopgraph.open(tmp_path / "ws").report()


@pytest.mark.parametrize("truth", [True, False])
def test_loop_page_opens_in_headless_chromium_without_errors(truth: bool,
                                                             tmp_path: Path) -> None:
    browser = _chromium()
    page = build_report({"loop": {"rounds": two_rounds(truth=truth),
                                  "baselines": {"oracle": [30.0, 35.0]}}},
                        tmp_path / "report.html")
    dom, log, requests = _open(browser, page, tmp_path, "--dump-dom")
    assert sorted(_page(dom).plots) == ["loop-cumulative", "loop-intervals"]
    assert not _console(log), _console(log)
    assert requests == [] and 'class="problem"' not in dom
    assert ("-42.24" in dom) is truth and "13.98" in dom
