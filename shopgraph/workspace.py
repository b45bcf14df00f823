"""``Workspace``: one folder holding a shop's config, embedded graph server and artefacts.

Layout::

    <workspace>/shopgraph.toml     settings (no secrets)
    <workspace>/graphdb/           the embedded server: data, pid file, 0600 password file, log
    <workspace>/exports/           arrays exported for the GNN layer
    <workspace>/models/            checkpoints (<model>.npz), metrics logs, training state
    <workspace>/indexes/           retrieval indexes (<model>.npz), one per checkpoint
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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
        self._retrievers: dict[str, Any] = {}

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

    # -- retrieval -------------------------------------------------------------------------

    @property
    def indexes_dir(self) -> Path:
        """Where retrieval indexes go."""
        return self.path / "indexes"

    def index_path(self, model: str) -> Path:
        """The index file of ``model``."""
        return self.indexes_dir / f"{model}.npz"

    def default_model(self) -> str:
        """The model queries use when none is named: the one whose index was built last."""
        return _newest(self.indexes_dir, "index", "train a model and build its index with "
                       "`shopgraph train` then `shopgraph index build`")

    def build_index(self, model: str | None = None, *, kind: str = "auto",
                    factory: str | None = None, target_recall: float = 0.98,
                    seen_rel_types: Sequence[str] | None = None, seed: int = 0,
                    ef_construction: int | None = None,
                    on_progress: Any = None) -> dict[str, Any]:
        """Build ``model``'s indexes from its checkpoint and the graph's seen items and
        catalogue; see :func:`shopgraph.retrieval.build.build_bundle`. Returns a summary."""
        from shopgraph.gnn.checkpoint import load_checkpoint
        from shopgraph.retrieval.build import build_bundle, catalogue_from_graph, seen_from_graph
        from shopgraph.retrieval.persist import save_bundle

        model = model or _newest(self.models_dir, "checkpoint",
                                 "train a model first with `shopgraph train`")
        ckpt = load_checkpoint(self.checkpoint_path(model), weights=False)
        store = self.store()
        seen, rels = seen_from_graph(store, ckpt, seen_rel_types)
        bundle = build_bundle(ckpt, seen=seen, seen_rel_types=rels,
                              catalogue=catalogue_from_graph(store, ckpt), kind=kind,
                              factory=factory, target_recall=target_recall, seed=seed,
                              ef_construction=ef_construction, on_progress=on_progress)
        path = save_bundle(self.index_path(model), bundle)
        self._retrievers.pop(model, None)
        return {"path": str(path), **bundle.describe()}

    def retriever(self, model: str | None = None) -> Any:
        """The :class:`~shopgraph.retrieval.queries.Retriever` of ``model`` (loaded once)."""
        from shopgraph.retrieval.queries import Retriever

        model = model or self.default_model()
        if model not in self._retrievers:
            self._retrievers[model] = Retriever.load(self.index_path(model),
                                                     self.checkpoint_path(model))
        return self._retrievers[model]

    def embedding(self, kind: str, id_: str, model: str | None = None) -> Any:
        """The embedding vector of one ``user`` or ``item``."""
        return self.retriever(model).embedding(kind, id_)

    def recommend(self, user_id: str, k: int = 10, *, model: str | None = None,
                  **kwargs: Any) -> Any:
        """Items for a user; see :meth:`Retriever.recommend_batch` for filters."""
        return self.retriever(model).recommend(user_id, k, **kwargs)

    def recommend_batch(self, user_ids: Iterable[str] | None = None, k: int = 10, *,
                        model: str | None = None, **kwargs: Any) -> Any:
        """Items for many users (all when ``user_ids`` is None), as ``Results``."""
        return self.retriever(model).recommend_batch(user_ids, k, **kwargs)

    def similar_items(self, item_id: str, k: int = 10, *, model: str | None = None) -> Any:
        """Items most like one item."""
        return self.retriever(model).similar_items(item_id, k)

    def similar_items_batch(self, item_ids: Iterable[str], k: int = 10, *,
                            model: str | None = None, **kwargs: Any) -> Any:
        """Items most like each of many items, as ``Results``."""
        return self.retriever(model).similar_items_batch(item_ids, k, **kwargs)

    def similar_users(self, user_id: str, k: int = 10, *, model: str | None = None) -> Any:
        """Users most like one user."""
        return self.retriever(model).similar_users(user_id, k)

    def similar_users_batch(self, user_ids: Iterable[str], k: int = 10, *,
                            model: str | None = None, **kwargs: Any) -> Any:
        """Users most like each of many users, as ``Results``."""
        return self.retriever(model).similar_users_batch(user_ids, k, **kwargs)

    def campaign_items(self, campaign_id: str) -> list[str]:
        """The items a campaign promotes (through its offers), read from the graph."""
        from shopgraph.errors import UnknownIdError
        from shopgraph.graphdb import cypher

        rows = self.store().query(cypher.CAMPAIGN_ITEMS, campaign=str(campaign_id))
        if not rows:
            raise UnknownIdError(f"campaign {campaign_id!r} is not in the graph")
        return [i for i in rows[0]["items"] if i is not None]

    def audience(self, campaign: str | None = None, n: int = 1000, *,
                 items: Iterable[str] | None = None, category: str | Sequence[str] | None = None,
                 exclude_buyers: bool = False, model: str | None = None) -> Any:
        """The ``n`` users closest to a campaign's promoted items, to ``items``, or to a
        ``category`` (exactly one of the three)."""
        if sum(x is not None for x in (campaign, items, category)) != 1:
            raise ValueError("give exactly one of campaign, items or category")
        if campaign is not None:
            items = self.campaign_items(campaign)
            if not items:
                raise ValueError(f"campaign {campaign!r} promotes no items (no offer of it "
                                 "applies to an item); pass items or a category instead")
        return self.retriever(model).audience(items, n, category=category,
                                              exclude_buyers=exclude_buyers)

    # -- strategy inputs -------------------------------------------------------------------

    def purchases(self, rel_types: Sequence[str] = ("PURCHASED",)) -> Any:
        """Timestamped purchases (``user_id, ts, value``); see
        :func:`shopgraph.strategies.data.purchases`."""
        from shopgraph.strategies.data import purchases

        return purchases(self.store(), rel_types)

    def campaign_log(self, campaign_id: str | None = None, include_runs: bool = False) -> Any:
        """Who took part in each campaign, under which arm, and what they did (shopgraph's own
        written-back runs only with ``include_runs``); see
        :func:`shopgraph.strategies.data.campaign_log`."""
        from shopgraph.strategies.data import campaign_log

        return campaign_log(self.store(), campaign_id, include_runs)

    def user_features(self) -> Any:
        """The users' stored properties, indexed by id."""
        from shopgraph.strategies.data import user_features

        return user_features(self.store())

    def target(self, campaign: str | None = None, n: int = 1000, **kwargs: Any
               ) -> dict[str, Any]:
        """Plan a campaign's audience, export it, optionally record it in the graph; see
        :func:`shopgraph.strategies.targeting.target`."""
        from shopgraph.strategies.targeting import target

        return target(self, campaign, n, **kwargs)

    def offers(self, campaign: str, budget: float, **kwargs: Any) -> dict[str, Any]:
        """Choose the next offer (or none) per user from a past randomised campaign, under a
        budget; see :func:`shopgraph.strategies.offer_plan.plan_offers`."""
        from shopgraph.strategies.offer_plan import plan_offers

        return plan_offers(self, campaign, budget, **kwargs)

    def summary(self) -> dict[str, dict[str, int]]:
        """Node and relationship counts."""
        return self.store().summary()


def _newest(folder: Path, what: str, advice: str) -> str:
    """The name (stem) of the most recently written ``.npz`` in ``folder``."""
    found = sorted(folder.glob("*.npz"), key=lambda p: p.stat().st_mtime)
    if not found:
        from shopgraph.errors import ShopgraphError

        raise ShopgraphError(f"no {what} in {folder}; {advice}")
    return found[-1].stem


def open(path: str | Path, **db_overrides: str | None) -> Workspace:  # noqa: A001
    """Open (or create) the workspace at ``path``."""
    return Workspace(path, **db_overrides)
