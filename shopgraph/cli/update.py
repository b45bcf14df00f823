"""``shopgraph update``: refresh a trained model and its index after new events were ingested."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from shopgraph.cli.options import (
    DEFAULT_WORKSPACE,
    JsonOpt,
    WorkspaceOpt,
    open_workspace,
)
from shopgraph.cli.output import err, print_json

if TYPE_CHECKING:
    from shopgraph.jobs.results import UpdateResult

STEPS = {"read": "reading what changed since the checkpoint",
         "fold": "folding new and changed users and new items in",
         "warm": "warm-starting from the checkpoint",
         "train": "retraining from scratch", "refit": "refitting on every interaction",
         "save": "writing the new checkpoint",
         "index": "rebuilding the index", "swap": "swapping the new files in"}


def update(
    model: Annotated[str | None, typer.Option(
        help="Model whose checkpoint to update (default: the newest checkpoint).")] = None,
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    full: Annotated[bool, typer.Option(
        "--full", help="Retrain from scratch (the `train` path, with the checkpoint's "
                       "settings) whatever changed.")] = False,
    max_new_share: Annotated[float | None, typer.Option(
        help="Refit (one new SVD with the model's settings) instead of folding in once the "
             "interactions added since the last full fit make more than this share of all of "
             "them (default 0.04, measured by bench/stream.py; docs/update.md).")] = None,
    max_new_item_share: Annotated[float | None, typer.Option(
        help="Refit once the items first given interactions since the last full fit make "
             "more than this share of the items with interactions (default 0.2).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Bring a trained model up to date with the graph after new events were ingested,
    without a full retrain.

    spectral: users whose interactions changed and new users are folded in from their
    interactions with the current item basis, new items from their interactions; nothing else
    moves (no new SVD). Once the drift since the last full fit passes --max-new-share or
    --max-new-item-share it is refitted on every interaction instead (one SVD, its settings
    kept); --full retrains from scratch (split, tuning, refit). lightgcn and graphsage are
    warm-started from the checkpoint (new users and items from their neighbours; trained for
    UpdateConfig.warm_epochs epochs, default 0), retrained past the thresholds. The index, when the
    model has one, is updated in place where its type allows (exact search, IVF; HNSW only
    adds) and rebuilt otherwise; the new checkpoint and index replace the old ones only once
    both are written, so a failure leaves the old ones in place. Nothing new: nothing is
    written.
    """
    def show(step: str) -> None:
        err.print(f"{STEPS.get(step, step)} ...")

    with open_workspace(workspace) as ws:
        result = ws.update(model, full=full, max_new_share=max_new_share,
                           max_new_item_share=max_new_item_share, progress=not as_json,
                           on_step=None if as_json else show)
    if as_json:
        print_json(result.to_dict())
    else:
        print_update(result)


def print_update(result: UpdateResult) -> None:
    """The summary of an update on stderr: what changed, the drift, the files."""
    name = result.model
    if result.mode == "unchanged":
        err.print(f"{name}: nothing new since the checkpoint ({result.interactions:,} "
                  f"interactions); nothing written")
    elif result.mode == "folded":
        err.print(f"{name}: folded in {result.changed_users:,} changed users, "
                  f"{result.new_users:,} new users and {result.new_items:,} new items "
                  f"({result.new_interactions:,} new interactions) in {result.seconds:.1f} s, "
                  f"without a refit")
    elif result.mode == "warm-started":
        trained_s = (result.steps or {}).get("warm")
        err.print(f"{name}: warm-started with {result.new_users:,} new users and "
                  f"{result.new_items:,} new items ({result.new_interactions:,} new "
                  f"interactions), trained on all {result.interactions:,} in "
                  f"{result.seconds:.1f} s" + ("" if trained_s is None else
                                                f" ({trained_s:.1f} s of it the warm start)"))
    elif result.mode == "refitted":
        err.print(f"{name}: refitted on all {result.interactions:,} interactions in "
                  f"{result.seconds:.1f} s: {result.reason}")
    else:
        err.print(f"{name}: retrained from scratch in {result.seconds:.1f} s: {result.reason}")
    if result.mode == "folded" and result.reason:
        err.print(f"note: {result.reason}")
    drift = result.drift
    err.print(f"since the last full fit: {drift['new_share']:.1%} of the interactions are new "
              f"(retrain above {drift['max_new_share']:.1%}), {drift['new_item_share']:.1%} of "
              f"the items (above {drift['max_new_item_share']:.1%})")
    if result.index is not None:
        kept = [n for n, ix in result.index["indexes"].items() if "in_place" in ix]
        how = f" ({', '.join(kept)} in place)" if kept else ""
        err.print(f"index updated{how}: {result.index['path']}")
    elif result.mode != "unchanged":
        err.print(f"{name} has no index; build one with `shopgraph index build --model {name}`")
    err.print(f"checkpoint: {result.checkpoint}")
