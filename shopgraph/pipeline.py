"""``shopgraph run``: the product's main job as one configured pipeline of steps.

    ingest -> train -> index -> heads -> target -> offers -> report

Each step is also a command of its own (``shopgraph ingest``, ``train``, ...). A step records
the fingerprint of its inputs (the data files, its settings, the upstream step's output) in the
workspace's ``run/state.json`` and is skipped when they did not change and its outputs (files
and results) still exist; ``--step`` runs one step alone (the steps before it are taken as they
are). When only the data changed since a model was trained with the same settings, the train step
takes ``shopgraph update``'s path (``jobs/update.py``: fold in or refit) instead of training
again; ``force`` retrains. The configuration is the ``[run]`` table of a TOML file, read into a
:class:`~shopgraph.config.RunConfig` (see ``docs/pipeline.md``).

Failures: a step whose data cannot support an answer raises
:class:`~shopgraph.errors.InsufficientDataError`; for the heads, target and offers steps that is
recorded as ``{"skipped": reason}``, an answer kept until the inputs change. Any other error (a
lost server, a bad setting, a bug) fails the step: it is not recorded as done, the run stops,
and the next run retries it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from shopgraph.artifacts import file_sha256, fingerprint, write_json
from shopgraph.config import BULK_FIRST_LOAD_EDGES, RunConfig, TrainConfig
from shopgraph.errors import ConfigError, InsufficientDataError
from shopgraph.layout import WorkspaceLayout

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from shopgraph.graphdb.frames import SourceData
    from shopgraph.graphdb.ingest import IngestSummary
    from shopgraph.graphdb.store import GraphStore
    from shopgraph.retrieval.queries import Retriever

STEPS = ("ingest", "train", "index", "heads", "target", "offers", "report")
SKIPPABLE = ("heads", "target", "offers")
RESULTS = {"ingest": ("data",), "train": ("training",), "index": ("index",),
           "heads": ("churn", "response"), "target": ("target",), "offers": ("plan",),
           "report": ()}
"""The keys of ``results.json`` each step writes: a step whose keys are gone runs again."""
UPSTREAM = {"ingest": None, "train": "ingest", "index": "train", "heads": "ingest",
            "target": "index", "offers": "ingest", "report": None}


class Session(Protocol):
    """What the pipeline needs of a workspace: where its files go, a connected graph store and
    the retriever of a model (:class:`~shopgraph.workspace.Workspace` is one)."""

    @property
    def layout(self) -> WorkspaceLayout:
        """The workspace's paths."""

    def store(self) -> GraphStore:
        """A connected graph store."""

    def bulk_loadable(self) -> bool:
        """Whether the bulk first load can run: the embedded server, an empty database."""

    def ingest(self, data: SourceData, *, bulk: bool = False) -> IngestSummary:
        """Ingest ``data``, journalled; ``bulk``: the bulk first load of an empty database."""

    def retriever(self, model: str | None = None) -> Retriever:
        """The retriever over ``model``'s current index."""


@dataclass(frozen=True)
class RunResult:
    """What a run left behind.

    Args:
        results: every step's results (also in ``results_path``).
        results_path: the results file the report renders.
        outputs: the files each step has written, by step.
        seconds: how long each recorded step took when it last ran.
    """

    results: dict[str, Any]
    results_path: Path
    outputs: dict[str, list[str]]
    seconds: dict[str, float]


def check_model_settings(config: RunConfig) -> None:
    """Refuse an unknown model or model setting in ``[run.train]`` before anything runs."""
    from shopgraph.gnn.registry import model_class

    try:
        defaults = model_class(config.model).defaults
    except ValueError as exc:
        raise ConfigError(f"{config.file}: [run] model: {exc}") from exc
    unknown = sorted(set(config.train.settings) - set(defaults))
    if unknown:
        valid = sorted({f.name for f in fields(TrainConfig)} - {"settings"} | set(defaults))
        raise ConfigError(f"{config.file}: unknown [run.train] keys {unknown} for model "
                          f"{config.model!r}; valid: {valid}")


class Pipeline:
    """The steps of ``shopgraph run`` over one workspace.

    Args:
        session: the workspace (its layout, store and retrievers).
        config: the run's configuration.
        on_step: called with ``(step, status, seconds)`` as steps finish or are skipped.
    """

    def __init__(self, session: Session, config: RunConfig,
                 on_step: Callable[[str, str, float], None] | None = None) -> None:
        check_model_settings(config)
        self.session, self.config, self.on_step = session, config, on_step
        self.layout = session.layout
        self.state: dict[str, Any] = _read(self.layout.run_state)
        self._force = False  # run(force=True): retrain instead of updating
        self.results: dict[str, Any] = _read(self.layout.run_results)

    def run(self, only: str | None = None, force: bool = False) -> RunResult:
        """Run every configured step (or ``only`` one), skipping unchanged ones unless
        ``force``; stops at the first step that fails, leaving it unrecorded."""
        if only is not None and only not in STEPS:
            raise ConfigError(f"no step {only!r}; steps: {', '.join(STEPS)}")
        self._force = force
        for step in STEPS:
            if (only is not None and step != only) or not self._configured(step):
                continue
            inputs = self._inputs(step)
            done = self.state.get(step, {})
            if not force and done.get("inputs") == inputs and self._outputs_exist(step, done):
                self._notify(step, "unchanged, skipped", 0.0)
                continue
            self._run_step(step, inputs)
        return RunResult(self.results, self.layout.run_results, self.outputs(),
                         {k: v.get("seconds", 0.0) for k, v in self.state.items()})

    def _run_step(self, step: str, inputs: str) -> None:
        started = time.perf_counter()
        try:
            output = getattr(self, f"_{step}")()
        except InsufficientDataError as exc:
            if step not in SKIPPABLE:
                self._forget(step)
                raise
            # A plan the data cannot support is an answer, not a crash: say why.
            for key in RESULTS[step]:
                self.results[key] = {"skipped": str(exc)}
            output = {"skipped": str(exc)}
            self._notify(step, f"skipped: {exc}", 0.0)
        except BaseException:
            self._forget(step)
            raise
        seconds = round(time.perf_counter() - started, 2)
        self.state[step] = {"inputs": inputs, "output": output, "seconds": seconds,
                            "finished": time.time()}
        write_json(self.layout.run_state, self.state)
        write_json(self.layout.run_results, self.results)
        if "skipped" not in output:
            self._notify(step, "done", seconds)

    def _forget(self, step: str) -> None:
        """A failed step is not done: drop its record, so the next run runs it."""
        if self.state.pop(step, None) is not None:
            write_json(self.layout.run_state, self.state)

    def outputs(self) -> dict[str, list[str]]:
        """The files each step has written, by step."""
        return {k: v.get("output", {}).get("paths", []) for k, v in self.state.items()}

    def _notify(self, step: str, status: str, seconds: float) -> None:
        if self.on_step:
            self.on_step(step, status, seconds)

    def _configured(self, step: str) -> bool:
        return {"ingest": self.config.source is not None, "target": self.config.target
                is not None, "offers": self.config.offers is not None}.get(step, True)

    def _settings(self, step: str) -> dict[str, Any] | None:
        """The configuration ``step`` depends on, as plain data."""
        c = self.config
        if step == "ingest":
            return {"source": c.source, "format": c.format}
        if step == "report":
            return {"report": asdict(c.report), "truth": c.truth}
        sections: dict[str, DataclassInstance | None] = {
            "train": c.train, "index": c.index, "heads": c.heads, "target": c.target,
            "offers": c.offers}
        section = sections[step]
        return None if section is None else asdict(section)

    def _inputs(self, step: str) -> str:
        """The fingerprint of what ``step`` depends on."""
        parts: list[Any] = [step, self._settings(step), self.config.model]
        if step == "ingest":
            parts.append(self._source_fingerprint())
        upstream = UPSTREAM[step]
        if upstream:
            parts.append(self.state.get(upstream, {}).get("output"))
        if step == "report":
            parts.append({k: self.state.get(k, {}).get("output") for k in STEPS[:-1]})
        return fingerprint(*parts)

    def _outputs_exist(self, step: str, done: dict[str, Any]) -> bool:
        paths = (done.get("output") or {}).get("paths", [])
        return (all(Path(p).exists() for p in paths)
                and all(key in self.results for key in RESULTS[step]))

    def _source_fingerprint(self) -> list[str]:
        assert self.config.source is not None
        source = self.config.source
        files = [source]
        if self.config.format == "tabular":
            files += sorted(p for p in source.parent.iterdir() if p.is_file()
                            and p.suffix in (".csv", ".gz", ".parquet", ".pq"))
        return [file_sha256(f) for f in files]

    # -- steps -----------------------------------------------------------------------------

    def _ingest(self) -> dict[str, Any]:
        """Ingest the source: an empty database on the embedded server through the bulk
        loader when ``first_load`` asks for it (``auto``: a large source), else row by row."""
        from shopgraph.graphdb.formats import load

        assert self.config.source is not None
        data = load(self.config.format, self.config.source)
        large = sum(ef.rows for ef in data.edges) >= BULK_FIRST_LOAD_EDGES
        want = {"bulk": True, "rows": False}.get(self.config.first_load, large)
        bulk = want and self.session.bulk_loadable()
        summary = self.session.ingest(data, bulk=bulk)
        self.results["data"] = self.session.store().summary()
        return {"fingerprint": fingerprint(self._source_fingerprint()),
                "written": summary.relationships_written, "bulk": bulk}

    def _train(self) -> dict[str, Any]:
        """Train; or, when the model was trained by an earlier run with the same settings and
        only the data changed, bring it up to date with ``shopgraph update``'s path (fold in,
        refit past the drift thresholds; BPR models are warm-started, retrained past them)."""
        from shopgraph.jobs.train import train_model

        settings = fingerprint(self._settings("train"), self.config.model)
        earlier = self.state.get("train", {}).get("output", {})
        if (not self._force and earlier.get("settings") == settings
                and self.layout.checkpoint(self.config.model).is_file()):
            return self._update(settings)
        result = train_model(self.session.store(), self.layout, self.config.model,
                             self.config.train, progress=False)
        self.results["training"] = {"model": result.model, "metrics": result.metrics,
                                    "popularity": result.popularity, "history": result.history,
                                    "fit_seconds": result.fit_seconds}
        return {"paths": [str(result.checkpoint)], "fingerprint": result.fingerprint,
                "settings": settings}

    def _update(self, settings: str) -> dict[str, Any]:
        from shopgraph.jobs.update import update_model

        result = update_model(self.session.store(), self.layout, self.config.model,
                              progress=False)
        training = {k: v for k, v in self.results.get("training", {}).items() if k != "truth"}
        training["model"] = self.config.model
        if result.train is not None:  # retrained: the train path's figures
            training.update({k: result.train[k] for k in ("metrics", "popularity", "history",
                                                           "fit_seconds")})
        training["update"] = {k: getattr(result, k) for k in (
            "mode", "reason", "new_users", "new_items", "changed_users", "new_interactions",
            "seconds")}
        self.results["training"] = training
        return {"paths": [str(result.checkpoint)], "fingerprint": result.fingerprint,
                "settings": settings, "update": result.mode}

    def _index(self) -> dict[str, Any]:
        from shopgraph.jobs.index import build_index

        result = build_index(self.session.store(), self.layout, self.config.model,
                             self.config.index)
        self.results["index"] = {name: {k: v for k, v in ix.items() if k != "params"}
                                 for name, ix in result.indexes.items()}
        return {"paths": [str(result.path)], "fingerprint": result.checkpoint_fingerprint}

    def _heads(self) -> dict[str, Any]:
        from shopgraph.config import load_engine_config
        from shopgraph.jobs.heads import evaluate_heads
        from shopgraph.parallel import open_engine

        address = load_engine_config(self.layout.config).address
        with open_engine(address) as engine:
            heads = evaluate_heads(self.session.store(), self.config.heads, engine)
        self.results.update(heads)
        return {"fingerprint": fingerprint(heads["churn"], heads["response"])}

    def _target(self) -> dict[str, Any]:
        from shopgraph.jobs.target import target

        assert self.config.target is not None
        result = target(self.session.store(), self.session.retriever(self.config.model),
                        self.layout, self.config.target)
        self.results["target"] = {**result.to_dict(), "audience_curve": result.audience_curve()}
        return {"paths": [str(result.path)], "run_id": result.run_id}

    def _offers(self) -> dict[str, Any]:
        from shopgraph.jobs.offers import plan_offers

        assert self.config.offers is not None
        result = plan_offers(self.session.store(), self.layout, self.config.offers)
        self.results["plan"] = {**result.to_dict(), "audience_curve": result.audience_curve()}
        return {"paths": [str(result.path)], "run_id": result.run_id}

    def _report(self) -> dict[str, Any]:
        from shopgraph.report.build import build_report

        if self.config.truth is not None:
            from shopgraph.graphdb import tables
            from shopgraph.jobs.truth import score_against_truth

            retriever = (self.session.retriever(self.config.model)
                         if "training" in self.results else None)
            buys = tables.purchases(self.session.store()) if "churn" in self.results else None
            score_against_truth(self.results, self.config.truth, self.config, retriever, buys)
        self.results.setdefault("title", self.config.report.title
                                or f"shopgraph run: {self.config.file.parent}")
        self.results["workspace"] = str(self.layout.root)
        path = build_report(self.results, self.layout.report)
        return {"paths": [str(path)]}


def _read(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text()) if path.is_file() else {}
    return data if isinstance(data, dict) else {}
