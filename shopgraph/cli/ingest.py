"""``shopgraph ingest``, ``shopgraph export`` and ``shopgraph summary``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from shopgraph.cli.options import (
    DEFAULT_WORKSPACE,
    JsonOpt,
    WorkspaceOpt,
    open_workspace,
)
from shopgraph.cli.output import err, print_json, print_summary, progress_bar
from shopgraph.graphdb.formats import FORMATS, load

FORMAT_HELP = "Input format: " + "; ".join(f"{k} = {v[2]}" for k, v in FORMATS.items()) + "."


def ingest(
    fmt: Annotated[str, typer.Argument(metavar="FORMAT", help=FORMAT_HELP)],
    path: Annotated[Path, typer.Argument(help="The input file, folder or mapping file.")],
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    strict: Annotated[bool, typer.Option(
        "--strict/--skip-bad",
        help="--strict stops at the first bad row and writes nothing; --skip-bad skips bad "
             "rows and reports them.")] = True,
    batch_size: Annotated[int, typer.Option(min=100, help="Rows per transaction.")] = 10_000,
    bulk: Annotated[bool, typer.Option(
        "--bulk",
        help="First load into an empty database through the database's own loader (ArcadeDB's "
             "importer; for Neo4j the neo4j-admin import files): many times faster, same "
             "graph and ledger; the database is offline meanwhile. See docs/bulk-load.md.")]
    = False,
    as_json: JsonOpt = False,
) -> None:
    """Load a file into the graph: validated first, written in batches, safe to re-run.

    Running the same file again changes nothing; an interrupted ingest resumes where it
    stopped when run again.
    """
    err.print(Text(f"reading {path} as {fmt} ..."))
    data = load(fmt, path, strict=strict)
    with open_workspace(workspace) as ws, \
            progress_bar(f"{'bulk load' if bulk else 'ingest'} {data.name}") as update:
        summary = ws.ingest(data, batch_size=batch_size, strict=strict, on_progress=update,
                            bulk=bulk)
    if as_json:
        print_json(summary.as_dict())
        return
    rate = summary.relationships_written / summary.seconds if summary.seconds else 0.0
    err.print(Text.assemble(
        ("done", "green"),
        f" in {summary.seconds:.1f} s: nodes {summary.nodes or '{}'}, relationships "
        f"{summary.relationships or '{}'} ({rate:,.0f}/s); {summary.already_present} event(s) "
        f"already present; {summary.batches_already_done} of {summary.batches} batch(es) "
        "already done" + (f"; {summary.retries} transaction(s) run again after colliding with "
                          "another writer" if summary.retries else "")))
    if summary.conflicts:
        err.print(Text.assemble(
            (f"{summary.conflicts} event(s) already present with another ts or value were left "
             "unchanged", "yellow"),
            " (the first write wins; to correct one, delete its relationship or re-ingest into "
            "a fresh database); first ones:"))
        for conflict in summary.first_conflicts[:10]:
            err.print(Text(f"  {conflict}"))
    if summary.problems:
        err.print(Text.assemble((f"{len(summary.problems)} bad row(s) skipped", "yellow"),
                                ", first ones:"))
        for problem in summary.problems[:10]:
            err.print(Text(f"  {problem}"))


def export(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    rel: Annotated[list[str] | None, typer.Option(
        help="User->item relationship types to export (repeatable; default: all present).")]
    = None,
    output: Annotated[Path | None, typer.Option(
        "--out", help="Write the arrays here (.npz; default: <workspace>/exports/"
                      "interactions.npz).")] = None,
) -> None:
    """Export user->item interactions to NumPy arrays with stable id maps (for training)."""
    with open_workspace(workspace) as ws:
        arrays = ws.export_interactions(rel, path=output)
        target = output or ws.layout.interactions
    err.print(Text(f"exported {len(arrays):,} interactions of {len(arrays.user_ids):,} users and "
                   f"{len(arrays.item_ids):,} items ({', '.join(arrays.rel_types)}) to {target}"))


def summary(workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
            as_json: JsonOpt = False) -> None:
    """Count the nodes and relationships in the graph."""
    with open_workspace(workspace) as ws:
        counts = ws.summary()
    if as_json:
        print_json(counts)
    else:
        print_summary(counts)
    if not counts["nodes"]:
        err.print(Text("the graph is empty; load data with `shopgraph ingest`"))
