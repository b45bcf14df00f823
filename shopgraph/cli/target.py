"""``shopgraph target`` and ``shopgraph offers``: lists to send, each with its control group."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shopgraph.cli.options import (
    DEFAULT_WORKSPACE,
    JsonOpt,
    ModelOpt,
    WorkspaceOpt,
    open_workspace,
)
from shopgraph.cli.output import err, out, print_json


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
    with open_workspace(workspace) as ws:
        result = ws.target(campaign, n, items=item or None, control_share=control_share,
                           seed=seed, winback=winback, heads=heads,
                           exclude_buyers=exclude_buyers, model=model, output=output,
                           pseudonymise=pseudonymise, email_hashes=email_hashes,
                           write_back=write_back)
    if as_json:
        print_json(result.to_dict())
        return
    from rich.table import Table

    table = Table(title=f"audience of {result.campaign} (first 10)")
    for col in ("rank", "user_id", "score", "arm", "top_item", "because_of"):
        table.add_column(col)
    for row in result.frame.head(10).itertuples(index=False):
        table.add_row(str(row.rank), str(row.user_id), f"{row.score:.3f}", row.arm,
                      str(row.top_item), str(row.because_of))
    out.print(table)
    for note in result.used:
        err.print(note)
    err.print(f"run {result.run_id[:12]}: {result.send:,} to send, {result.control:,} "
              f"held out as control, {result.no_consent:,} left out without consent; "
              f"list: {result.path}"
              + (f"; {result.written_back:,} relationships written to the graph"
                 if result.written_back is not None else ""))


def _per_offer(values: list[str], option: str) -> float | dict[str, float]:
    """``[NUMBER]`` -> that number for every offer; ``[OFFER=NUMBER, ...]`` -> a dict."""
    from shopgraph.config import parse_settings
    from shopgraph.errors import ConfigError

    if len(values) == 1 and "=" not in values[0]:
        try:
            return float(values[0])
        except ValueError as exc:
            raise typer.BadParameter(f"{values[0]!r} is not a number", param_hint=option) from exc
    try:
        parsed = parse_settings(values)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from exc
    bad = {k: v for k, v in parsed.items() if not isinstance(v, int | float)}
    if bad:
        raise typer.BadParameter(f"values must be numbers, got {bad}", param_hint=option)
    return parsed


def offers(
    campaign: Annotated[str, typer.Option(
        help="A past randomised campaign (arms plus a held-out control): its arms are the "
             "offers to choose from, its outcomes train the uplift model.")],
    budget: Annotated[float, typer.Option(
        help="Total budget, in the unit of --cost (with cost 1, the number of sends).")],
    cost: Annotated[list[str] | None, typer.Option(
        help="Cost of one send: a number for every offer, or OFFER=COST (repeatable).")]
    = None,
    value_per_response: Annotated[float, typer.Option(
        help="Worth of one extra response (ignored with --label value, where the uplift is "
             "spend).")] = 1.0,
    label: Annotated[str, typer.Option(
        help="Outcome to raise: converted, visited, redeemed, or value (spend).")]
    = "converted",
    cap: Annotated[list[str] | None, typer.Option(
        help="Most users for an offer, as OFFER=N (repeatable).")] = None,
    control_share: Annotated[float, typer.Option(
        help="Share of the selected users held out as a control group.")] = 0.1,
    kind: Annotated[str, typer.Option(help="Uplift base model: lightgbm or logistic.")]
    = "lightgbm",
    pseudonymise: Annotated[bool, typer.Option(
        "--pseudonymise", help="Write HMAC-SHA256 pseudonyms instead of user ids.")] = False,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="CSV or Parquet file (default: "
                               "<workspace>/exports/offers/<campaign>-<run>.csv).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the model and the control group.")] = 0,
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    as_json: JsonOpt = False,
) -> None:
    """Choose the next offer (or none) for every customer, under a budget.

    A multi-treatment uplift model learns from the past campaign's randomised arms; each
    offer's net value per customer is uplift × value − cost; HiGHS picks at most one offer per
    customer within the budget, caps and consent, and the report says how close to optimal
    the choice is. The list carries the offer, expected value, uplift reasons and a
    treatment/control flag.
    """
    costs = _per_offer(cost, "--cost") if cost else 0.0
    given = _per_offer(cap, "--cap") if cap else None
    if isinstance(given, float) or (given and any(v != int(v) or v < 0 for v in given.values())):
        raise typer.BadParameter("caps take OFFER=N with N a whole number", param_hint="--cap")
    caps = {k: int(v) for k, v in given.items()} if given else None
    with open_workspace(workspace) as ws:
        result = ws.offers(campaign, budget, cost=costs, value_per_response=value_per_response,
                           label=label, caps=caps, control_share=control_share, kind=kind,
                           seed=seed, output=output, pseudonymise=pseudonymise)
    if as_json:
        print_json(result.to_dict())
        return
    counts = ", ".join(f"{k}: {v:,}" for k, v in result.counts.items())
    err.print(f"run {result.run_id[:12]}: {result.selected:,} customers get an offer "
              f"({counts}); {result.control:,} of them held out as control. Expected "
              f"incremental value {result.objective:,.2f}, within {100 * result.gap:.3f} % "
              f"of the optimum (LP bound {result.lp_bound:,.2f}); budget used "
              f"{result.budget_used:,.2f} of {result.budget:,.2f}; list: {result.path}")
