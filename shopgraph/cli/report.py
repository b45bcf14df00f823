"""``shopgraph report``: the run's results as one self-contained HTML page."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from shopgraph.cli.options import DEFAULT_WORKSPACE, WorkspaceOpt, open_workspace
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
    from shopgraph.report import ReportWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ReportWarning)
        path = open_workspace(workspace).report(results, output)
    for w in caught:
        err.print(Text.assemble(("warning:", "yellow"), f" {w.message}"))
    out.print(str(path), highlight=False, soft_wrap=True)
