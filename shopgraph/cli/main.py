"""The ``shopgraph`` app: wiring, root options, ``demo`` and the single error boundary.

Start-up stays light (``shopgraph --help`` imports neither pandas, torch, FAISS nor the neo4j
driver): every command imports what it needs inside its body.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated

import typer

from shopgraph.cli import (
    db,
    index,
    ingest,
    loop,
    options,
    query,
    report,
    simulate,
    target,
    train,
    update,
)
from shopgraph.cli import run as pipeline
from shopgraph.cli.options import (
    DEFAULT_WORKSPACE,
    Connection,
    DatabaseOpt,
    UriOpt,
    UserOpt,
    WorkspaceOpt,
    open_workspace,
)
from shopgraph.cli.output import err, error_line
from shopgraph.errors import ShopgraphError
from shopgraph.version import __version__

app = typer.Typer(help="shopgraph: recommendations, offers and ad audiences from a shop's "
                       "interaction graph.", no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode="markdown")
app.add_typer(db.app, name="db")
app.command("ingest")(ingest.ingest)
app.command("export")(ingest.export)
app.command("summary")(ingest.summary)
app.command("train")(train.train)
app.command("evaluate")(train.evaluate)
app.command("update")(update.update)
app.add_typer(index.app, name="index")
app.command("recommend")(query.recommend)
app.command("similar")(query.similar)
app.command("audience")(query.audience)
app.command("target")(target.target)
app.command("offers")(target.offers)
app.command("run")(pipeline.run)
app.command("loop")(loop.loop)
app.command("report")(report.report)
app.command("simulate")(simulate.simulate)

DEBUG_ENV = "SHOPGRAPH_DEBUG"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"shopgraph {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[bool, typer.Option(
             "--version", callback=_version, is_eager=True, help="Print the version.")] = False,
         uri: UriOpt = None, user: UserOpt = None, database: DatabaseOpt = None,
         debug: Annotated[bool, typer.Option(
             "--debug", envvar=DEBUG_ENV,
             help="On an error, show the full traceback (also SHOPGRAPH_DEBUG=1).")] = False,
         ) -> None:
    """shopgraph: recommendations, offers and ad audiences from a shop's interaction graph.

    The graph-server options (`--uri`, `--user`, `--database`) go before the command, e.g.
    `shopgraph --uri bolt://db:7687 train -w myshop`; without them, each workspace runs its
    own embedded server.
    """
    options.connection = Connection(uri, user, database)
    if debug:
        os.environ[DEBUG_ENV] = "1"  # read by the error boundary in run(), outside click
    else:  # the driver's own log lines ("defunct connection ...") would break the one-line error
        logging.getLogger("neo4j").addHandler(logging.NullHandler())


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
    from shopgraph.config import load_run_config
    from shopgraph.simulator import simulate
    from shopgraph.simulator.files import RUN_CONFIG

    started = time.perf_counter()
    with open_workspace(workspace) as ws:
        shop = ws.layout.demo_shop
        summary = simulate(shop, users=users, items=items, interactions=interactions, seed=seed)
        err.print(f"simulated {summary['users']:,} users, {summary['items']:,} items, "
                  f"{summary['interactions']:,} interactions into {shop}")
        outcome = run_pipeline(ws, load_run_config(shop / RUN_CONFIG))
        report_path = ws.layout.report
    results = outcome.results
    training, plan = results.get("training", {}), results.get("plan", {})
    nan = float("nan")
    err.print(f"held-out Recall@20 {training.get('metrics', {}).get('recall@20', nan):.4f}"
              f" (popularity {training.get('popularity', {}).get('recall@20', nan):.4f});"
              f" churn ROC-AUC {results.get('churn', {}).get('roc_auc', nan)}; offer plan"
              f" {plan.get('counts')}, expected net value {plan.get('objective', 0):,.0f} (true "
              f"{plan.get('truth', {}).get('objective', nan):,})")
    print_outputs(outcome)
    err.print(f"done in {time.perf_counter() - started:.0f} s; open {report_path}; the graph "
              f"server is still running, stop it with "
              f"`shopgraph db stop --workspace {workspace}`")


def run() -> None:
    """Entry point with the error boundary: a known error prints one line saying what to do
    (exit 1, or 2 for bad input); with `--debug` or SHOPGRAPH_DEBUG=1 the traceback too."""
    try:
        app()
    except (ShopgraphError, OSError) as exc:  # OSError: a file that cannot be read or written
        _fail(exc, 1)
    except ValueError as exc:
        _fail(exc, 2)
    except KeyboardInterrupt:
        err.print("interrupted; re-run the same command to resume")
        sys.exit(130)


def _fail(exc: BaseException, code: int) -> None:
    if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    error_line(exc)
    sys.exit(code)
