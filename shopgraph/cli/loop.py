"""``shopgraph loop``: a campaign every round on a simulated shop, each learnt from the logs of
every earlier one, with off-policy estimates and readouts beside the truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from shopgraph.cli.options import DEFAULT_WORKSPACE, JsonOpt, WorkspaceOpt, open_workspace
from shopgraph.cli.output import err, print_json


def loop(
    config: Annotated[Path, typer.Argument(
        help="The simulated shop's run.toml (with a [run.loop] table: budget per round, cost "
             "per send, policy); `shopgraph simulate` writes one.")],
    rounds: Annotated[int | None, typer.Option(
        help="Rounds to reach (default: [run.loop] rounds). Finished rounds are kept: a "
             "second call resumes, or goes on to more rounds.")] = None,
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    as_json: JsonOpt = False,
) -> None:
    """Run the campaign loop: each round, learn a reward model from every logged decision
    (weighted by its propensity), draw offers with the configured policy (Thompson sampling by
    default) under the budget with a control group, write the decisions back with their
    propensities, let the simulated shop answer, ingest the answers, and read the round out
    (A/B against control, off-policy estimates, the truth).

    Interrupted, it resumes at the round it stopped, with the same decisions.
    """
    from rich.text import Text

    from shopgraph.config import load_run_config

    cfg = load_run_config(config)

    def show(rec: dict[str, Any]) -> None:
        if as_json:
            return
        truth = rec.get("truth", {})
        dr = rec.get("ope_policy", {}).get("dr", {})
        err.print(Text.assemble(
            (rec["round"], "bold"),
            f": sent {sum(rec['sends'].values()):,} (cost {rec['cost']:,.0f}), control "
            f"{rec['control']:,}; value true {truth.get('policy_value', float('nan')):,.0f}, "
            f"DR {dr.get('value', float('nan')):,.0f} "
            f"[{dr.get('ci_low', float('nan')):,.0f}, {dr.get('ci_high', float('nan')):,.0f}] "
            f"in {rec['seconds']:.0f} s"))

    with open_workspace(workspace) as ws:
        result = ws.loop(cfg, rounds=rounds, on_round=show)
    if as_json:
        print_json(result.to_dict())
        return
    total = sum(r.get("truth", {}).get("policy_value", 0.0) for r in result.rounds)
    err.print(f"{len(result.rounds)} round(s); cumulative true net value {total:,.0f}; "
              f"state in {Path(workspace) / 'loop' / 'state.json'}")
