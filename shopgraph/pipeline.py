"""``shopgraph run``: the product's main job as one configured pipeline of steps.

    ingest -> train -> index -> heads -> target -> offers -> report

Each step is also a command of its own (``shopgraph ingest``, ``train``, ...). A step records
the fingerprint of its inputs (the data files, the settings, the upstream step's output) in
``<workspace>/run/state.json`` and is skipped when they did not change and its outputs still
exist; a failed step can be re-run alone with ``--step`` (the steps before it are taken as they
are). The configuration is the ``[run]`` table of a TOML file::

    [run]
    source = "sim/mapping.toml"   # a dataset to ingest (format below, default tabular)
    format = "tabular"
    model = "spectral"            # embedding model; [run.train] holds its settings
    [run.train]
    k = 256
    [run.target]                  # shopgraph target: one campaign's audience
    campaign = "new-arrivals"
    n = 2000
    [run.offers]                  # shopgraph offers: next offers from a past experiment
    campaign = "spring-test"
    budget = 5000
    cost = 1.0
    value_per_response = 20.0

Paths are relative to the configuration file. Results of every step go to
``<workspace>/run/results.json``, which ``shopgraph report`` renders.
"""

from __future__ import annotations

import json
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shopgraph.artifacts import file_sha256, fingerprint, write_json
from shopgraph.errors import ConfigError, ShopgraphError

STEPS = ("ingest", "train", "index", "heads", "target", "offers", "report")
KNOWN = {"source", "format", "model", "train", "index", "heads", "target", "offers", "report",
         "truth"}
DAY = 86_400
SKIPPABLE = ("heads", "target", "offers")
RESULT_KEYS = {"heads": "churn", "target": "target", "offers": "plan"}


def load_config(path: str | Path) -> dict[str, Any]:
    """The ``[run]`` table of ``path``, with paths made absolute; unknown keys are refused."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise ConfigError(f"no run configuration at {path}; write one (see `shopgraph run "
                          "--help`) or create a simulated shop with `shopgraph simulate`")
    try:
        table = tomllib.loads(path.read_text()).get("run")
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    if not isinstance(table, dict):
        raise ConfigError(f"{path} has no [run] table")
    unknown = set(table) - KNOWN
    if unknown:
        raise ConfigError(f"{path}: unknown [run] keys {sorted(unknown)}; known: "
                          f"{sorted(KNOWN)}")
    config = dict(table)
    for key in ("source", "truth"):
        if key in config:
            config[key] = str((path.parent / config[key]).resolve())
    config.setdefault("format", "tabular")
    config.setdefault("model", "spectral")
    config["_file"] = str(path)
    return config


class Pipeline:
    """The steps of ``shopgraph run`` over one workspace.

    Args:
        ws: the :class:`~shopgraph.workspace.Workspace`.
        config: from :func:`load_config`.
        on_step: called with ``(step, status, seconds)`` as steps finish or are skipped.
    """

    def __init__(self, ws: Any, config: dict[str, Any],
                 on_step: Callable[[str, str, float], None] | None = None) -> None:
        self.ws, self.config, self.on_step = ws, config, on_step
        self.dir = ws.path / "run"
        self.state_path = self.dir / "state.json"
        self.results_path = self.dir / "results.json"
        self.state: dict[str, Any] = self._read(self.state_path)
        self.results: dict[str, Any] = self._read(self.results_path)

    @staticmethod
    def _read(path: Path) -> dict[str, Any]:
        return json.loads(path.read_text()) if path.is_file() else {}

    def run(self, only: str | None = None, force: bool = False) -> dict[str, Any]:
        """Run every configured step (or ``only`` one), skipping unchanged ones unless
        ``force``. Returns the results."""
        if only is not None and only not in STEPS:
            raise ConfigError(f"no step {only!r}; steps: {', '.join(STEPS)}")
        for step in STEPS:
            if only is not None and step != only:
                continue
            if not self._configured(step):
                continue
            inputs = self._inputs(step)
            done = self.state.get(step, {})
            if not force and done.get("inputs") == inputs and self._outputs_exist(done):
                self._notify(step, "unchanged, skipped", 0.0)
                continue
            started = time.perf_counter()
            try:
                output = getattr(self, f"_{step}")()
            except ShopgraphError as exc:
                if step not in SKIPPABLE:
                    raise
                # A plan the data cannot support is an answer, not a crash: say why.
                self.results[RESULT_KEYS[step]] = {"skipped": str(exc)}
                output = {"skipped": str(exc)}
                self._notify(step, f"skipped: {exc}", 0.0)
            seconds = round(time.perf_counter() - started, 2)
            self.state[step] = {"inputs": inputs, "output": output, "seconds": seconds,
                                "finished": time.time()}
            write_json(self.state_path, self.state)
            write_json(self.results_path, self.results)
            if "skipped" not in output:
                self._notify(step, "done", seconds)
        return self.results

    def outputs(self) -> dict[str, list[str]]:
        """The files each step has written, by step."""
        return {k: v.get("output", {}).get("paths", []) for k, v in self.state.items()}

    def _notify(self, step: str, status: str, seconds: float) -> None:
        if self.on_step:
            self.on_step(step, status, seconds)

    def _configured(self, step: str) -> bool:
        if step == "ingest":
            return "source" in self.config
        if step in ("target", "offers"):
            return step in self.config
        return True

    def _inputs(self, step: str) -> str:
        """The fingerprint of what ``step`` depends on."""
        upstream = {"ingest": None, "train": "ingest", "index": "train", "heads": "ingest",
                    "target": "index", "offers": "ingest", "report": None}[step]
        parts: list[Any] = [step, self.config.get(step), self.config["model"]]
        if step == "ingest":
            parts.append(self._source_fingerprint())
        if upstream:
            parts.append(self.state.get(upstream, {}).get("output"))
        if step == "report":
            parts.append({k: self.state.get(k, {}).get("output") for k in STEPS[:-1]})
        return fingerprint(*parts)

    def _outputs_exist(self, done: dict[str, Any]) -> bool:
        paths = (done.get("output") or {}).get("paths", [])
        return all(Path(p).exists() for p in paths)

    def _source_fingerprint(self) -> list[str]:
        source = Path(self.config["source"])
        files = [source]
        if self.config["format"] == "tabular":
            files += sorted(p for p in source.parent.iterdir() if p.is_file()
                            and p.suffix in (".csv", ".gz", ".parquet", ".pq"))
        return [file_sha256(f) for f in files]

    # -- steps -----------------------------------------------------------------------------

    def _ingest(self) -> dict[str, Any]:
        from shopgraph.graphdb.formats import load

        summary = self.ws.ingest(load(self.config["format"], self.config["source"]))
        self.results["data"] = self.ws.summary()
        return {"fingerprint": fingerprint(self._source_fingerprint()),
                "written": summary.relationships_written}

    def _train(self) -> dict[str, Any]:
        model = self.config["model"]
        result = self.ws.train(model, progress=False, **self.config.get("train", {}))
        ckpt = result["checkpoint"]
        from shopgraph.gnn.checkpoint import load_checkpoint

        meta = load_checkpoint(ckpt, weights=False).meta
        self.results["training"] = {"model": model, "metrics": result["metrics"],
                                    "popularity": result["popularity"],
                                    "history": meta.get("history", []),
                                    "fit_seconds": result["fit_seconds"]}
        return {"paths": [ckpt], "fingerprint": meta.get("embeddings_sha256")}

    def _index(self) -> dict[str, Any]:
        info = self.ws.build_index(self.config["model"], **self.config.get("index", {}))
        self.results["index"] = {name: {k: v for k, v in ix.items() if k != "params"}
                                 for name, ix in info["indexes"].items()}
        return {"paths": [info["path"]], "fingerprint": info["checkpoint_fingerprint"]}

    def _heads(self) -> dict[str, Any]:
        """Score the churn head out of time and the response head on held-out exposures, each
        beside its logistic baseline (see :mod:`shopgraph.strategies.evaluation`)."""
        from shopgraph.strategies.campaigns import campaign_features
        from shopgraph.strategies.evaluation import evaluate_churn, evaluate_response

        settings = self.config.get("heads", {})
        self.results["churn"] = evaluate_churn(self.ws.purchases(),
                                               settings.get("horizon_days", 90.0))
        self.results["response"] = evaluate_response(
            self.ws.campaign_log(), self.ws.user_features(), campaign_features(self.ws.store()))
        return {"fingerprint": fingerprint(self.results["churn"], self.results["response"])}

    def _target(self) -> dict[str, Any]:
        settings = dict(self.config["target"])
        campaign = settings.pop("campaign", None)
        n = settings.pop("n", 1000)
        result = self.ws.target(campaign, n, model=self.config["model"], **settings)
        self.results["target"] = _with_curve(result)
        return {"paths": [result["path"]], "run_id": result["run_id"]}

    def _offers(self) -> dict[str, Any]:
        settings = dict(self.config["offers"])
        campaign, budget = settings.pop("campaign"), settings.pop("budget")
        result = self.ws.offers(campaign, budget, **settings)
        self.results["plan"] = _with_curve(result)
        return {"paths": [result["path"]], "run_id": result["run_id"]}

    def _report(self) -> dict[str, Any]:
        from shopgraph.report.build import build_report

        if "truth" in self.config:
            from shopgraph.truth import score_against_truth

            score_against_truth(self.ws, self.results, self.config["truth"], self.config)
        self.results.setdefault("title", f"shopgraph run: {Path(self.config['_file']).parent}")
        self.results["workspace"] = str(self.ws.path)
        path = build_report(self.results, self.ws.path / "report.html")
        return {"paths": [str(path)]}


def _with_curve(result: dict[str, Any]) -> dict[str, Any]:
    """A list's summary with its ``frame`` replaced by the audience curve: cumulative expected
    value (or blended score, where no value is known) by audience size, best users first."""
    ranked = result.pop("frame").sort_values("rank")
    value = ranked["expected_value"] if ranked["expected_value"].notna().any() \
        else ranked["score"]
    return {**result, "audience_curve": {"size": ranked["rank"].tolist(),
                                         "expected_value": value.cumsum().round(6).tolist()}}
