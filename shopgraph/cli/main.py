"""The ``shopgraph`` app: wiring, ``--version``, ``demo`` and the single error boundary."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from shopgraph import __version__
from shopgraph.cli import db, index, ingest, query, report, target, train
from shopgraph.cli import run as pipeline
from shopgraph.cli.options import DEFAULT_WORKSPACE, WorkspaceOpt
from shopgraph.cli.output import err, print_summary, progress_bar
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


def _version(value: bool) -> None:
    if value:
        typer.echo(f"shopgraph {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version.")] = False) -> None:
    """shopgraph: recommendations, offers and ad audiences from a shop's interaction graph."""


DEMO_SOURCES = (("lightgcn", "gowalla/train.txt"), ("hillstrom", "hillstrom/hillstrom.csv"))


@app.command()
def demo(workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
         data: Annotated[Path, typer.Option(help="Folder of the shared datasets.")]
         = Path("../shared/data")) -> None:
    """Run the main job end to end on the embedded server: start it, ingest Gowalla and the
    Hillstrom campaign, export the interactions, learn embeddings, build the retrieval indexes,
    print a summary and a first recommendation, and plan offers from the Hillstrom experiment
    under a budget."""
    from shopgraph.graphdb.formats import load
    from shopgraph.workspace import Workspace

    missing = [rel for _, rel in DEMO_SOURCES if not (data / rel).is_file()]
    if missing:
        raise ShopgraphError(f"the demo needs {', '.join(missing)} under {data}; "
                             "pass --data with the folder of the shared datasets")
    with Workspace(workspace) as ws:
        ws.store()
        for fmt, rel in DEMO_SOURCES:
            source = load(fmt, data / rel)
            with progress_bar(f"ingest {rel}") as update:
                s = ws.ingest(source, on_progress=update)
            err.print(f"{rel}: {s.relationships_written:,} relationships written, "
                      f"{s.batches_already_done}/{s.batches} batches already done, "
                      f"{s.seconds:.1f} s")
        arrays = ws.export_interactions()
        print_summary(ws.summary())
        err.print(f"exported {len(arrays):,} interactions to "
                  f"{ws.exports_dir / 'interactions.npz'}")
        result = ws.train("spectral", progress=False)
        m, p = result["metrics"], result["popularity"]
        err.print(f"trained spectral embeddings in {result['fit_seconds']:.1f} s: held-out "
                  f"Recall@20 {m['recall@20']:.4f}, NDCG@20 {m['ndcg@20']:.4f} (popularity "
                  f"{p['recall@20']:.4f}, {p['ndcg@20']:.4f}); checkpoint {result['checkpoint']}")
        info = ws.build_index("spectral")
        items = info["indexes"]["items"]
        err.print(f"built the retrieval indexes ({items['factory']}, recall@20 vs exact "
                  f"{items['recall@20']:.3f}) in {info['build_seconds']:.1f} s: {info['path']}")
        user = ws.retriever().user_ids[0]
        recs = ws.recommend(user, k=5)
        err.print(f"top 5 for user {user}: " + ", ".join(f"{m.id} ({m.score:.3f})" for m in recs)
                  + f"; try `shopgraph recommend {user} -w {workspace}`")
        plan = ws.offers("hillstrom-2008", 2000.0, cost=0.1, label="value")
        counts = ", ".join(f"{k} {v:,}" for k, v in plan["counts"].items())
        err.print(f"offer plan from the Hillstrom experiment (e-mails at 0.10 each, budget "
                  f"2,000, uplift in spend): {counts}; expected extra spend net of cost "
                  f"{plan['objective']:,.0f} (within {100 * plan['gap']:.3f} % of the optimum); "
                  f"{plan['control']:,} held out as control; {plan['without_features']:,} users "
                  f"without Hillstrom features left out; list {plan['path']}")
        err.print(f"graph server still running for {ws.path}; stop it with "
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
