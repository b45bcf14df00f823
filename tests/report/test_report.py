"""The report page: hand-written SVG plots, the page builder, the CLI, and a real headless browser.

The browser tests open the written page in Debian's ``chromium`` and skip when it is not
installed (``apt-get install -y chromium``).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import warnings
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from shopgraph.cli.report import report
from shopgraph.report import ReportWarning, build_report, plots, render_report
from shopgraph.report.plots import Series
from tests.report.loop_records import two_rounds

SVG = "{http://www.w3.org/2000/svg}"
NASTY = '<script>alert("x")</script> & \'q\''
ALL_PLOTS = {"data-nodes", "data-relationships", "training-loss", "training-metrics",
             "ranking-metrics", "churn-roc", "churn-calibration", "response-lift", "response-roc",
             "plan-audience", "plan-budget", "plan-offers", "loop-cumulative", "loop-intervals"}
SECTIONS = ("data", "training", "churn", "response", "plan", "loop", "truth")


def full_results() -> dict[str, Any]:
    """Every section filled, with ground truth, as the simulated-data pipeline would."""
    grid = np.linspace(0, 1, 21)
    history = [{"epoch": e, "loss": 0.7 * math.exp(-e / 8) + 0.1, "seconds": 0.5 * e}
               for e in range(1, 31)]
    for row in history[4::5]:
        row.update({"recall@20": 0.1 + 0.004 * row["epoch"],
                    "ndcg@20": 0.05 + 0.002 * row["epoch"]})
    metrics = {f"{m}@{k}": 0.1 * k ** 0.3 * (0.6 if m == "ndcg" else 1) for m in ("recall", "ndcg")
               for k in (10, 20, 50)}
    return {
        "title": f"Simulated shop {NASTY}", "created": "2025-01-02 03:04 UTC",
        "workspace": "/tmp/ws <a href='https://evil.example'>x</a>",
        "notes": ["seed 0", "used <the> response head"],
        "data": {"nodes": {"User": 800, "Item": 300, "Campaign": 2},
                 "relationships": {"PURCHASED": 9000, "VIEWED": 41000, "TARGETED": 1600},
                 "density": 0.0375, "truth": {"nodes": {"User": 800, "Item": 300, "Campaign": 2},
                                              "relationships": {"PURCHASED": 9000}}},
        "training": {"model": "lightgcn", "best_epoch": 25, "fit_seconds": 14.2,
                     "history": history, "metrics": {**metrics, "users": 777},
                     "popularity": {k: v / 2 for k, v in metrics.items()},
                     "truth": {"recall@20": 0.31, "ndcg@20": 0.2,
                               "popularity": {"recall@20": 0.12}}},
        "churn": {"roc_auc": 0.74, "baseline_roc_auc": 0.61, "brier": 0.181,
                  "roc": {"fpr": grid.tolist(), "tpr": np.sqrt(grid).tolist()},
                  "calibration": {"predicted": [0.05, 0.15, 0.25, 0.35, 0.55, 0.8],
                                  "observed": [0.04, 0.17, 0.22, 0.4, 0.5, float("nan")],
                                  "count": [300, 200, 120, 80, 30, 0]},
                  "truth": {"roc_auc": 0.77, "brier": 0.17,
                            "roc": {"fpr": grid.tolist(), "tpr": (grid ** 0.4).tolist()}}},
        "response": {"roc_auc": 0.66, "baseline_roc_auc": 0.5,
                     "lift": {"share": [0.1, 0.2, 0.3, 0.5, 1.0],
                              "lift": [2.4, 1.9, 1.6, 1.3, 1.0]},
                     "roc": {"fpr": [0, 0.2, 1], "tpr": [0, 0.5, 1]},
                     "truth": {"roc_auc": 0.7, "lift": {"share": [0.1, 0.5, 1.0],
                                                         "lift": [2.9, 1.5, 1.0]}}},
        "plan": {"campaign": "spring <sale>", "objective": 1830.5, "gap": 0.0004,
                 "budget": 2000.0, "budget_used": 1987.3, "send": 1420, "control": 158,
                 "counts": {"10% off & <free> shipping": 900, "bogo": 520},
                 "audience_curve": {"size": list(range(0, 3001, 250)),
                                    "expected_value": [0, 400, 750, 1050, 1300, 1500, 1650,
                                                       1760, 1830, 1860, 1850, 1800, 1700]},
                 "truth": {"objective": 1702.0, "true_value": 1702.0,
                           "audience_curve": {"size": [0, 1500, 3000],
                                              "expected_value": [0, 1600, 1650]}}},
        "loop": {"rounds": two_rounds(), "baselines": {"oracle": [30.0, 35.0]}},
        "truth": {"users": 800, "seed": 0, "churn_rate": 0.22,
                  "offer_effects": {"bogo": 0.8, "10% off": 1.1}},
    }


# --- plots --------------------------------------------------------------------------------

def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def _points(root: ET.Element) -> list[tuple[float, float]]:
    pts = []
    for line in root.iter(f"{SVG}polyline"):
        pts += [tuple(map(float, p.split(","))) for p in line.get("points", "").split()]
    pts += [(float(c.get("cx")), float(c.get("cy"))) for c in root.iter(f"{SVG}circle")]
    return pts


def _area(root: ET.Element) -> tuple[float, float, float, float]:
    rect = root.find(f"{SVG}rect[@class='area']")
    x, y = float(rect.get("x")), float(rect.get("y"))
    return x, y, x + float(rect.get("width")), y + float(rect.get("height"))


ALL_SVGS = {
    "line": lambda: plots.line_chart("line", "t", [Series("a", [1, 2, 3], [5, -2, 40]),
                                                   Series("b", [0, 9], [1e4, 3], dashed=True)],
                                     vlines=[(4.5, "v")], hlines=[(1.0, "h")]),
    "bar": lambda: plots.bar_chart("bar", "t", ["x", "y", "z"], {"a": [3, -1, 12.5],
                                                                 "b": [0.5, 2, float("nan")]}),
    "hbar": lambda: plots.bar_chart("hbar", "t", ["long category name", "y"],
                                    {"a": [120000, 3]}, horizontal=True),
    "roc": lambda: plots.roc_curve("roc", "t", [0, 0.1, 0.4, 1], [0, 0.5, 0.8, 1]),
    "calibration": lambda: plots.calibration_plot("calibration", "t", [0.02, 0.08, 0.2],
                                                  [0.01, 0.1, 0.15], [500, 100, 10]),
}


@pytest.mark.parametrize("kind", list(ALL_SVGS))
def test_plot_is_valid_svg_with_name_title_and_points_inside_the_plot_area(kind: str) -> None:
    root = _parse(ALL_SVGS[kind]())
    assert root.get("data-plot") == kind
    assert root.find(f"{SVG}title").text == "t"
    width, height = float(root.get("width")), float(root.get("height"))
    x0, y0, x1, y1 = _area(root)
    assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
    for x, y in _points(root):
        assert x0 - 0.05 <= x <= x1 + 0.05 and y0 - 0.05 <= y <= y1 + 0.05, (x, y)
    for bar in root.iter(f"{SVG}rect"):
        if bar.get("class") == "bar":
            bx, by = float(bar.get("x")), float(bar.get("y"))
            assert x0 - 0.05 <= bx <= bx + float(bar.get("width")) <= x1 + 0.05
            assert y0 - 0.05 <= by <= by + float(bar.get("height")) <= y1 + 0.05


def test_line_chart_maps_data_to_pixels_in_order() -> None:
    root = _parse(plots.line_chart("m", "t", [Series("a", [0, 1, 2], [0, 10, 5])]))
    (line,) = root.iter(f"{SVG}polyline")
    pts = [tuple(map(float, p.split(","))) for p in line.get("points").split()]
    assert pts[0][0] < pts[1][0] < pts[2][0]  # x increases to the right
    assert pts[1][1] < pts[2][1] < pts[0][1]  # larger y is higher up


def test_text_is_escaped_everywhere() -> None:
    nasty = '<b>&"x"\'</b>'
    svgs = [plots.line_chart("a<", nasty, [Series(nasty, [1, 2], [1, 2]), Series("o", [1], [1])],
                             x_label=nasty, y_label=nasty, vlines=[(1.5, nasty)]),
            plots.bar_chart("b", nasty, [nasty], {nasty: [1.0]}, value_label=nasty)]
    for svg in svgs:
        root = _parse(svg)
        assert "<b>" not in svg
        texts = {t.text for t in root.iter(f"{SVG}text")}
        assert nasty in texts
        assert root.find(f"{SVG}title").text == nasty
    assert _parse(svgs[0]).get("data-plot") == "a<"


def test_non_finite_values_break_the_line_and_are_not_drawn() -> None:
    svg = plots.line_chart("n", "t", [Series("a", [1, 2, 3, 4, 5],
                                             [1, float("nan"), 3, float("inf"), 5])])
    root = _parse(svg)
    assert "nan" not in svg.lower() and "inf" not in svg.lower()
    assert len(list(root.iter(f"{SVG}polyline"))) == 3  # three single-point runs
    assert len(_points(root)) == 6  # each lone point also gets a marker


def test_empty_plot_says_no_data() -> None:
    for svg in (plots.line_chart("e", "t", [Series("a", [], [])]),
                plots.bar_chart("e", "t", [], {})):
        root = _parse(svg)
        assert any(t.text == "no data" for t in root.iter(f"{SVG}text"))


def test_mismatched_lengths_raise_value_error() -> None:
    with pytest.raises(ValueError, match="3 x values but 2 y values"):
        plots.line_chart("x", "t", [Series("a", [1, 2, 3], [1, 2])])
    with pytest.raises(ValueError, match="1 values for 2 categories"):
        plots.bar_chart("x", "t", ["a", "b"], {"s": [1.0]})
    with pytest.raises(ValueError, match="2 counts"):
        plots.calibration_plot("x", "t", [0.1], [0.1], [1, 2])


def test_roc_has_the_diagonal_and_calibration_the_identity_line() -> None:
    root = _parse(plots.roc_curve("r", "t", [0, 1], [0, 1], label="AUC 0.5"))
    x0, y0, x1, y1 = _area(root)
    chance = root.find(f"{SVG}polyline[@data-series='chance']")
    assert [tuple(map(float, p.split(","))) for p in chance.get("points").split()] == \
        [(x0, y1), (x1, y0)]
    cal = _parse(plots.calibration_plot("c", "t", [0.1, 0.2, 0.3], [0.1, 0.3, 0.2],
                                        [10, 20, 30]))
    assert cal.find(f"{SVG}polyline[@data-series='perfectly calibrated']") is not None
    radii = [float(c.get("r")) for c in cal.iter(f"{SVG}circle") if c.get("class") == "bin"]
    assert len(radii) == 3 and radii == sorted(radii)  # marker area grows with the count


@pytest.mark.parametrize(("lo", "hi"), [(0, 1), (0, 0.037), (3, 3), (-5, 7), (0, 123456),
                                        (1e-6, 3e-6), (-2, -1)])
def test_nice_ticks_cover_the_range_with_round_steps(lo: float, hi: float) -> None:
    ticks = plots.nice_ticks(lo, hi)
    assert ticks[0] <= lo and ticks[-1] >= hi and 3 <= len(ticks) <= 12
    steps = np.diff(ticks)
    assert np.allclose(steps, steps[0])
    mantissa = steps[0] / 10 ** math.floor(math.log10(steps[0]))
    assert any(math.isclose(mantissa, m) for m in (1, 2, 2.5, 5))
    labels = [plots.fmt_tick(t, steps[0]) for t in ticks]
    assert len(set(labels)) == len(labels)  # no two ticks print alike


# --- the page -----------------------------------------------------------------------------

class _Page(HTMLParser):
    """Collects data-plot names, external src/href values and scripts of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.plots: list[str] = []
        self.links: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if "data-plot" in a:
            self.plots.append(a["data-plot"] or "")
        self.links += [v or "" for k, v in attrs if k in ("src", "href", "xlink:href")]
        self.scripts += tag == "script"


def _page(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def _assert_self_contained(html: str) -> None:
    page = _page(html)
    assert page.scripts == 0
    assert all(link.startswith("#") for link in page.links), page.links
    assert not re.search(r"url\(|@import|@font-face", html)
    assert "Content-Security-Policy" in html


def test_full_report_has_every_plot_and_truth_beside_estimates(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", ReportWarning)
        path = build_report(full_results(), tmp_path / "deep" / "report.html")
    html = path.read_text(encoding="utf-8")
    assert set(_page(html).plots) == ALL_PLOTS
    assert len(_page(html).plots) == len(ALL_PLOTS)
    for svg in re.findall(r"<svg .*?</svg>", html, flags=re.S):
        ET.fromstring(svg)
    _assert_self_contained(html)
    assert "not run" not in html and "problem" not in html.replace(".problem", "")
    assert "simulated data" in html
    # estimated | true: churn AUC, the plan's objective, true-preference recall
    assert re.search(r"roc auc</td><td>0.74</td><td class=\"true\">0.77</td>", html)
    assert re.search(r"objective</td><td>1,830.5</td><td class=\"true\">1,702.0</td>", html)
    assert re.search(r"recall@20</td><td>[\d.]+</td><td>[\d.]+</td><td class=\"true\">0.31</td>",
                     html)
    assert 'true value</td><td></td><td class="true">1,702.0</td>' in html  # truth only
    assert "budget share used" in html
    assert list(tmp_path.joinpath("deep").iterdir()) == [path]  # no temp file left behind


def test_user_strings_are_escaped(tmp_path: Path) -> None:
    html = build_report(full_results(), tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<script" not in html and "<free>" not in html and "<sale>" not in html
    assert "<a href='https" not in html
    assert "&lt;a href=&#x27;https://evil.example&#x27;&gt;" in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "10% off &amp; &lt;free&gt; shipping" in html


def test_empty_results_show_every_section_as_not_run(tmp_path: Path) -> None:
    html = build_report({}, tmp_path / "r.html").read_text(encoding="utf-8")
    assert _page(html).plots == []
    for key in SECTIONS:
        assert f'<section id="{key}">' in html
    assert html.count('class="not-run"') == len(SECTIONS)
    assert "shopgraph report" in html
    _assert_self_contained(html)


def test_a_broken_section_is_noted_and_the_rest_still_drawn() -> None:
    results = full_results()
    results["churn"]["roc"] = {"fpr": [0, 1], "tpr": [0]}
    results["response"] = "oops"
    with pytest.warns(ReportWarning) as caught:
        html = render_report(results)
    assert len(caught) == 2
    assert html.count('class="problem"') == 2
    assert "2 x values but 1 y values" in html
    assert set(_page(html).plots) == ALL_PLOTS - {"churn-roc", "churn-calibration",
                                                  "response-lift", "response-roc"}


def test_partial_sections_and_numpy_values() -> None:
    results = {"training": {"metrics": {"recall@20": np.float32(0.25)}, "history": [
        {"epoch": np.int64(1), "loss": np.float64(0.6)}, {"epoch": 2, "loss": None}]},
        "plan": {"send": np.int64(10), "counts": {"a": np.int64(10)}}}
    html = render_report(results)
    assert set(_page(html).plots) == {"training-loss", "ranking-metrics", "plan-offers"}
    assert "0.25" in html and html.count('class="not-run"') == 5


def test_results_must_be_a_dict(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="results should be a dict"):
        build_report([], tmp_path / "r.html")  # type: ignore[arg-type]
    assert not (tmp_path / "r.html").exists()


# --- the command --------------------------------------------------------------------------

def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(report)
    return app


def test_cli_writes_the_report_from_the_workspace_results(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "run").mkdir(parents=True)
    results = full_results()
    del results["workspace"]
    (ws / "run" / "results.json").write_text(json.dumps(results))
    out = CliRunner().invoke(_app(), ["--workspace", str(ws)])
    assert out.exit_code == 0, out.output
    assert out.stdout.strip() == str(ws / "report.html")
    html = (ws / "report.html").read_text(encoding="utf-8")
    assert set(_page(html).plots) == ALL_PLOTS and str(ws) in html


def test_cli_options_and_errors(tmp_path: Path) -> None:
    res = tmp_path / "res.json"
    res.write_text('{"title": "T", "churn": {"roc_auc": NaN}}')
    out = CliRunner().invoke(_app(), ["-w", str(tmp_path), "--results", str(res),
                                      "-o", str(tmp_path / "x" / "page.html")])
    assert out.exit_code == 0, out.output
    assert "n/a" in (tmp_path / "x" / "page.html").read_text(encoding="utf-8")
    missing = CliRunner().invoke(_app(), ["-w", str(tmp_path / "nowhere")])
    assert isinstance(missing.exception, FileNotFoundError)
    assert "shopgraph run" in str(missing.exception)
    res.write_text("[1, 2]")
    bad = CliRunner().invoke(_app(), ["-w", str(tmp_path), "--results", str(res)])
    assert isinstance(bad.exception, ValueError) and "JSON object" in str(bad.exception)


# --- a real browser -----------------------------------------------------------------------

def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if found := shutil.which(name):
            return found
    pytest.skip("no chromium binary on PATH; install Debian's package: apt-get install -y "
                "chromium")


def _open(browser: str, page: Path, tmp: Path, *extra: str) -> tuple[str, str, list[str]]:
    """Open ``page`` headless; the dumped DOM, the log, and URLs the page itself requested."""
    net = tmp / "net.json"
    proc = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={tmp / 'profile'}",
         "--enable-logging=stderr", "--v=0", f"--log-net-log={net}", *extra,
         page.resolve().as_uri()], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, proc.stderr, _page_requests(net)


def _page_requests(net: Path) -> list[str]:
    """URLs requested on behalf of a file:// page, from Chromium's net log.

    Chromium itself talks to update and account servers now and then; only requests whose
    network isolation key is the page's (``file://``) are the page's own.
    """
    text = net.read_text(encoding="utf-8")
    try:
        log = json.loads(text)
    except json.JSONDecodeError:  # not closed when the browser exits abruptly
        log = json.loads(text.rstrip().rstrip(",") + "]}")
    return [e["params"]["url"] for e in log.get("events", [])
            if isinstance(e.get("params"), dict) and "url" in e["params"]
            and str(e["params"].get("network_isolation_key", "")).startswith("file://")
            and not e["params"]["url"].startswith(("file:", "data:"))]


def _console(log: str) -> list[str]:
    return [line for line in log.splitlines()
            if re.search(r":CONSOLE[(:]|Uncaught|Refused to|violates the following", line)]


@pytest.mark.parametrize("kind", ["full", "empty"])
def test_page_opens_in_headless_chromium_without_errors(kind: str, tmp_path: Path) -> None:
    browser = _chromium()
    results = full_results() if kind == "full" else {}
    page = build_report(results, tmp_path / "report.html")
    dom, log, requests = _open(browser, page, tmp_path, "--dump-dom")
    assert "</html>" in dom
    found = _page(dom)
    assert sorted(found.plots) == sorted(ALL_PLOTS if kind == "full" else [])
    assert dom.count("<svg") == len(found.plots)
    assert not _console(log), _console(log)
    assert requests == []
    assert 'class="problem"' not in dom
    assert all(link.startswith("#") for link in found.links)
    if kind == "empty":
        assert dom.count('class="not-run"') == len(SECTIONS)


def test_page_renders_to_a_screenshot(tmp_path: Path) -> None:
    browser = _chromium()
    page = build_report(full_results(), tmp_path / "report.html")
    shot = tmp_path / "shot.png"
    _, log, requests = _open(browser, page, tmp_path, f"--screenshot={shot}",
                             "--window-size=1280,3000", "--hide-scrollbars")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # a blank page compresses to a few kB
    assert not _console(log) and requests == []


def test_the_browser_checks_catch_errors_and_network_requests(tmp_path: Path) -> None:
    """The checks above would fail on a page with a script error or an external image."""
    browser = _chromium()
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><body><img src="http://127.0.0.1:9/x.png">'
                    '<script>throw new Error("boom")</script></body></html>')
    _, log, requests = _open(browser, page, tmp_path, "--dump-dom")
    assert any("Uncaught Error: boom" in line for line in _console(log))
    assert requests == ["http://127.0.0.1:9/x.png"]
