"""``shopgraph report``: one self-contained HTML page from a results dictionary.

The page has inline CSS and inline SVG plots (:mod:`shopgraph.report.plots`), no scripts, fonts
or images, and a Content-Security-Policy of ``default-src 'none'``, so it opens offline and asks
the network for nothing. Every string from ``results`` is HTML-escaped. Every section is
optional: a missing one is shown as "not run"; one that cannot be drawn (say, lists of different
lengths) is shown with a one-line problem note and a :class:`ReportWarning`, and the rest of the
page is still written.

The results schema (JSON-compatible; every key optional; NaN and ``None`` show as "n/a"):

.. code-block:: text

    title        str     page title (default "shopgraph report")
    created      str     when the results were made (default: now, UTC)
    workspace    str     the workspace folder
    notes        [str]   free-text lines shown under the header
    data         nodes {label: n}, relationships {type: n}, any other scalars
                         (users, items, interactions, density, ...)
    training     model, best_epoch, fit_seconds, ... (scalars)
                 history  [{"epoch", "loss", "recall@20", "ndcg@20", ...}]  (one row per epoch;
                          metric keys may appear only on evaluated epochs)
                 metrics  {"recall@10", "ndcg@10", "recall@20", ...}  held-out, the model
                 popularity {same keys}  the popularity baseline on the same split
    churn        roc_auc, baseline_roc_auc, brier, ... (scalars)
                 roc {"fpr": [...], "tpr": [...]}
                 calibration {"predicted": [...], "observed": [...], "count": [...]}
    response     roc_auc, baseline_roc_auc, ... (scalars)
                 lift {"share": [...], "lift": [...]}  lift in the top share of users ranked
                 roc {"fpr": [...], "tpr": [...]}  (optional)
    plan         campaign, objective, gap, budget, budget_used, send, control, ... (scalars)
                 audience_curve {"size": [...], "expected_value": [...]}
                 counts {offer: users}
    loop         rounds   [record]  one per round of ``shopgraph loop``, in order: round, policy,
                          users, sends {offer: n}, control, cost, readout (the A/B readout:
                          comparisons[0].revenue.difference {diff, ci_low, ci_high}, srm
                          {checkable, flagged}), ope_policy / ope_greedy {ips|dm|dr: {value,
                          ci_low, ci_high, ...}} (round totals), truth {policy_value,
                          greedy_value, ...} (simulated shops only)
                 baselines {name: [true value per round]}  e.g. "no sends", "oracle"
    truth        simulation ground truth: parameters and true totals (scalars or dicts)

Ground truth beside estimates: any section (``data``, ``training``, ``churn``, ``response``,
``plan``) may hold a ``truth`` dict whose keys repeat the section's own. A scalar there is shown
next to the estimate ("estimated | true"); a truth key the section lacks gets a row of its own.
Curves in ``truth`` (``roc``, ``lift``, ``audience_curve``, same shape) are drawn dashed over the
estimated ones. In ``training.truth`` the metric keys (``recall@20``...) are the model's metrics
against the true preferences, and ``training.truth.popularity`` the baseline's; in
``data.truth``, ``nodes`` and ``relationships`` are the true counts. Example::

    {"churn": {"roc_auc": 0.71, "brier": 0.18, "truth": {"roc_auc": 0.74, "brier": 0.17}}}

Plots, by ``data-plot`` name: ``data-nodes``, ``data-relationships``, ``training-loss``,
``training-metrics``, ``ranking-metrics``, ``churn-roc``, ``churn-calibration``,
``response-lift``, ``response-roc``, ``plan-audience``, ``plan-budget``, ``plan-offers``,
``loop-cumulative``, ``loop-intervals``; each is drawn when its data is present.

The loop section is a table with a row per round, the cumulative net value after each round
(the policy, the greedy exploit-only candidate and the baselines, true; the policy's DR
estimate, dashed), each round's DR estimate and interval against the true value, and a summary
line. Exploration cost is what the policy gave up against its greedy candidate: true
``greedy_value - policy_value``, estimated DR greedy minus DR policy. Without truth (a real
shop) only the estimates are shown.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from shopgraph.artifacts import atomic_open
from shopgraph.report import plots
from shopgraph.report.html import (
    cell,
    compare_table,
    curve,
    floats,
    fmt,
    is_num,
    is_scalar,
    label,
    mapping,
    row,
    table,
    truth_of,
)
from shopgraph.report.loop import loop_section
from shopgraph.report.plots import Series

METRIC_NAMES = ("recall", "ndcg", "precision", "hitrate", "map", "mrr")
METRIC_KEY = re.compile(rf"^({'|'.join(METRIC_NAMES)})@(\d+)$", re.IGNORECASE)


class ReportWarning(UserWarning):
    """A section of the results could not be drawn; the page shows a note in its place."""


def _data(sec: Mapping[str, Any]) -> list[str]:
    truth, parts, figs = truth_of(sec), [], []
    for key, what in (("nodes", "label"), ("relationships", "type")):
        counts = sec.get(key)
        if not isinstance(counts, Mapping) or not counts:
            continue
        true = truth.get(key) if isinstance(truth.get(key), Mapping) else None
        names = list(counts) + [k for k in (true or {}) if k not in counts]
        rows = [[escape(str(n)), cell(counts, n)] + ([cell(true, n)] if true else [])
                for n in names]
        head = [what, "count"] + (["true"] if true else [])
        parts.append(f"<h3>{key.capitalize()}</h3>" + table(rows, head, (2,) if true else ()))
        figs.append(plots.bar_chart(
            f"data-{key}", f"{key.capitalize()} by {what}", [str(n) for n in names],
            {"count": [float(counts[n]) if is_num(counts.get(n)) else float("nan")
                       for n in names]},
            value_label="count", horizontal=True))
    return [compare_table(sec, truth, skip=("nodes", "relationships")), *parts, row(*figs)]


def _metric_order(key: str) -> tuple[int, int, str]:
    """Recall@K first, then NDCG@K and the rest, each by K; other keys last."""
    m = METRIC_KEY.match(key)
    if not m:
        return (len(METRIC_NAMES), 0, key)
    return (METRIC_NAMES.index(m.group(1).lower()), int(m.group(2)), key)


def _training(sec: Mapping[str, Any]) -> list[str]:
    truth, parts, figs = truth_of(sec), [], []
    metrics = mapping(sec, "metrics")
    pop = mapping(sec, "popularity")
    true_pop = mapping(truth, "popularity")
    metric_keys = sorted({k for d in (metrics, pop) for k, v in d.items() if is_scalar(v)},
                         key=_metric_order)
    parts.append(compare_table(sec, truth, skip=(*metric_keys, "popularity")))
    if metric_keys:
        cols = [("model", metrics), ("popularity", pop), ("model (true)", truth),
                ("popularity (true)", true_pop)]
        cols = [(h, d) for h, d in cols if any(k in d for k in metric_keys)]
        rows = [[label(k)] + [cell(d, k) for _, d in cols] for k in metric_keys]
        true_cols = [i + 1 for i, (h, _) in enumerate(cols) if h.endswith("(true)")]
        parts.append("<h3>Held-out ranking metrics</h3>"
                     + table(rows, ["metric"] + [h for h, _ in cols], true_cols))
    history = sec.get("history")
    if isinstance(history, Sequence) and history:
        records = [r for r in history if isinstance(r, Mapping)]
        epochs = [r.get("epoch", i + 1) for i, r in enumerate(records)]
        loss = [(e, r["loss"]) for e, r in zip(epochs, records) if is_num(r.get("loss"))]
        if loss:
            loss_x, loss_y = zip(*loss)
            figs.append(plots.line_chart(
                "training-loss", "Training loss", [Series("loss", loss_x, loss_y)],
                x_label="epoch", y_label="loss"))
        keys = sorted({k for r in records for k in r if METRIC_KEY.match(k)},
                      key=_metric_order)
        series = []
        for k in keys:
            pts = [(e, r[k]) for e, r in zip(epochs, records) if is_num(r.get(k))]
            if pts:
                pts_x, pts_y = zip(*pts)
                series.append(Series(k, pts_x, pts_y, markers=len(pts) < 30))
        if series:
            figs.append(plots.line_chart(
                "training-metrics", "Validation metrics during training", series,
                x_label="epoch", y_label="metric"))
    plotted = [k for k in metric_keys if METRIC_KEY.match(k)]
    if plotted:
        bars = {h: [float(d[k]) if is_num(d.get(k)) else float("nan") for k in plotted]
                for h, d in (("model", metrics), ("popularity", pop), ("model (true)", truth),
                             ("popularity (true)", true_pop)) if any(k in d for k in plotted)}
        figs.append(plots.bar_chart("ranking-metrics", "Recall and NDCG at K against popularity",
                                    plotted, bars, value_label="held-out metric"))
    return [*parts, row(*figs)]


def _roc(sec: Mapping[str, Any], name: str, title: str) -> str:
    fpr, tpr = curve(sec, "roc", "fpr", "tpr")
    auc = sec.get("roc_auc")
    label = f"model (AUC {fmt(auc)})" if is_num(auc) else "model"
    truth = truth_of(sec)
    true = curve(truth, "roc", "fpr", "tpr") if isinstance(truth.get("roc"), Mapping) else None
    return plots.roc_curve(name, title, fpr, tpr, label=label, truth=true)


def _churn(sec: Mapping[str, Any]) -> list[str]:
    figs = []
    if "roc" in sec:
        figs.append(_roc(sec, "churn-roc", "Churn: ROC curve"))
    if "calibration" in sec:
        cal = sec["calibration"]
        pred, obs = curve(sec, "calibration", "predicted", "observed")
        count = floats(cal["count"], "calibration.count") if cal.get("count") is not None \
            else None
        figs.append(plots.calibration_plot("churn-calibration", "Churn: calibration", pred, obs,
                                           count))
    return [compare_table(sec, truth_of(sec)), row(*figs)]


def _response(sec: Mapping[str, Any]) -> list[str]:
    figs = []
    if "lift" in sec:
        series = [Series("model", *curve(sec, "lift", "share", "lift"), markers=True)]
        if isinstance(truth_of(sec).get("lift"), Mapping):
            series.append(Series("true response probability",
                                 *curve(truth_of(sec), "lift", "share", "lift"), dashed=True))
        top = max([1.0, *(v for s in series for v in s.y if math.isfinite(v))])
        figs.append(plots.line_chart(
            "response-lift", "Response model: lift in the top share", series,
            x_label="share of users targeted (ranked by the model)",
            y_label="response rate / overall rate", y_range=(0.0, top),
            hlines=[(1.0, "random targeting")]))
    if "roc" in sec:
        figs.append(_roc(sec, "response-roc", "Response model: ROC curve"))
    return [compare_table(sec, truth_of(sec)), row(*figs)]


def _plan(sec: Mapping[str, Any]) -> list[str]:
    truth, figs = truth_of(sec), []
    facts = dict(sec)
    budget, used = sec.get("budget"), sec.get("budget_used")
    if is_num(budget) and is_num(used) and float(budget) > 0:
        facts["budget_share_used"] = float(used) / float(budget)
    if "audience_curve" in sec:
        series = [Series("estimated", *curve(sec, "audience_curve", "size", "expected_value"))]
        if isinstance(truth.get("audience_curve"), Mapping):
            series.append(Series("true", *curve(truth, "audience_curve", "size",
                                                 "expected_value"), dashed=True))
        send = sec.get("send")
        figs.append(plots.line_chart(
            "plan-audience", "Audience size against expected incremental value", series,
            x_label="audience size (users contacted)", y_label="expected incremental value",
            vlines=[(float(send), "planned send")] if is_num(send) else []))
    if is_num(budget) or is_num(used):
        cats = [c for c in ("budget", "budget_used") if is_num(sec.get(c))]
        bars = {"estimated": [float(sec[c]) for c in cats]}
        if any(is_num(truth.get(c)) for c in cats):
            bars["true"] = [float(truth[c]) if is_num(truth.get(c)) else float("nan")
                            for c in cats]
        figs.append(plots.bar_chart("plan-budget", "Budget use", [c.replace("_", " ")
                                                                  for c in cats], bars,
                                    value_label="amount", horizontal=True))
    counts = mapping(sec, "counts")
    groups = {str(k): v for k, v in counts.items() if is_num(v)}
    if is_num(sec.get("control")):
        groups["control (held out)"] = sec["control"]
    if groups:
        figs.append(plots.bar_chart("plan-offers", "Users per offer and control group",
                                    list(groups), {"users": [float(v) for v in groups.values()]},
                                    value_label="users", horizontal=True))
    parts = [compare_table(facts, truth)]
    if groups:
        parts.append("<h3>Offers</h3>" + table([[escape(k), fmt(v)] for k, v in groups.items()],
                                               ["offer", "users"]))
    return [*parts, row(*figs)]


# --- the campaign loop --------------------------------------------------------------------

def _ground_truth(sec: Mapping[str, Any]) -> list[str]:
    parts = [compare_table(sec)]
    for key, value in sec.items():
        if isinstance(value, Mapping) and value:
            parts.append(f"<h3>{label(key)}</h3>" + compare_table(value))
    return parts


SECTIONS: tuple[tuple[str, str, Callable[[Mapping[str, Any]], list[str]]], ...] = (
    ("data", "Data", _data), ("training", "Training and ranking", _training),
    ("churn", "Churn", _churn), ("response", "Response model", _response),
    ("plan", "Campaign plan", _plan), ("loop", "Campaign loop", loop_section),
    ("truth", "Simulation ground truth", _ground_truth))


def _section(key: str, heading: str, draw: Callable[[Mapping[str, Any]], list[str]],
             sec: object) -> tuple[str, str]:
    """The section's HTML and its status: ``ok``, ``not run`` or ``problem``."""
    status, body = "ok", ""
    if sec is None or (isinstance(sec, Mapping) and not sec):
        status = "not run"
        body = ('<p class="not-run">none: not simulated data</p>' if key == "truth"
                else '<p class="not-run">not run</p>')
    elif not isinstance(sec, Mapping):
        status, body = "problem", f"{key} should be a dict, got {type(sec).__name__}"
    else:
        try:
            body = "\n".join(p for p in draw(sec) if p)
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
            status = "problem"
            body = f"{key} could not be drawn: {type(exc).__name__}: {exc}"
    if status == "problem":
        warnings.warn(body, ReportWarning, stacklevel=3)
        body = f'<p class="problem">{escape(body)}</p>'
    return f'<section id="{key}"><h2>{escape(heading)}</h2>\n{body}\n</section>', status


def render_report(results: Mapping[str, Any]) -> str:
    """The report page as an HTML string (see the module docstring for ``results``).

    Raises:
        ValueError: when ``results`` is not a dict.
    """
    if not isinstance(results, Mapping):
        raise ValueError(f"results should be a dict, got {type(results).__name__}")
    from shopgraph.version import __version__

    title = str(results.get("title") or "shopgraph report")
    created = str(results.get("created") or datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    loop_rounds = mapping(results, "loop").get("rounds")
    simulated = bool(results.get("truth")) or any(
        isinstance(results.get(k), Mapping) and results[k].get("truth") for k, _, _ in SECTIONS
    ) or (isinstance(loop_rounds, Sequence) and any(
        isinstance(r, Mapping) and r.get("truth") for r in loop_rounds))
    sections, nav = [], []
    for key, heading, draw in SECTIONS:
        html, status = _section(key, heading, draw, results.get(key))
        sections.append(html)
        badge = "" if status == "ok" else f' <span class="badge off">{escape(status)}</span>'
        nav.append(f'<li><a href="#{key}">{escape(heading)}</a>{badge}</li>')
    meta = [f"created {escape(created)}"]
    if results.get("workspace"):
        meta.append(f"workspace <code>{escape(str(results['workspace']))}</code>")
    header = (f"<h1>{escape(title)}"
              + ('<span class="badge">simulated data: estimates beside ground truth</span>'
                 if simulated else "") + "</h1>"
              + f'<p class="meta">{" · ".join(meta)}</p>')
    notes = results.get("notes")
    if isinstance(notes, Sequence) and not isinstance(notes, str) and notes:
        header += '<ul class="notes">' + "".join(f"<li>{escape(str(n))}</li>"
                                                 for n in notes) + "</ul>"
    template = Template(resources.files("shopgraph.report").joinpath("template.html")
                        .read_text(encoding="utf-8"))
    return template.substitute(
        title=escape(title), header=header, generator=f"shopgraph {escape(__version__)}",
        nav="<nav><ul>" + "".join(nav) + "</ul></nav>", sections="\n".join(sections),
        footer=f"written by shopgraph {escape(__version__)}; self-contained, no network needed")


def build_report(results: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write the report page for ``results`` to ``path``, atomically.

    Args:
        results: the results dictionary (see the module docstring); every section is optional.
        path: the HTML file to write; its folder is created when missing.

    Returns:
        The path written.

    Raises:
        ValueError: when ``results`` is not a dict.
    """
    page = render_report(results)
    with atomic_open(path, "wb") as fh:
        fh.write(page.encode("utf-8"))
    return Path(path)


def read_results(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The results a run wrote (``run/results.json``), checked to be a JSON object.

    Raises:
        FileNotFoundError: no results at ``path``.
        ValueError: the file is not a JSON object.
    """
    import json

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no results at {path}; run `shopgraph run` first or pass "
                                "--results")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path} should hold a JSON object, got {type(data).__name__}")
    return data
