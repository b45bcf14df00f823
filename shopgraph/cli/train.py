"""``shopgraph train`` and ``shopgraph evaluate``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from shopgraph.cli.options import (
    DEFAULT_WORKSPACE,
    JsonOpt,
    WorkspaceOpt,
    open_workspace,
)
from shopgraph.cli.output import err, out, print_json
from shopgraph.config import parse_settings
from shopgraph.errors import ConfigError
from shopgraph.gnn.registry import MODELS

if TYPE_CHECKING:
    from shopgraph.jobs.results import EvaluationResult, TrainResult

MODEL_HELP = "Model: " + "; ".join(f"{k} = {v[2]}" for k, v in MODELS.items()) + "."


def _print_metrics(result: TrainResult | EvaluationResult) -> None:
    from rich.table import Table

    table = Table(title=f"{result.model} vs popularity (held-out split)")
    table.add_column("metric")
    table.add_column(result.model, justify="right")
    table.add_column("popularity", justify="right")
    for name, value in result.metrics.items():
        if name != "users":
            table.add_row(name, f"{value:.4f}", f"{result.popularity[name]:.4f}")
    out.print(table)


def train(
    model: Annotated[str, typer.Option(help=MODEL_HELP)] = "lightgcn",
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    epochs: Annotated[int | None, typer.Option(help="Most epochs (BPR models).")] = None,
    dim: Annotated[int | None, typer.Option(help="Embedding size.")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate (BPR models).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Triples per step (BPR models).")]
    = None,
    negatives: Annotated[str | None, typer.Option(
        help="Negative sampling: uniform, or dns (hardest of a few; BPR models).")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    max_seconds: Annotated[float | None, typer.Option(help="Training time budget.")] = None,
    valid_fraction: Annotated[float, typer.Option(
        help="Share of each user's interactions held out for early stopping and metrics "
             "(the latest ones when every interaction has a timestamp).")] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed of the split, sampling and init.")] = 0,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted training run.")] = False,
    rel: Annotated[list[str] | None, typer.Option(
        help="User->item relationship types to learn from (repeatable; default: all).")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Any other model setting as KEY=VALUE (e.g. --set layers=2).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Learn user and item embeddings from the graph and save a checkpoint.

    Interactions are exported from the graph, a held-out part is split off for early stopping
    and metrics, and the model is compared with popularity ranking on it.
    """
    settings = {k: v for k, v in {"epochs": epochs, "dim": dim, "lr": lr,
                                  "batch_size": batch_size, "negatives": negatives,
                                  "device": device, "max_seconds": max_seconds}.items()
                if v is not None}
    try:
        settings.update(parse_settings(set_ or []))
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--set") from exc
    with open_workspace(workspace) as ws:
        result = ws.train(model, valid_fraction=valid_fraction, seed=seed, rel_types=rel,
                          resume=resume, progress=not as_json, **settings)
    if as_json:
        print_json(result.to_dict())
        return
    _print_metrics(result)
    err.print(f"trained {model} in {result.fit_seconds:.1f} s on "
              f"{result.train_interactions:,} interactions ({result.split} split); "
              f"checkpoint: {result.checkpoint}")


def evaluate(
    model: Annotated[str, typer.Option(help=MODEL_HELP)] = "lightgcn",
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    as_json: JsonOpt = False,
) -> None:
    """Score a trained model's checkpoint on its held-out split, beside popularity."""
    with open_workspace(workspace) as ws:
        result = ws.evaluate(model)
    if as_json:
        print_json(result.to_dict())
    else:
        _print_metrics(result)
