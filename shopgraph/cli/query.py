"""``shopgraph recommend``, ``similar`` and ``audience``: queries over a model's indexes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shopgraph.cli.options import (
    DEFAULT_WORKSPACE,
    FormatOpt,
    ModelOpt,
    OutputOpt,
    WorkspaceOpt,
    open_workspace,
)
from shopgraph.cli.output import err, resolve_format, write_results

if TYPE_CHECKING:
    import pandas as pd

    from shopgraph.retrieval.exact import SearchResult
    from shopgraph.retrieval.queries import Match, Results, Retriever

KOpt = Annotated[int, typer.Option("-k", "--k", help="Results per query.")]
SkipUnknownOpt = Annotated[bool, typer.Option(
    "--skip-unknown", help="Leave out ids the model does not know instead of failing.")]


def _read_ids(path: Path) -> list[str]:
    """Ids from a text file, one a line; blank lines are skipped."""
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def recommend(
    user_ids: Annotated[list[str] | None, typer.Argument(
        metavar="USER_IDS", help="Users to recommend items to.", show_default=False)] = None,
    all_users: Annotated[bool, typer.Option(
        "--all", help="Recommend to every user the model knows.")] = False,
    k: KOpt = 10,
    exclude_seen: Annotated[bool, typer.Option(
        help="Leave out items the user already has (the index's seen relationship types, "
             "e.g. bought or rated).")] = True,
    category: Annotated[list[str] | None, typer.Option(
        help="Only items of this category (repeatable: any of them).")] = None,
    price_min: Annotated[float | None, typer.Option(
        help="Only items priced at least this (items without a price are left out).")] = None,
    price_max: Annotated[float | None, typer.Option(
        help="Only items priced at most this (items without a price are left out).")] = None,
    items_file: Annotated[Path | None, typer.Option(
        exists=True, dir_okay=False,
        help="Only these items: a text file of item ids, one a line (e.g. what is in "
             "stock).")] = None,
    skip_unknown: SkipUnknownOpt = False,
    engine: Annotated[str | None, typer.Option(
        "--engine", show_default=False,
        help="With --all: where the user blocks are scored, 'local' (this process) or a Dask "
             "scheduler address such as tcp://host:8786 (default: SHOPGRAPH_ENGINE, else "
             "[engine] address in the workspace's shopgraph.toml, else local).")] = None,
    model: ModelOpt = None,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Recommend the top-k items to each given user (or `--all` users), best first.

    With `--all`, users are scored in blocks ([engine] block_size), here or on a Dask cluster
    (`--engine`); a Parquet output is written block by block. Output columns: query (the user),
    rank, item_id, score.
    """
    if bool(user_ids) == all_users:
        raise typer.BadParameter("give user ids or --all (not both)", param_hint="USER_IDS")
    if engine and not all_users:
        raise typer.BadParameter("--engine applies to --all only", param_hint="--engine")
    chosen = resolve_format(fmt, output)
    filters: dict[str, Any] = {"exclude_seen": exclude_seen, "category": category or None,
                               "price_min": price_min, "price_max": price_max,
                               "items": _read_ids(items_file) if items_file else None}
    with open_workspace(workspace) as ws:
        if not all_users:
            results = ws.recommend_batch(user_ids, k, model=model, skip_unknown=skip_unknown,
                                         **filters)
            write_results(results, fmt, output)
            return
        from shopgraph.config import load_engine_config
        from shopgraph.parallel import open_engine

        settings = load_engine_config(ws.layout.config, address=engine)
        retriever = ws.retriever(model)
        with open_engine(settings.address) as runner:
            if chosen == "parquet":
                assert output is not None  # resolve_format refuses parquet to stdout
                rows = retriever.export_all(output, k, engine=runner,
                                            block_size=settings.block_size, **filters)
                err.print(f"wrote {rows:,} rows to {output}")
                return
            blocks = list(retriever.recommend_all(k, engine=runner,
                                                  block_size=settings.block_size, **filters))
    write_results(_assemble(retriever, blocks, k), fmt, output)


def _assemble(retriever: Retriever, blocks: list[tuple[int, SearchResult]], k: int) -> Results:
    """Every user's results from :meth:`Retriever.recommend_all`'s blocks."""
    import numpy as np

    from shopgraph.retrieval.exact import empty_result
    from shopgraph.retrieval.queries import Results

    parts = [found for _, found in blocks] or [empty_result(0, k)]
    return Results(retriever.user_ids, np.concatenate([p.ids for p in parts]),
                   np.concatenate([p.scores for p in parts]), retriever.item_ids, "item")


def similar(
    ids: Annotated[list[str], typer.Argument(
        metavar="IDS", help="Item ids (or user ids with --users).",
        show_default=False)],
    users: Annotated[bool, typer.Option(
        "--users", help="Find users similar to the given users instead of items.")] = False,
    k: KOpt = 10,
    skip_unknown: SkipUnknownOpt = False,
    model: ModelOpt = None,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Find the k items most similar (cosine) to each given item, itself left out; with
    `--users`, the users most similar to each given user.

    Output columns: query, rank, item_id (or user_id), score.
    """
    resolve_format(fmt, output)
    with open_workspace(workspace) as ws:
        find = ws.similar_users_batch if users else ws.similar_items_batch
        results = find(ids, k, model=model, skip_unknown=skip_unknown)
    write_results(results, fmt, output)


def audience(
    campaign: Annotated[str | None, typer.Option(
        help="Campaign id: target the items its offers apply to (read from the graph).")]
    = None,
    item: Annotated[list[str] | None, typer.Option(
        help="Item id to promote (repeatable).")] = None,
    category: Annotated[list[str] | None, typer.Option(
        help="Promote every item of this category (repeatable).")] = None,
    n: Annotated[int, typer.Option("-n", "--n", help="Audience size.")] = 1000,
    exclude_buyers: Annotated[bool, typer.Option(
        "--exclude-buyers",
        help="Leave out users who already bought or rated one of the items.")] = False,
    model: ModelOpt = None,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Find the n users scoring highest against a campaign's items, given items, or a
    category: give exactly one of `--campaign`, `--item`, `--category`.

    A user's score is the mean of the model's scores for those items. Output columns: query
    (the campaign, items or categories), rank, user_id, score.
    """
    given = [name for name, v in (("--campaign", campaign), ("--item", item),
                                  ("--category", category)) if v]
    if len(given) != 1:
        raise typer.BadParameter(f"give exactly one of --campaign, --item, --category (got "
                                 f"{', '.join(given) or 'none'})")
    resolve_format(fmt, output)
    with open_workspace(workspace) as ws:
        matches = ws.audience(campaign, n, items=item or None, category=category or None,
                              exclude_buyers=exclude_buyers, model=model)
    query = campaign or ",".join(item or category or [])
    write_results(_frame(query, matches, "user"), fmt, output)


def _frame(query: str, matches: list[Match], kind: str) -> pd.DataFrame:
    """A single query's matches in the long form of ``Results.to_pandas()``."""
    import pandas as pd

    return pd.DataFrame({"query": [query] * len(matches),
                         "rank": range(1, len(matches) + 1),
                         f"{kind}_id": [m.id for m in matches],
                         "score": [float(m.score) for m in matches]})
