"""``shopgraph run``: the configured pipeline, step by step, skipping what did not change."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from shopgraph.cli.options import (
    DEFAULT_WORKSPACE,
    JsonOpt,
    WorkspaceOpt,
    open_workspace,
)
from shopgraph.cli.output import err, print_json
from shopgraph.pipeline import STEPS

if TYPE_CHECKING:
    from shopgraph.config import RunConfig
    from shopgraph.pipeline import RunResult
    from shopgraph.workspace import Workspace


def run(
    config: Annotated[Path, typer.Argument(
        help="TOML file with a [run] table (see docs/pipeline.md); `shopgraph simulate` "
             "writes one beside the simulated shop.")],
    step: Annotated[str | None, typer.Option(
        help=f"Run only this step ({', '.join(STEPS)}), e.g. to re-run one that failed.")]
    = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Run steps even when their inputs did not change.")] = False,
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    as_json: JsonOpt = False,
) -> None:
    """Run the main job: ingest, train embeddings, build the index, score the heads, plan the
    campaign audience and offers, export the lists, write back, render the report.

    Each step records the fingerprints of its inputs in `<workspace>/run/state.json` and is
    skipped when they did not change; `--step` re-runs one step alone.
    """
    from shopgraph.config import load_run_config

    cfg = load_run_config(config)
    with open_workspace(workspace) as ws:
        outcome = run_pipeline(ws, cfg, step, force, quiet=as_json)
    if as_json:
        print_json({"results": str(outcome.results_path), "outputs": outcome.outputs,
                    "steps": {k: {"seconds": v} for k, v in outcome.seconds.items()}})
        return
    print_outputs(outcome)
    t = outcome.results.get("target", {})
    if "send" in t:
        err.print(f"audience of {t['campaign']}: {t['send']:,} to send, {t['control']:,} "
                  "held out")


def run_pipeline(ws: Workspace, cfg: RunConfig, step: str | None = None, force: bool = False,
                 quiet: bool = False) -> RunResult:
    """Run ``cfg``'s pipeline on ``ws``, a line on stderr per step unless ``quiet``."""
    from rich.text import Text

    def show(name: str, status: str, seconds: float) -> None:
        if not quiet:
            took = f" in {seconds:.1f} s" if seconds else ""
            err.print(Text.assemble((name, "bold"), f": {status}{took}"))

    return ws.run(cfg, step=step, force=force, on_step=show)


def print_outputs(outcome: RunResult) -> None:
    """Where each step's files and the results are."""
    err.print("outputs:")
    for name, paths in outcome.outputs.items():
        for p in paths:
            err.print(f"  {name}: {p}")
    err.print(f"  results: {outcome.results_path}")
