"""``shopgraph recommend``, ``similar`` and ``audience``: queries over a model's indexes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from shopgraph.cli.options import (
    DEFAULT_WORKSPACE,
    FormatOpt,
    ModelOpt,
    OutputOpt,
    WorkspaceOpt,
    open_workspace,
)
from shopgraph.cli.output import resolve_format, write_results

if TYPE_CHECKING:
    import pandas as pd

    from shopgraph.retrieval.queries import Match

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
    model: ModelOpt = None,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Recommend the top-k items to each given user (or `--all` users), best first.

    Output columns: query (the user), rank, item_id, score.
    """
    if bool(user_ids) == all_users:
        raise typer.BadParameter("give user ids or --all (not both)", param_hint="USER_IDS")
    resolve_format(fmt, output)
    with open_workspace(workspace) as ws:
        results = ws.recommend_batch(
            None if all_users else user_ids, k, model=model, exclude_seen=exclude_seen,
            category=category or None, price_min=price_min, price_max=price_max,
            items=_read_ids(items_file) if items_file else None, skip_unknown=skip_unknown)
    write_results(results, fmt, output)


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
