"""``shopgraph index build|info``: the retrieval indexes over a model's embeddings."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import typer

from shopgraph.cli.options import (
    DEFAULT_WORKSPACE,
    DatabaseOpt,
    JsonOpt,
    UriOpt,
    UserOpt,
    WorkspaceOpt,
)
from shopgraph.cli.output import err, out, print_json, progress_bar
from shopgraph.workspace import Workspace

app = typer.Typer(help="Build and inspect the retrieval indexes that answer `recommend`, "
                       "`similar` and `audience`.", no_args_is_help=True,
                  rich_markup_mode="markdown")

Kind = Literal["auto", "exact", "hnsw", "ivf", "ivfpq"]  # shopgraph.retrieval.index.KINDS


def print_indexes(summary: dict[str, Any], path: str) -> None:
    """Print one row per index of a bundle summary, then where the file is."""
    from rich.table import Table

    table = Table(title=f"indexes of {summary['model']}")
    for name in ("name", "factory", "metric", "n", "d", "params", "recall@20", "build s", "MB"):
        table.add_column(name, justify="left" if name in ("name", "factory", "metric", "params")
                         else "right")
    for name, ix in summary["indexes"].items():
        params = ", ".join(f"{k}={v}" for k, v in ix["params"].items()) or "-"
        recall = ix.get("recall@20")
        seconds = ix.get("build_seconds")
        table.add_row(name, ix["factory"], ix["metric"], f"{ix['n']:,}", str(ix["d"]), params,
                      "-" if recall is None else f"{recall:.4f}",
                      "-" if seconds is None else f"{seconds:.2f}",
                      f"{ix['bytes'] / 1e6:.2f}")
    out.print(table)
    seen = ", ".join(summary["seen_rel_types"]) or "none"
    err.print(f"index of {summary['model']}: {path} ({summary['seen_pairs']:,} seen pairs "
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
    uri: UriOpt = None, user: UserOpt = None, database: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Build a model's indexes (items, users, and cosine neighbours of each) from its
    checkpoint and the graph's seen items and catalogue, and save them in the workspace."""
    with Workspace(workspace, uri=uri, user=user, database=database) as ws:
        kwargs: dict[str, Any] = {"kind": kind, "factory": factory,
                                  "target_recall": target_recall, "seen_rel_types": seen_rel,
                                  "seed": seed, "ef_construction": ef_construction}
        if as_json:
            result = ws.build_index(model, **kwargs)
        else:
            with progress_bar("build indexes") as update:
                result = ws.build_index(model, on_progress=update, **kwargs)
    if as_json:
        print_json(result)
    else:
        print_indexes(result, result["path"])


@app.command()
def info(
    model: Annotated[str | None, typer.Option(
        help="Model whose index to describe (default: the one whose index was built "
             "last).")] = None,
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    as_json: JsonOpt = False,
) -> None:
    """Describe a saved index: per index its factory, parameters, tuned recall and size."""
    from shopgraph.gnn.checkpoint import load_checkpoint
    from shopgraph.retrieval.persist import load_bundle

    ws = Workspace(workspace)
    model = model or ws.default_model()
    path = ws.index_path(model)
    ckpt = load_checkpoint(ws.checkpoint_path(model), weights=False)
    summary = load_bundle(path, ckpt).describe()
    if as_json:
        print_json({"path": str(path), **summary})
    else:
        print_indexes(summary, str(path))
