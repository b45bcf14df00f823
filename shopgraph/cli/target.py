"""``shopgraph target``: a campaign's audience as a list to send, with its control group."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shopgraph.cli.options import (
    DEFAULT_WORKSPACE,
    DatabaseOpt,
    JsonOpt,
    ModelOpt,
    UriOpt,
    UserOpt,
    WorkspaceOpt,
)
from shopgraph.cli.output import err, out, print_json
from shopgraph.workspace import Workspace


def target(
    campaign: Annotated[str | None, typer.Option(
        help="Campaign id: its promoted items (offers that apply to items) define the "
             "audience, and its id salts the control group.")] = None,
    item: Annotated[list[str] | None, typer.Option(
        help="Item id to promote instead of the campaign's own (repeatable).")] = None,
    n: Annotated[int, typer.Option("-n", "--n", help="Audience size, control included.")]
    = 1000,
    control_share: Annotated[float, typer.Option(
        help="Share of the audience held out as a random control group (hash-based, "
             "reproducible).")] = 0.1,
    winback: Annotated[bool, typer.Option(
        "--winback", help="Favour customers the churn head sees leaving.")] = False,
    heads: Annotated[bool, typer.Option(
        help="Re-rank with the response and churn heads where the graph's history supports "
             "them (else retrieval alone).")] = True,
    exclude_buyers: Annotated[bool, typer.Option(
        "--exclude-buyers", help="Leave out users who already bought or rated one of the "
                                 "items.")] = False,
    pseudonymise: Annotated[bool, typer.Option(
        "--pseudonymise", help="Write HMAC-SHA256 pseudonyms (key in <workspace>/pseudonym.key, "
                               "0600) instead of user ids.")] = False,
    email_hashes: Annotated[bool, typer.Option(
        "--email-hashes", help="Add SHA-256 hashes of normalised e-mail addresses, as ad "
                               "platforms' customer-list uploads expect.")] = False,
    write_back: Annotated[bool, typer.Option(
        "--write-back", help="Record the send (TARGETED) and control (HELD_OUT) in the graph, "
                             "tagged with the run id.")] = False,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="CSV or Parquet file (default: "
                               "<workspace>/exports/targets/<campaign>-<run>.csv).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the control group.")] = 0,
    model: ModelOpt = None,
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    uri: UriOpt = None, user: UserOpt = None, database: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Plan a campaign's audience and export it as a list.

    Candidates are the users whose embeddings score highest against the promoted items; where
    the graph holds other campaigns' outcomes and timestamped purchases, a response head and a
    churn head re-rank them. Users who opted out (consent false) are never listed. A random
    control group is marked `control` and must not be contacted. The same inputs and seed
    give the same run id and list.
    """
    if campaign is None and not item:
        raise typer.BadParameter("give --campaign, --item, or both", param_hint="--campaign")
    with Workspace(workspace, uri=uri, user=user, database=database) as ws:
        result = ws.target(campaign, n, items=item or None, control_share=control_share,
                           seed=seed, winback=winback, heads=heads,
                           exclude_buyers=exclude_buyers, model=model, output=output,
                           pseudonymise=pseudonymise, email_hashes=email_hashes,
                           write_back=write_back)
    frame = result.pop("frame")
    if as_json:
        print_json(result)
        return
    from rich.table import Table

    table = Table(title=f"audience of {result['campaign']} (first 10)")
    for col in ("rank", "user_id", "score", "arm", "top_item", "because_of"):
        table.add_column(col)
    for row in frame.head(10).itertuples(index=False):
        table.add_row(str(row.rank), str(row.user_id), f"{row.score:.3f}", row.arm,
                      str(row.top_item), str(row.because_of))
    out.print(table)
    for note in result["used"]:
        err.print(note)
    err.print(f"run {result['run_id'][:12]}: {result['send']:,} to send, {result['control']:,} "
              f"held out as control, {result['no_consent']:,} left out without consent; "
              f"list: {result['path']}"
              + (f"; {result['written_back']:,} relationships written to the graph"
                 if result["written_back"] is not None else ""))
