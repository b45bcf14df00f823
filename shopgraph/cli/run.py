"""``shopgraph run``: the configured pipeline, step by step, skipping what did not change."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
    from shopgraph.pipeline import Pipeline, load_config
    from shopgraph.workspace import Workspace

    cfg = load_config(config)

    def show(name: str, status: str, seconds: float) -> None:
        if not as_json:
            err.print(f"[bold]{name}[/]: {status}" + (f" in {seconds:.1f} s" if seconds else ""))

    with Workspace(workspace, uri=uri, user=user, database=database) as ws:
        pipeline = Pipeline(ws, cfg, on_step=show)
        results = pipeline.run(step, force)
        outputs = {k: v.get("output", {}).get("paths", []) for k, v in pipeline.state.items()}
    if as_json:
        print_json({"results": str(pipeline.results_path), "outputs": outputs,
                    "steps": {k: {"seconds": v["seconds"]} for k, v in
                              pipeline.state.items()}})
        return
    err.print("outputs:")
    for name, paths in outputs.items():
        for p in paths:
            err.print(f"  {name}: {p}")
    err.print(f"  results: {pipeline.results_path}")
    if "target" in results:
        t = results["target"]
        err.print(f"audience of {t['campaign']}: {t['send']:,} to send, {t['control']:,} "
                  "held out")
