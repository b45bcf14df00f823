"""``shopgraph index build|info``: the retrieval indexes over a model's embeddings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

import typer

from shopgraph.cli.options import (
    DEFAULT_WORKSPACE,
    JsonOpt,
    WorkspaceOpt,
    open_workspace,
)
from shopgraph.cli.output import err, out, print_json, progress_bar

if TYPE_CHECKING:
    from shopgraph.jobs.results import IndexResult

app = typer.Typer(help="Build and inspect the retrieval indexes that answer `recommend`, "
                       "`similar` and `audience`.", no_args_is_help=True,
                  rich_markup_mode="markdown")

Kind = Literal["auto", "exact", "hnsw", "ivf", "ivfpq"]  # shopgraph.retrieval.index.KINDS


def print_indexes(result: IndexResult) -> None:
    """Print one row per index, then where the file is."""
    from rich.table import Table

    table = Table(title=f"indexes of {result.model}")
    for name in ("name", "factory", "metric", "n", "d", "params", "recall@20", "build s", "MB"):
        table.add_column(name, justify="left" if name in ("name", "factory", "metric", "params")
                         else "right")
    for name, ix in result.indexes.items():
        params = ", ".join(f"{k}={v}" for k, v in ix["params"].items()) or "-"
        recall = ix.get("recall@20")
        seconds = ix.get("build_seconds")
        table.add_row(name, ix["factory"], ix["metric"], f"{ix['n']:,}", str(ix["d"]), params,
                      "-" if recall is None else f"{recall:.4f}",
                      "-" if seconds is None else f"{seconds:.2f}",
                      f"{ix['bytes'] / 1e6:.2f}")
    out.print(table)
    seen = ", ".join(result.seen_rel_types) or "none"
    err.print(f"index of {result.model}: {result.path} ({result.seen_pairs:,} seen pairs "
              f"from {seen} left out of recommendations)")


@app.command()
def build(
    model: Annotated[str | None, typer.Option(
        help="Model whose checkpoint to index (default: the newest checkpoint).")] = None,
    kind: Annotated[Kind, typer.Option(
        help="Index kind: auto = exact while users (or items) × dimensions ≤ 4M floats, else "
             "HNSW; exact = brute force; hnsw, ivf, ivfpq = FAISS approximate indexes tuned "
             "to --target-recall.")] = "auto",
    factory: Annotated[str | None, typer.Option(
        help="A FAISS index factory string (e.g. HNSW64 or IVF1024,PQ16); overrides "
             "--kind.")] = None,
    target_recall: Annotated[float, typer.Option(
        help="Recall@20 against exact search that approximate indexes are tuned for.")] = 0.98,
    seen_rel: Annotated[list[str] | None, typer.Option(
        help="Relationship type whose items are left out of a user's recommendations "
             "(repeatable; default: PURCHASED, RATED and INTERACTED where present).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the tuning sample and of training "
                                           "approximate indexes.")] = 0,
    ef_construction: Annotated[int | None, typer.Option(
        help="HNSW build depth (FAISS default 40): deeper builds are slower and may reach the "
             "target recall with less search effort.")] = None,
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    as_json: JsonOpt = False,
) -> None:
    """Build a model's indexes (items, users, and cosine neighbours of each) from its
    checkpoint and the graph's seen items and catalogue, and save them in the workspace."""
    with open_workspace(workspace) as ws, progress_bar("build indexes", quiet=as_json) as update:
        result = ws.build_index(model, kind=kind, factory=factory, target_recall=target_recall,
                                seen_rel_types=seen_rel, seed=seed,
                                ef_construction=ef_construction, on_progress=update)
    if as_json:
        print_json(result.to_dict())
    else:
        print_indexes(result)


@app.command()
def info(
    model: Annotated[str | None, typer.Option(
        help="Model whose index to describe (default: the one whose index was built "
             "last).")] = None,
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    as_json: JsonOpt = False,
) -> None:
    """Describe a saved index: per index its factory, parameters, tuned recall and size."""
    result = open_workspace(workspace).index_info(model)
    if as_json:
        print_json(result.to_dict())
    else:
        print_indexes(result)
