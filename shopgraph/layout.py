"""``WorkspaceLayout``: the one place that names the files and folders of a workspace.

Layout of a workspace folder::

    shopgraph.toml                  settings ([db]; never secrets)
    graphdb/                        the embedded server's own folder: data, pid file, 0600
                                    password file, log (its contents are the server's business)
    exports/interactions.npz        arrays exported for the embedding models
    exports/changes/                journal of ingest: per committed batch, the users it wrote
                                    user->item edges for (read by `shopgraph update`)
    exports/targets/<campaign>-<run>.csv    audience lists of `shopgraph target`
    exports/offers/<campaign>-<run>.csv     offer lists of `shopgraph offers`
    models/<model>.npz              checkpoints
    models/<model>.metrics.jsonl    training metrics log, one line per epoch
    models/<model>.state.pt         resumable training state (BPR models)
    indexes/<model>.npz             retrieval indexes of a checkpoint
    run/state.json                  `shopgraph run`: each step's input fingerprint and output
    run/results.json                `shopgraph run`: every step's results, read by the report
    loop/state.json                 `shopgraph loop`: finished rounds and the files ingested
    loop/<round>/                   `shopgraph loop`: a round's decisions, kept once drawn
    report.html                     the report of the last run
    pseudonym.key                   0600 key of the HMAC pseudonyms in exported lists
    shop/                           `shopgraph demo`: the simulated shop it runs on

Nothing else in shopgraph builds a path inside a workspace.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WorkspaceLayout:
    """The paths of the workspace at ``root`` (see the module docstring).

    Args:
        root: the workspace folder, absolute.
    """

    root: Path

    @classmethod
    def at(cls, path: str | Path) -> WorkspaceLayout:
        """The layout of the workspace at ``path`` (made absolute; nothing is created)."""
        return cls(Path(path).expanduser().resolve())

    @property
    def config(self) -> Path:
        """The settings file."""
        return self.root / "shopgraph.toml"

    @property
    def graphdb(self) -> Path:
        """The embedded graph server's folder."""
        return self.root / "graphdb"

    @property
    def exports(self) -> Path:
        """Where exported arrays and lists go."""
        return self.root / "exports"

    @property
    def interactions(self) -> Path:
        """The default export of user->item interactions."""
        return self.exports / "interactions.npz"

    @property
    def changes(self) -> Path:
        """The ingest journal: the users each committed batch wrote user->item edges for."""
        return self.exports / "changes"

    def target_list(self, campaign: str, run_id: str) -> Path:
        """The default audience list of a ``target`` run."""
        return self.exports / "targets" / f"{campaign}-{run_id[:12]}.csv"

    def offer_list(self, campaign: str, run_id: str) -> Path:
        """The default offer list of an ``offers`` run."""
        return self.exports / "offers" / f"{campaign}-{run_id[:12]}.csv"

    @property
    def models(self) -> Path:
        """Where checkpoints, metrics logs and training state go."""
        return self.root / "models"

    def checkpoint(self, model: str) -> Path:
        """The checkpoint of ``model``."""
        return self.models / f"{model}.npz"

    def metrics_log(self, model: str) -> Path:
        """The training metrics log of ``model``."""
        return self.models / f"{model}.metrics.jsonl"

    def train_state(self, model: str) -> Path:
        """The resumable training state of ``model``."""
        return self.models / f"{model}.state.pt"

    @property
    def indexes(self) -> Path:
        """Where retrieval indexes go."""
        return self.root / "indexes"

    def index(self, model: str) -> Path:
        """The retrieval indexes of ``model``."""
        return self.indexes / f"{model}.npz"

    @property
    def run(self) -> Path:
        """The folder of ``shopgraph run``'s bookkeeping."""
        return self.root / "run"

    @property
    def run_state(self) -> Path:
        """Each pipeline step's input fingerprint and output."""
        return self.run / "state.json"

    @property
    def run_results(self) -> Path:
        """Every pipeline step's results (what the report renders)."""
        return self.run / "results.json"

    @property
    def loop(self) -> Path:
        """The folder of ``shopgraph loop``: its state and each round's decisions."""
        return self.root / "loop"

    @property
    def loop_state(self) -> Path:
        """The rounds the loop has finished (their records) and the files it ingested."""
        return self.loop / "state.json"

    def loop_round(self, round_id: str) -> Path:
        """One round's decisions, features and plan (kept once drawn, for a resume)."""
        return self.loop / round_id

    @property
    def report(self) -> Path:
        """The HTML report."""
        return self.root / "report.html"

    @property
    def pseudonym_key(self) -> Path:
        """The 0600 key of exported pseudonyms."""
        return self.root / "pseudonym.key"

    @property
    def demo_shop(self) -> Path:
        """Where ``shopgraph demo`` writes the simulated shop it runs on."""
        return self.root / "shop"

    def newest_checkpoint(self) -> str:
        """The model whose checkpoint was written last."""
        return _newest(self.models, "checkpoint", "train a model first with `shopgraph train`")

    def newest_index(self) -> str:
        """The model whose index was built last (what queries use when no model is named)."""
        return _newest(self.indexes, "index", "train a model and build its index with "
                       "`shopgraph train` then `shopgraph index build`")


def _newest(folder: Path, what: str, advice: str) -> str:
    """The name (stem) of the most recently written ``.npz`` in ``folder``."""
    found = sorted(folder.glob("*.npz"), key=lambda p: p.stat().st_mtime)
    if not found:
        from shopgraph.errors import ShopgraphError

        raise ShopgraphError(f"no {what} in {folder}; {advice}")
    return found[-1].stem
