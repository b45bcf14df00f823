"""``shopgraph simulate``: write a seeded synthetic shop with its ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shopgraph.cli.options import JsonOpt
from shopgraph.cli.output import err, out, print_json, progress_bar


def simulate(
    output: Annotated[Path, typer.Option(
        "--out", file_okay=False,
        help="Folder to write the tables, mapping.toml, holdout.parquet and truth.npz to.")]
    = Path("simulated-shop"),
    users: Annotated[int, typer.Option(min=20, help="Number of users.")] = 20_000,
    items: Annotated[int, typer.Option(min=2, help="Number of items.")] = 5_000,
    interactions: Annotated[int, typer.Option(
        min=0, help="Expected number of views, carts and purchases in the ingestable files "
                    "(the realised number is close to it).")] = 500_000,
    seed: Annotated[int, typer.Option(help="Seed: the same options give identical files.")] = 0,
    engine: Annotated[str | None, typer.Option(
        "--engine", show_default=False,
        help="Where the users' streams are drawn: 'local' (this process) or a Dask scheduler "
             "address such as tcp://host:8786 (default: SHOPGRAPH_ENGINE, else local). "
             "The files are the same either way.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Simulate a shop with known ground truth: users with hidden tastes and types, a catalogue,
    a year of views, carts and purchases, churn, a targeted newsletter and a randomised offer
    test; the next 90 days go to holdout.parquet and the truth to truth.npz.

    Ingest it with `shopgraph ingest tabular OUT/mapping.toml`; see docs/simulator.md.
    """
    from shopgraph.config import load_engine_config
    from shopgraph.parallel import open_engine
    from shopgraph.simulator import simulate as run_simulation

    address = load_engine_config(None, address=engine).address
    err.print(f"simulating {users:,} users, {items:,} items, ~{interactions:,} interactions "
              f"(seed {seed}) into {output} ({address}) ...")
    with open_engine(address) as runner, progress_bar("draw users", quiet=as_json) as update:
        summary = run_simulation(output, users=users, items=items, interactions=interactions,
                                 seed=seed, engine=runner, on_progress=update)
    if as_json:
        print_json(summary)
        return
    test = summary["campaigns"]["campaign-1"]
    out.print(f"{summary['interactions']:,} interactions "
              f"({', '.join(f'{k} {v:,}' for k, v in summary['by_type'].items())}) from "
              f"{summary['origin']} to {summary['cutoff']}; "
              f"{summary['holdout_interactions']:,} more until {summary['horizon_end']} in "
              "holdout.parquet")
    out.print(f"offer test campaign-1 arms: "
              f"{', '.join(f'{a} {n:,}' for a, n in test['arms'].items())}; "
              f"{summary['alive_at_cutoff']:,} users active at the cutoff, "
              f"{summary['churned_in_horizon']:,} of them churn in the horizon")
    out.print(f"ingest with: shopgraph ingest tabular {summary['mapping']}")
