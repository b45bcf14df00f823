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

    note = ""  # a refitted model learnt from the held-out part: its figures are the split's
    if getattr(result, "recorded", False):
        note = "; recorded at training, before the refit on all data"
    elif getattr(result, "refit", None):
        note = "; model fitted on the split, before the refit"
    table = Table(title=f"{result.model} vs popularity (held-out split{note})")
    table.add_column("metric")
    table.add_column(result.model, justify="right")
    table.add_column("popularity", justify="right")
    for name, value in result.metrics.items():
        if name != "users":
            table.add_row(name, f"{value:.4f}", f"{result.popularity[name]:.4f}")
    out.print(table)


def train(
    model: Annotated[str, typer.Option(help=MODEL_HELP)] = "spectral",
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    epochs: Annotated[int | None, typer.Option(help="Most epochs (BPR models).")] = None,
    dim: Annotated[int | None, typer.Option(help="Embedding size.")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate (BPR models).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Triples per step (BPR models).")]
    = None,
    negatives: Annotated[str | None, typer.Option(
        help="Negative sampling: uniform, or dns (hardest of a few; BPR models).")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    max_seconds: Annotated[float | None, typer.Option(
        help="Training time budget in seconds, checked after every step (BPR models; it "
             "applies to the split fit and again to the refit).")] = None,
    valid_fraction: Annotated[float, typer.Option(
        help="Share of each user's interactions held out for early stopping and metrics "
             "(the latest ones when every interaction has a timestamp).")] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed of the split, sampling and init.")] = 0,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted training run.")] = False,
    refit: Annotated[bool, typer.Option(
        help="After measuring on the held-out split, fit the served model again on all "
             "interactions (BPR models: for the epochs the split chose), so it also learns "
             "from the held-out (latest) part. --no-refit serves the model fitted on the "
             "split.")] = True,
    rel: Annotated[list[str] | None, typer.Option(
        help="User->item relationship types to learn from (repeatable; default: all).")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Any other model setting as KEY=VALUE (e.g. --set layers=2).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Learn user and item embeddings from the graph and save a checkpoint.

    Interactions are exported from the graph, a held-out part is split off for early stopping
    and metrics, and the model is compared with popularity ranking on it. The model saved for
    serving is then refitted on all interactions (unless --no-refit).
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
                          resume=resume, refit=refit, progress=not as_json, **settings)
    if as_json:
        print_json(result.to_dict())
        return
    _print_metrics(result)
    err.print(f"trained {model} in {result.fit_seconds:.1f} s on "
              f"{result.train_interactions:,} interactions ({result.split} split)")
    if result.refit:
        ran = f", {result.refit['epochs']} epochs" if result.refit.get("epochs") else ""
        err.print(f"served model refitted on all {result.refit['interactions']:,} interactions "
                  f"in {result.refit['fit_seconds']:.1f} s{ran}")
    err.print(f"checkpoint: {result.checkpoint}")


def evaluate(
    model: Annotated[str, typer.Option(help=MODEL_HELP)] = "spectral",
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
