"""``shopgraph run``: the configured pipeline, step by step, skipping what did not change."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from shopgraph.cli.options import (
    DEFAULT_WORKSPACE,
    DatabaseOpt,
    JsonOpt,
    UriOpt,
    UserOpt,
    WorkspaceOpt,
)
from shopgraph.cli.output import err, print_json
from shopgraph.pipeline import STEPS


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
    uri: UriOpt = None, user: UserOpt = None, database: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the main job: ingest, train embeddings, build the index, score the heads, plan the
    campaign audience and offers, export the lists, write back, render the report.

    Each step records the fingerprints of its inputs in `<workspace>/run/state.json` and is
    skipped when they did not change; `--step` re-runs one step alone.
    """
    from shopgraph.pipeline import load_config
    from shopgraph.workspace import Workspace

    cfg = load_config(config)
    with Workspace(workspace, uri=uri, user=user, database=database) as ws:
        pipeline = run_pipeline(ws, cfg, step, force, quiet=as_json)
    if as_json:
        print_json({"results": str(pipeline.results_path), "outputs": pipeline.outputs(),
                    "steps": {k: {"seconds": v["seconds"]} for k, v in
                              pipeline.state.items()}})
        return
    print_outputs(pipeline)
    if "target" in pipeline.results:
        t = pipeline.results["target"]
        err.print(f"audience of {t['campaign']}: {t['send']:,} to send, {t['control']:,} "
                  "held out")


def run_pipeline(ws: Any, cfg: dict[str, Any], step: str | None = None, force: bool = False,
                 quiet: bool = False) -> Any:
    """Run ``cfg``'s pipeline on ``ws``, a line on stderr per step unless ``quiet``."""
    from shopgraph.pipeline import Pipeline

    def show(name: str, status: str, seconds: float) -> None:
        if not quiet:
            err.print(f"[bold]{name}[/]: {status}" + (f" in {seconds:.1f} s" if seconds else ""))

    pipeline = Pipeline(ws, cfg, on_step=show)
    pipeline.run(step, force)
    return pipeline


def print_outputs(pipeline: Any) -> None:
    """Where each step's files and the results are."""
    err.print("outputs:")
    for name, paths in pipeline.outputs().items():
        for p in paths:
            err.print(f"  {name}: {p}")
    err.print(f"  results: {pipeline.results_path}")
