"""The ``shopgraph`` app: wiring, ``--version``, ``demo`` and the single error boundary."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from shopgraph import __version__
from shopgraph.cli import db, index, ingest, query, report, simulate, target, train
from shopgraph.cli import run as pipeline
from shopgraph.cli.options import DEFAULT_WORKSPACE, WorkspaceOpt
from shopgraph.cli.output import err
from shopgraph.errors import ShopgraphError

app = typer.Typer(help="shopgraph: recommendations, offers and ad audiences from a shop's "
                       "interaction graph.", no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode="markdown")
app.add_typer(db.app, name="db")
app.command("ingest")(ingest.ingest)
app.command("export")(ingest.export)
app.command("summary")(ingest.summary)
app.command("train")(train.train)
app.command("evaluate")(train.evaluate)
app.add_typer(index.app, name="index")
app.command("recommend")(query.recommend)
app.command("similar")(query.similar)
app.command("audience")(query.audience)
app.command("target")(target.target)
app.command("offers")(target.offers)
app.command("run")(pipeline.run)
app.command("report")(report.report)
app.command("simulate")(simulate.simulate)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"shopgraph {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version.")] = False) -> None:
    """shopgraph: recommendations, offers and ad audiences from a shop's interaction graph."""


@app.command()
def demo(workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
         users: Annotated[int, typer.Option(help="Simulated users.")] = 20_000,
         items: Annotated[int, typer.Option(help="Simulated items.")] = 5_000,
         interactions: Annotated[int, typer.Option(help="Simulated interactions.")] = 500_000,
         seed: Annotated[int, typer.Option(help="Seed of the simulated shop.")] = 0) -> None:
    """Run the main job end to end on the embedded graph server: simulate a shop with known
    ground truth, then `shopgraph run` it (ingest, embeddings, index, heads, campaign audience,
    offers, lists, write-back) and render the report beside the truth."""
    import time

    from shopgraph.cli.run import print_outputs, run_pipeline
    from shopgraph.pipeline import load_config
    from shopgraph.simulator import simulate
    from shopgraph.workspace import Workspace

    started = time.perf_counter()
    shop = Path(workspace) / "shop"
    summary = simulate(shop, users=users, items=items, interactions=interactions, seed=seed)
    err.print(f"simulated {summary['users']:,} users, {summary['items']:,} items, "
              f"{summary['interactions']:,} interactions into {shop}")

    with Workspace(workspace) as ws:
        pipeline = run_pipeline(ws, load_config(shop / "run.toml"))
    results = pipeline.results
    training, plan = results.get("training", {}), results.get("plan", {})
    err.print(f"held-out Recall@20 {training.get('metrics', {}).get('recall@20', float('nan')):.4f}"
              f" (popularity {training.get('popularity', {}).get('recall@20', float('nan')):.4f});"
              f" churn ROC-AUC {results.get('churn', {}).get('roc_auc', float('nan'))}; offer plan"
              f" {plan.get('counts')}, expected net value {plan.get('objective', 0):,.0f} (true "
              f"{plan.get('truth', {}).get('objective', float('nan')):,})")
    print_outputs(pipeline)
    report = Path(workspace) / "report.html"
    err.print(f"done in {time.perf_counter() - started:.0f} s; open {report}; the graph "
              f"server is still running, stop it with "
              f"`shopgraph db stop --workspace {workspace}`")


def run() -> None:
    """Entry point with the error boundary: known errors print one line, exit code 1."""
    try:
        app()
    except ShopgraphError as exc:
        err.print(f"[red]error:[/] {exc}")
        sys.exit(1)
    except FileNotFoundError as exc:  # a missing checkpoint or index: the message says what to run
        err.print(f"[red]error:[/] {exc}")
        sys.exit(1)
    except ValueError as exc:
        err.print(f"[red]error:[/] {exc}")
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted; re-run the same command to resume")
        sys.exit(130)
