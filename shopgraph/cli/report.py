"""``shopgraph report``: the run's results as one self-contained HTML page."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Annotated

import typer

from shopgraph.cli.options import DEFAULT_WORKSPACE, WorkspaceOpt
from shopgraph.cli.output import err, out


def report(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    results: Annotated[Path | None, typer.Option(
        "--results", dir_okay=False,
        help="Results JSON written by `shopgraph run` (default: <workspace>/run/results.json).")]
    = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", dir_okay=False,
        help="HTML file to write, atomically (default: <workspace>/report.html).")] = None,
) -> None:
    """Write the report: data summary, training curve, Recall/NDCG@K against popularity, churn
    ROC and calibration, response-model lift and the campaign plan, with every estimate beside
    its ground truth on simulated data. The page has no scripts and needs no network; sections
    that were not run are marked "not run". Prints the path written.
    """
    from shopgraph.report import ReportWarning, build_report

    results = results if results is not None else workspace / "run" / "results.json"
    output = output if output is not None else workspace / "report.html"
    if not results.is_file():
        raise FileNotFoundError(f"no results at {results}; run `shopgraph run --workspace "
                                f"{workspace}` first or pass --results")
    try:
        data = json.loads(results.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{results} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{results} should hold a JSON object, got {type(data).__name__}")
    data.setdefault("workspace", str(workspace))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ReportWarning)
        path = build_report(data, output)
    for w in caught:
        err.print(f"[yellow]warning:[/] {w.message}")
    out.print(str(path), highlight=False, soft_wrap=True)
