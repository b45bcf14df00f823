"""``Workspace``: one folder holding a shop's config, embedded graph server and artefacts.

Layout::

    <workspace>/shopgraph.toml     settings (no secrets)
    <workspace>/graphdb/           the embedded server: data, pid file, 0600 password file, log
    <workspace>/exports/           arrays exported for the GNN layer
    <workspace>/models/            checkpoints (<model>.npz), metrics logs, training state
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shopgraph.config import DbConfig, load_db_config, remote_password


class Workspace:
    """A shop's workspace. Heavy parts (driver, server) are created on first use.

    Args:
        path: the workspace folder (created if missing).
        **db_overrides: ``uri``, ``user``, ``database`` overriding config and environment.
    """

    def __init__(self, path: str | Path, **db_overrides: str | None) -> None:
        self.path = Path(path).expanduser().resolve()
        self.path.mkdir(parents=True, exist_ok=True)
        self.db: DbConfig = load_db_config(self.path, **db_overrides)
        self._store: Any = None

    def __repr__(self) -> str:
        return f"Workspace({str(self.path)!r})"

    @property
    def exports_dir(self) -> Path:
        """Where exported arrays go."""
        return self.path / "exports"

    def server(self) -> Any:
        """The embedded server of this workspace (not started)."""
        from shopgraph.graphdb.server import EmbeddedServer

        return EmbeddedServer(self.path / "graphdb", heap=self.db.heap)

    def store(self, start: bool = True) -> Any:
        """A connected :class:`~shopgraph.graphdb.store.GraphStore`.

        With no URI configured, the workspace's embedded server is used and, when ``start`` is
        true, started if it is not running.
        """
        if self._store is not None:
            return self._store
        from shopgraph.graphdb.store import GraphStore

        if self.db.embedded:
            server = self.server()
            if not server.status().running:
                if not start:
                    from shopgraph.errors import ServerError

                    raise ServerError("the embedded graph server is not running; start it with "
                                      f"`shopgraph db start --workspace {self.path}`")
                server.start()
            server.ensure_database(self.db.database)
            self._store = GraphStore(server.uri, self.db.user or server.user, server.password(),
                                     self.db.database)
        else:
            self._store = GraphStore(self.db.uri, self.db.user or "neo4j",
                                     remote_password(self.db), self.db.database)
        return self._store

    def close(self) -> None:
        """Close the connection (the embedded server keeps running)."""
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ingest(self, data: Any, **kwargs: Any) -> Any:
        """Ingest a loader's :class:`~shopgraph.graphdb.frames.SourceData`; see
        :func:`shopgraph.graphdb.ingest.ingest`."""
        from shopgraph.graphdb.ingest import ingest

        return ingest(self.store(), data, **kwargs)

    def export_interactions(self, rel_types: list[str] | None = None,
                            save: bool = True) -> Any:
        """Export user->item interactions; also saved to ``exports/interactions.npz``."""
        from shopgraph.graphdb.export import export_interactions

        arrays = export_interactions(self.store(), rel_types)
        if save:
            arrays.save(self.exports_dir / "interactions.npz")
        return arrays

    @property
    def models_dir(self) -> Path:
        """Where checkpoints, metrics logs and training state go."""
        return self.path / "models"

    def checkpoint_path(self, model: str) -> Path:
        """The checkpoint file of ``model``."""
        return self.models_dir / f"{model}.npz"

    def train(self, model: str = "lightgcn", *, valid_fraction: float = 0.1, seed: int = 0,
              rel_types: list[str] | None = None, resume: bool = False, progress: bool = True,
              **settings: Any) -> dict[str, Any]:
        """Train ``model`` on the graph's interactions; see :func:`shopgraph.gnn.workflow.train`."""
        from shopgraph.gnn.workflow import train

        return train(self, model, valid_fraction=valid_fraction, seed=seed, rel_types=rel_types,
                     resume=resume, progress=progress, **settings)

    def evaluate(self, model: str = "lightgcn", ks: tuple[int, ...] = (10, 20, 50)
                 ) -> dict[str, Any]:
        """Score a checkpoint on its held-out split, beside popularity."""
        from shopgraph.gnn.workflow import evaluate_checkpoint

        return evaluate_checkpoint(self, model, ks)

    def summary(self) -> dict[str, dict[str, int]]:
        """Node and relationship counts."""
        return self.store().summary()


def open(path: str | Path, **db_overrides: str | None) -> Workspace:  # noqa: A001
    """Open (or create) the workspace at ``path``."""
    return Workspace(path, **db_overrides)
