"""``Workspace``: the Python API over one shop's folder (see :mod:`shopgraph.layout` for what
it holds). A thin, typed facade: it owns the connection to the graph and the loaded
retrievers, and hands them, with the layout and a typed configuration, to the jobs
(:mod:`shopgraph.jobs`), the queries (:class:`~shopgraph.retrieval.queries.Retriever`) and the
pipeline (:mod:`shopgraph.pipeline`). Nothing below it ever sees the workspace.

Heavy parts (the driver, the server, pandas, torch, FAISS) are imported on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shopgraph.config import (
    DbConfig,
    IndexConfig,
    OffersConfig,
    RunConfig,
    TargetConfig,
    TrainConfig,
    UpdateConfig,
    load_db_config,
    remote_password,
)
from shopgraph.errors import ConfigError
from shopgraph.layout import WorkspaceLayout

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from shopgraph.graphdb.export import Interactions
    from shopgraph.graphdb.frames import SourceData
    from shopgraph.graphdb.ingest import IngestSummary
    from shopgraph.graphdb.server import EmbeddedServer
    from shopgraph.graphdb.store import GraphStore
    from shopgraph.jobs.loop import LoopResult
    from shopgraph.jobs.results import (
        EvaluationResult,
        IndexResult,
        OfferPlanResult,
        TargetResult,
        TrainResult,
        UpdateResult,
    )
    from shopgraph.pipeline import RunResult
    from shopgraph.retrieval.queries import Match, Results, Retriever

Progress = Callable[[int, int], None]


class Workspace:
    """A shop's workspace.

    Args:
        path: the workspace folder (created if missing).
        uri: a Bolt URI overriding the config and ``SHOPGRAPH_URI`` (empty: embedded server).
        user: the user name, likewise.
        database: the database name, likewise.
    """

    def __init__(self, path: str | Path, *, uri: str | None = None, user: str | None = None,
                 database: str | None = None) -> None:
        self.layout = WorkspaceLayout.at(path)
        self.layout.root.mkdir(parents=True, exist_ok=True)
        self.db: DbConfig = load_db_config(self.layout.config, uri=uri, user=user,
                                           database=database)
        self._store: GraphStore | None = None
        self._retrievers: dict[str, tuple[tuple[tuple[int, int], ...], Retriever]] = {}

    @property
    def path(self) -> Path:
        """The workspace folder."""
        return self.layout.root

    def __repr__(self) -> str:
        return f"Workspace({str(self.path)!r})"

    # -- the graph -------------------------------------------------------------------------

    def server(self) -> EmbeddedServer:
        """The embedded server of this workspace (not started)."""
        from shopgraph.graphdb.server import EmbeddedServer

        return EmbeddedServer(self.layout.graphdb, heap=self.db.heap)

    def store(self, start: bool = True) -> GraphStore:
        """A connected graph store (created once).

        With no URI configured, the workspace's embedded server is used and, when ``start`` is
        true, started if it is not running.
        """
        if self._store is not None:
            return self._store
        from shopgraph.graphdb.store import GraphStore

        if self.db.embedded:
            server = self.server()
            if not start and not server.status().running:
                from shopgraph.errors import ServerError

                raise ServerError("the embedded graph server is not running; start it with "
                                  f"`shopgraph db start --workspace {self.path}`")
            server.ensure_running()  # under the server's lock: concurrent commands start it once
            server.ensure_database(self.db.database)
            self._store = GraphStore(server.uri, self.db.user or server.user, server.password(),
                                     self.db.database,
                                     type_count=partial(server.type_count, self.db.database))
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

    def bulk_loadable(self) -> bool:
        """Whether :meth:`ingest` can take the bulk first load: the workspace's embedded
        server (the importer runs on its files) and an empty database."""
        return self.db.embedded and self.store().is_empty()

    def ingest(self, data: SourceData, *, batch_size: int = 10_000, strict: bool = True,
               on_progress: Progress | None = None, bulk: bool = False) -> IngestSummary:
        """Ingest a loader's data, recording in the workspace's journal which users got new
        edges (read by :meth:`update`); see :func:`shopgraph.graphdb.ingest.ingest`. With
        ``bulk``, an empty database is filled by the database's own loader instead
        (:func:`shopgraph.graphdb.bulk.bulk_load`; on Neo4j its files go to
        ``exports/neo4j-import``)."""
        if bulk:
            from shopgraph.graphdb.bulk import bulk_load

            return bulk_load(self.store(), data, server=self.server() if self.db.embedded
                             else None, batch_size=batch_size, strict=strict,
                             on_progress=on_progress, journal=self.layout.changes,
                             neo4j_folder=self.layout.exports / "neo4j-import")
        from shopgraph.graphdb.ingest import ingest

        return ingest(self.store(), data, batch_size=batch_size, strict=strict,
                      on_progress=on_progress, journal=self.layout.changes)

    def export_interactions(self, rel_types: Sequence[str] | None = None, *,
                            path: str | Path | None = None) -> Interactions:
        """Export user->item interactions, saved to ``path`` (default: the workspace's
        ``exports/interactions.npz``)."""
        from shopgraph.graphdb.export import export_interactions

        arrays = export_interactions(self.store(), list(rel_types) if rel_types else None)
        arrays.save(Path(path) if path is not None else self.layout.interactions)
        return arrays

    def summary(self) -> dict[str, dict[str, int]]:
        """Node and relationship counts."""
        return self.store().summary()

    def campaign_items(self, campaign_id: str) -> list[str]:
        """The items a campaign promotes (through its offers), read from the graph."""
        from shopgraph.graphdb.tables import campaign_items

        return campaign_items(self.store(), campaign_id)

    def purchases(self, rel_types: Sequence[str] = ("PURCHASED",)) -> pd.DataFrame:
        """Timestamped purchases (``user_id, ts, value``); see
        :func:`shopgraph.graphdb.tables.purchases`."""
        from shopgraph.graphdb.tables import purchases

        return purchases(self.store(), rel_types)

    def campaign_log(self, campaign_id: str | None = None, include_runs: bool = False
                     ) -> pd.DataFrame:
        """Who took part in each campaign, under which arm, and what they did; see
        :func:`shopgraph.graphdb.tables.campaign_log`."""
        from shopgraph.graphdb.tables import campaign_log

        return campaign_log(self.store(), campaign_id, include_runs)

    def user_features(self) -> pd.DataFrame:
        """The users' stored properties, indexed by id."""
        from shopgraph.graphdb.tables import user_features

        return user_features(self.store())

    # -- models ----------------------------------------------------------------------------

    def train(self, model: str = "spectral", *, valid_fraction: float = 0.1, seed: int = 0,
              rel_types: Sequence[str] | None = None, resume: bool = False, refit: bool = True,
              progress: bool = True, **settings: int | float | str | bool) -> TrainResult:
        """Train ``model`` on the graph's interactions; ``settings`` are the model's own
        hyper-parameters (e.g. ``epochs=50``, ``k=64``). The served model is refitted on all
        interactions unless ``refit=False``. See :func:`shopgraph.jobs.train`."""
        from shopgraph.jobs.train import train_model

        config = TrainConfig(valid_fraction=valid_fraction, seed=seed,
                             rel_types=tuple(rel_types) if rel_types else None, resume=resume,
                             refit=refit, settings=settings)
        return train_model(self.store(), self.layout, model, config, progress=progress)

    def evaluate(self, model: str = "spectral", ks: tuple[int, ...] = (10, 20, 50)
                 ) -> EvaluationResult:
        """Score a checkpoint on its held-out split, beside popularity."""
        from shopgraph.jobs.train import evaluate_model

        return evaluate_model(self.store(), self.layout, model, ks)

    def update(self, model: str | None = None, *, full: bool = False,
               max_new_share: float | None = None, max_new_item_share: float | None = None,
               progress: bool = True,
               on_step: Callable[[str], None] | None = None) -> UpdateResult:
        """Bring ``model``'s checkpoint (default: the newest) and its index up to date with the
        graph after new events were ingested: folded in without a refit where the model allows
        it, refitted past the drift thresholds, retrained otherwise or when ``full``; see
        :class:`~shopgraph.config.UpdateConfig` and :func:`shopgraph.jobs.update.update_model`.
        """
        from shopgraph.jobs.update import update_model

        defaults = UpdateConfig()
        config = UpdateConfig(
            full=full,
            max_new_share=defaults.max_new_share if max_new_share is None else max_new_share,
            max_new_item_share=(defaults.max_new_item_share if max_new_item_share is None
                                else max_new_item_share))
        return update_model(self.store(), self.layout, model or self.layout.newest_checkpoint(),
                            config, progress=progress, on_step=on_step)

    # -- retrieval -------------------------------------------------------------------------

    def default_model(self) -> str:
        """The model queries use when none is named: the one whose index was built last."""
        return self.layout.newest_index()

    def build_index(self, model: str | None = None, *, kind: str = "auto",
                    factory: str | None = None, target_recall: float = 0.98,
                    seen_rel_types: Sequence[str] | None = None, seed: int = 0,
                    ef_construction: int | None = None,
                    on_progress: Progress | None = None) -> IndexResult:
        """Build ``model``'s indexes (default: the newest checkpoint's) from its checkpoint and
        the graph's seen items and catalogue; see :func:`shopgraph.jobs.index.build_index`."""
        from shopgraph.jobs.index import build_index

        config = IndexConfig(kind=kind, factory=factory, target_recall=target_recall,
                             seen_rel_types=tuple(seen_rel_types) if seen_rel_types else None,
                             seed=seed, ef_construction=ef_construction)
        return build_index(self.store(), self.layout, model or self.layout.newest_checkpoint(),
                           config, on_progress)

    def index_info(self, model: str | None = None) -> IndexResult:
        """Describe ``model``'s saved indexes (default: the last built)."""
        from shopgraph.jobs.index import index_result

        retriever = self.retriever(model)
        return index_result(self.layout.index(retriever.model), retriever.bundle.describe())

    def retriever(self, model: str | None = None) -> Retriever:
        """The :class:`~shopgraph.retrieval.queries.Retriever` of ``model``, loaded once and
        again whenever its index or checkpoint file changes (a new checkpoint without a new
        index is then refused with :class:`~shopgraph.errors.IndexMismatchError`)."""
        from shopgraph.retrieval.queries import Retriever

        model = model or self.default_model()
        files = (self.layout.index(model), self.layout.checkpoint(model))
        stamp = tuple((p.stat().st_mtime_ns, p.stat().st_size) if p.is_file() else (0, 0)
                      for p in files)
        cached = self._retrievers.get(model)
        if cached is None or cached[0] != stamp:
            cached = (stamp, Retriever.load(*files))
            self._retrievers[model] = cached
        return cached[1]

    def embedding(self, kind: str, id_: str, model: str | None = None) -> np.ndarray:
        """The embedding vector of one ``user`` or ``item``."""
        return self.retriever(model).embedding(kind, id_)

    def recommend(self, user_id: str, k: int = 10, *, model: str | None = None,
                  exclude_seen: bool = True, category: str | Sequence[str] | None = None,
                  price_min: float | None = None, price_max: float | None = None,
                  items: Iterable[str] | None = None) -> list[Match]:
        """Items for a user; see :meth:`Retriever.recommend_batch` for the filters."""
        return self.retriever(model).recommend(user_id, k, exclude_seen=exclude_seen,
                                               category=category, price_min=price_min,
                                               price_max=price_max, items=items)

    def recommend_batch(self, user_ids: Iterable[str] | None = None, k: int = 10, *,
                        model: str | None = None, exclude_seen: bool = True,
                        category: str | Sequence[str] | None = None,
                        price_min: float | None = None, price_max: float | None = None,
                        items: Iterable[str] | None = None,
                        skip_unknown: bool = False) -> Results:
        """Items for many users (all when ``user_ids`` is None)."""
        return self.retriever(model).recommend_batch(
            user_ids, k, exclude_seen=exclude_seen, category=category, price_min=price_min,
            price_max=price_max, items=items, skip_unknown=skip_unknown)

    def similar_items(self, item_id: str, k: int = 10, *, model: str | None = None
                      ) -> list[Match]:
        """Items most like one item."""
        return self.retriever(model).similar_items(item_id, k)

    def similar_items_batch(self, item_ids: Iterable[str], k: int = 10, *,
                            model: str | None = None, skip_unknown: bool = False) -> Results:
        """Items most like each of many items."""
        return self.retriever(model).similar_items_batch(item_ids, k, skip_unknown)

    def similar_users(self, user_id: str, k: int = 10, *, model: str | None = None
                      ) -> list[Match]:
        """Users most like one user."""
        return self.retriever(model).similar_users(user_id, k)

    def similar_users_batch(self, user_ids: Iterable[str], k: int = 10, *,
                            model: str | None = None, skip_unknown: bool = False) -> Results:
        """Users most like each of many users."""
        return self.retriever(model).similar_users_batch(user_ids, k, skip_unknown)

    def audience(self, campaign: str | None = None, n: int = 1000, *,
                 items: Iterable[str] | None = None, category: str | Sequence[str] | None = None,
                 exclude_buyers: bool = False, model: str | None = None) -> list[Match]:
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

    # -- campaigns -------------------------------------------------------------------------

    def target(self, campaign: str | None = None, n: int = 1000, *,
               items: Sequence[str] | None = None, control_share: float = 0.1, seed: int = 0,
               winback: bool = False, heads: bool = True, exclude_buyers: bool = False,
               pseudonymise: bool = False, email_hashes: bool = False,
               write_back: bool = False, model: str | None = None,
               output: str | Path | None = None) -> TargetResult:
        """Plan a campaign's audience, export it, optionally record it in the graph; see
        :class:`~shopgraph.config.TargetConfig` and :func:`shopgraph.jobs.target.target`."""
        from shopgraph.jobs.target import target

        config = TargetConfig(campaign=campaign, n=n, items=tuple(items) if items else None,
                              control_share=control_share, seed=seed, winback=winback,
                              heads=heads, exclude_buyers=exclude_buyers,
                              pseudonymise=pseudonymise, email_hashes=email_hashes,
                              write_back=write_back)
        return target(self.store(), self.retriever(model), self.layout, config, output=output)

    def offers(self, campaign: str, budget: float, *,
               cost: float | Mapping[str, float] = 0.0, value_per_response: float = 1.0,
               label: str = "converted", caps: Mapping[str, int] | None = None,
               control_share: float = 0.1, kind: str = "lightgbm", calibrated: bool = True,
               behaviour: bool = True, seed: int = 0, pseudonymise: bool = False,
               output: str | Path | None = None) -> OfferPlanResult:
        """Choose the next offer (or none) per user from a past randomised campaign, under a
        budget; see :class:`~shopgraph.config.OffersConfig` and
        :func:`shopgraph.jobs.offers.plan_offers`."""
        from shopgraph.jobs.offers import plan_offers

        config = OffersConfig(campaign=campaign, budget=budget, cost=cost,
                              value_per_response=value_per_response, label=label, caps=caps,
                              control_share=control_share, kind=kind, calibrated=calibrated,
                              behaviour=behaviour, seed=seed, pseudonymise=pseudonymise)
        return plan_offers(self.store(), self.layout, config, output=output)

    # -- the main job ----------------------------------------------------------------------

    def run(self, config: str | Path | RunConfig, *, step: str | None = None,
            force: bool = False, on_step: Callable[[str, str, float], None] | None = None
            ) -> RunResult:
        """Run the pipeline of ``config`` (a ``run.toml`` or a loaded configuration) on this
        workspace; see :mod:`shopgraph.pipeline`."""
        from shopgraph.config import load_run_config
        from shopgraph.pipeline import Pipeline

        if not isinstance(config, RunConfig):
            config = load_run_config(config)
        return Pipeline(self, config, on_step).run(step, force)

    def loop(self, config: str | Path | RunConfig, *, rounds: int | None = None,
             on_round: Callable[[dict[str, Any]], None] | None = None) -> LoopResult:
        """Run (or resume) the campaign loop of ``config``'s ``[run.loop]`` on the simulated
        shop beside it; see :mod:`shopgraph.jobs.loop`.

        Raises:
            ConfigError: the configuration has no ``[run.loop]``, or no simulated shop
                (``truth.npz``) beside it.
        """
        from shopgraph.config import load_run_config
        from shopgraph.jobs.loop import run_loop

        cfg = config if isinstance(config, RunConfig) else load_run_config(config)
        if cfg.loop is None:
            raise ConfigError(f"{cfg.file} has no [run.loop] table; add one (budget, cost) "
                              "or re-create the shop with `shopgraph simulate`")
        if cfg.truth is None or not cfg.truth.is_file():
            raise ConfigError(f"{cfg.file}: `shopgraph loop` runs against a simulated shop "
                              "(truth = \"truth.npz\" beside it); on a real shop, plan each "
                              "round with `shopgraph offers` and ingest the answers")
        return run_loop(self.store(), self.layout, cfg.loop, shop=cfg.truth.parent,
                        rounds=rounds, on_round=on_round)

    def report(self, results: str | Path | None = None, output: str | Path | None = None
               ) -> Path:
        """Render the run's results (default: this workspace's) as the HTML report (default:
        the workspace's ``report.html``); returns the path written.

        When the workspace has run ``shopgraph loop``, its finished rounds become the report's
        ``loop`` section (unless the results hold one already); a workspace that has only run
        the loop gets a report of the loop alone.
        """
        import json

        from shopgraph.report.build import build_report, read_results

        source = Path(results) if results is not None else self.layout.run_results
        state = self.layout.loop_state
        loop_only = results is None and not source.is_file() and state.is_file()
        data = {} if loop_only else read_results(source)
        data.setdefault("workspace", str(self.path))
        if state.is_file():
            rounds = json.loads(state.read_text(encoding="utf-8")).get("rounds") or {}
            # round ids are "w01", "w02", ...: by length, then text, is round order past w99
            data.setdefault("loop", {"rounds": [rounds[k] for k in sorted(
                rounds, key=lambda k: (len(k), k))]})
        return build_report(data, Path(output) if output is not None else self.layout.report)


def open(path: str | Path, *, uri: str | None = None, user: str | None = None,  # noqa: A001
         database: str | None = None) -> Workspace:
    """Open (or create) the workspace at ``path``."""
    return Workspace(path, uri=uri, user=user, database=database)
