"""Settings: defaults < ``<workspace>/shopgraph.toml`` < ``SHOPGRAPH_*`` variables < CLI options,
and the ``[run]`` configuration of ``shopgraph run``.

Secrets never live in the TOML file or on the command line: the password comes from
``SHOPGRAPH_PASSWORD``, from a file named by ``password_file``, or, for the embedded server,
from the 0600 file the server keeps in the workspace.

Every table is read into a frozen dataclass by one validator (:func:`_build`) that checks the
keys and the value types against the dataclass fields and their annotations; range and choice
rules sit in the fields' metadata. :func:`run_config_toml` writes a :class:`RunConfig` back.
"""

from __future__ import annotations

import json
import os
import tomllib
import types
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, Union, get_args, get_origin, get_type_hints

from shopgraph.errors import ConfigError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_RUN_FILE_MODE = 0o644  # a run configuration holds no secrets

_T = TypeVar("_T", bound="DataclassInstance")


# -- field rules (checked by _build, after the type) ---------------------------------------------

def _choices(*values: str) -> dict[str, Any]:
    """Field metadata: the value must be one of ``values``."""
    return {"choices": values}


def _rule(test: Callable[[Any], bool], text: str) -> dict[str, Any]:
    """Field metadata: ``test`` must hold for the value (for each value, of a table)."""
    return {"rule": (test, text)}


_POSITIVE = _rule(lambda x: x > 0, "> 0")
_NON_NEGATIVE = _rule(lambda x: x >= 0, ">= 0")
_AT_LEAST_ONE = _rule(lambda x: x >= 1, ">= 1")
_SHARE = _rule(lambda x: 0 <= x < 1, "0 <= x < 1")
_RECALL = _rule(lambda x: 0 < x <= 1, "0 < x <= 1")
_REST = {"rest": True}  # this field collects every other key of the table
_GIVEN = {"given": True}  # supplied by the loader, not a key of the file


# -- [db] ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DbConfig:
    """How to reach the graph database.

    Args:
        uri: a Bolt URI (``bolt://``, ``neo4j://``, ``+s`` variants); empty means the embedded
            server of the workspace, started on demand.
        user: the user name (default: ``neo4j`` for a remote server, ``root`` embedded).
        database: the database name (default: ``shopgraph``).
        password_file: a file holding the password, for remote servers.
        heap: the embedded server's Java heap (default: ``2g``).
    """

    uri: str = ""
    user: str = ""
    database: str = "shopgraph"
    password_file: str = ""
    heap: str = "2g"

    @property
    def embedded(self) -> bool:
        """True when no URI is configured and the workspace's own server is used."""
        return not self.uri


ENV = {"uri": "SHOPGRAPH_URI", "user": "SHOPGRAPH_USER", "database": "SHOPGRAPH_DATABASE"}


def load_db_config(path: str | Path, *, uri: str | None = None, user: str | None = None,
                   database: str | None = None) -> DbConfig:
    """Read the ``[db]`` table of a workspace's settings file, then env variables, then the
    options given on the command line.

    Args:
        path: the settings file (``WorkspaceLayout.config``); it is optional.
        uri: the Bolt URI given on the command line (empty or None: not given).
        user: the user name, likewise.
        database: the database name, likewise.

    Raises:
        ConfigError: the file is not valid TOML, stores a password, or has an unknown key or a
            value of the wrong type in ``[db]``.
    """
    cfg = DbConfig()
    path = Path(path)
    if path.is_file():
        table = _read_toml(path).get("db", {})
        if isinstance(table, dict) and "password" in table:
            raise ConfigError(f"{path}: never store the password in the config; set "
                              "SHOPGRAPH_PASSWORD or password_file instead")
        cfg = _build(DbConfig, table, path, "db")
    env = {k: os.environ[v] for k, v in ENV.items() if os.environ.get(v)}
    cfg = replace(cfg, **env)
    given = {k: v for k, v in {"uri": uri, "user": user, "database": database}.items() if v}
    return replace(cfg, **given)


def parse_settings(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings to a dict; values are read as JSON when they parse, else kept as
    text (``layers=2`` -> 2, ``negatives=dns`` -> ``"dns"``)."""
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"settings take KEY=VALUE, got {pair!r}")
        try:
            settings[key] = json.loads(raw)
        except json.JSONDecodeError:
            settings[key] = raw
    return settings


def remote_password(cfg: DbConfig) -> str:
    """The password for a configured (non-embedded) server: env variable, then file."""
    if os.environ.get("SHOPGRAPH_PASSWORD"):
        return os.environ["SHOPGRAPH_PASSWORD"]
    if cfg.password_file:
        p = Path(cfg.password_file).expanduser()
        if not p.is_file():
            raise ConfigError(f"password_file {p} does not exist")
        return p.read_text().strip()
    raise ConfigError("no password for the graph server at " + cfg.uri +
                      "; set SHOPGRAPH_PASSWORD or password_file in shopgraph.toml")


# -- [engine] -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class EngineConfig:
    """``[engine]``: where work split by users runs (see :mod:`shopgraph.parallel`).

    Args:
        address: ``local`` (in this process, the default; no engine needed) or a Dask
            scheduler's address (``tcp://host:8786``); ``SHOPGRAPH_ENGINE`` and ``--engine``
            override it.
        block_size: users per partition (>= 1); results do not depend on it.
    """

    address: str = field(default="local", metadata=_rule(
        lambda a: a == "local" or "://" in a, "'local' or a scheduler address (tcp://host:8786)"))
    block_size: int = field(default=65536, metadata=_AT_LEAST_ONE)


def load_engine_config(path: str | Path | None, *, address: str | None = None) -> EngineConfig:
    """Read the ``[engine]`` table of a workspace's settings file (optional; None: no
    workspace), then ``SHOPGRAPH_ENGINE``, then ``address`` (the ``--engine`` option).

    Raises:
        ConfigError: ``[engine]`` has an unknown key or a wrong value, or the address is
            neither ``local`` nor a scheduler address.
    """
    cfg = EngineConfig()
    path = Path(path) if path is not None else None
    if path is not None and path.is_file():
        cfg = _build(EngineConfig, _read_toml(path).get("engine", {}), path, "engine")
    chosen = address or os.environ.get("SHOPGRAPH_ENGINE")
    if chosen:
        at = "--engine" if address else "SHOPGRAPH_ENGINE"
        cfg = replace(cfg, address=_check(fields(EngineConfig)[0], chosen, at))
    return cfg


# -- [run] --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainConfig:
    """``[run.train]``: how the embedding model is trained.

    Args:
        valid_fraction: the share of interactions held out for validation.
        seed: the random seed of the split and the model.
        rel_types: the interaction relationship types to train on (default: all).
        resume: continue from the model's last checkpoint.
        refit: after measuring on the held-out split, fit the served model again on all
            interactions (BPR models: for the epochs the split chose); ``False`` serves the
            model fitted on the split.
        eval_users: the most held-out users the model and popularity are scored on (a seeded
            sample beyond: scoring every user against every item grows with users x items).
        settings: the model's hyper-parameters (``max_seconds``, ``epochs``, ``lr``, ``k``, ...):
            every other key of ``[run.train]``, as given; the model validates them.
    """

    valid_fraction: float = 0.1
    seed: int = 0
    rel_types: tuple[str, ...] | None = None
    resume: bool = False
    refit: bool = True
    eval_users: int = field(default=50_000, metadata=_AT_LEAST_ONE)
    settings: Mapping[str, Any] = field(default_factory=dict, metadata=_REST)


@dataclass(frozen=True)
class IndexConfig:
    """``[run.index]``: the retrieval indexes built from the embeddings.

    Args:
        kind: ``auto``, ``exact``, ``hnsw``, ``ivf`` or ``ivfpq``.
        factory: a FAISS index factory string, overriding ``kind``.
        target_recall: the recall the tuned index must reach, in (0, 1].
        seen_rel_types: the relationship types that mark an item as already seen.
        seed: the random seed of training and tuning.
        ef_construction: the HNSW build breadth (>= 1; default: the library's).
    """

    kind: str = field(default="auto", metadata=_choices("auto", "exact", "hnsw", "ivf", "ivfpq"))
    factory: str | None = None
    target_recall: float = field(default=0.98, metadata=_RECALL)
    seen_rel_types: tuple[str, ...] | None = None
    seed: int = 0
    ef_construction: int | None = field(default=None, metadata=_AT_LEAST_ONE)


@dataclass(frozen=True)
class UpdateConfig:
    """How ``shopgraph update`` refreshes a trained model after new events were ingested.

    Args:
        full: retrain from scratch (the ``train`` path: split, tuning, refit) whatever changed.
        max_new_share: a closed-form (spectral) model is refitted on every interaction with its
            settings (one new SVD, no split or tuning) instead of folded in once the interactions
            added since its last full fit make more than this share of all of them, in [0, 1).
            0.04: on the default simulated shop folds 3.1 % of new pairs past their fit were
            0.8 % below a full retrain's Recall@20, 8.3 % were 2.8 % below
            (``bench/stream.py``; ``docs/update.md``).
        max_new_item_share: likewise for the items first given interactions since the last
            full fit, as a share of the items that have some now (0.2: folding new items in
            lost under 1 % up to 20 % of the catalogue, 1.1 % at 30 %).
        warm_epochs: within those thresholds a BPR model (LightGCN, GraphSAGE) is warm-started
            from its checkpoint (new users and items from their neighbours' mean) and trained
            this many epochs on every interaction (0: the neighbour-mean start only); past them
            it is retrained. 0: on the default simulated shop (LightGCN, daily updates) the
            neighbour-mean start stayed within the noise of a full retrain's Recall@20 after 5,
            6 and 12 updates (+1.2 %, -4.7 %, +3.6 %) in 1-2 % of its time, while whole epochs
            compound past the epoch ``train`` chose (1 a day: -0.5 %, -6.1 %, -11.1 %; 5 a day:
            -22 % after 5); but 1 serves the few new users far better (0.4-0.6x popularity
            against 0.1x) (``bench/stream.py``; ``docs/update.md``).

    A model's retrieval index, when it has one, is always brought up to date with the settings
    it was built with and swapped in together with the checkpoint (an index of another
    checkpoint would be refused by every query).
    """

    full: bool = False
    max_new_share: float = field(default=0.04, metadata=_SHARE)
    max_new_item_share: float = field(default=0.2, metadata=_SHARE)
    warm_epochs: int = field(default=0, metadata=_NON_NEGATIVE)

    def __post_init__(self) -> None:
        for name in ("max_new_share", "max_new_item_share"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise ConfigError(f"{name} must be in [0, 1), got {value!r}")
        if self.warm_epochs < 0:
            raise ConfigError(f"warm_epochs must be >= 0, got {self.warm_epochs!r}")


@dataclass(frozen=True)
class HeadsConfig:
    """``[run.heads]``: the churn and response heads.

    Args:
        horizon_days: the churn horizon in days (> 0).
    """

    horizon_days: float = field(default=90.0, metadata=_POSITIVE)


@dataclass(frozen=True)
class TargetConfig:
    """``[run.target]``: one campaign's audience (``shopgraph target``).

    Args:
        campaign: the campaign whose items are promoted.
        n: the audience size (>= 1).
        items: the promoted items (with or instead of ``campaign``).
        control_share: the share held out as a control group, in [0, 1).
        seed: the random seed of the control split.
        winback: favour users at risk of churning.
        heads: blend in the churn and response heads.
        exclude_buyers: leave out users who bought the items already.
        pseudonymise: export pseudonymous user ids.
        email_hashes: export hashed e-mail addresses for ad platforms.
        write_back: record the audience in the graph.

    Raises:
        ConfigError: neither ``campaign`` nor ``items`` is given.
    """

    campaign: str | None = None
    n: int = field(default=1000, metadata=_AT_LEAST_ONE)
    items: tuple[str, ...] | None = None
    control_share: float = field(default=0.1, metadata=_SHARE)
    seed: int = 0
    winback: bool = False
    heads: bool = True
    exclude_buyers: bool = False
    pseudonymise: bool = False
    email_hashes: bool = False
    write_back: bool = False

    def __post_init__(self) -> None:
        if self.campaign is None and self.items is None:
            raise ConfigError("[run.target] needs campaign or items (or both)")


@dataclass(frozen=True)
class OffersConfig:
    """``[run.offers]``: next offers learnt from a past randomised campaign.

    Args:
        campaign: the past campaign with randomised offer arms.
        budget: the money to spend on sends (> 0).
        cost: the cost of one send: one number, or a table offer -> cost (each >= 0).
        value_per_response: the money one response is worth.
        label: the response: ``converted``, ``visited``, ``redeemed`` or ``value``.
        caps: the most users each offer may go to (offer -> count, each >= 0).
        control_share: the share held out as a control group, in [0, 1).
        kind: the uplift learner, ``lightgbm`` or ``logistic``.
        calibrated: calibrate the learner's scores.
        behaviour: use behavioural user features.
        seed: the random seed.
        pseudonymise: export pseudonymous user ids.
    """

    campaign: str
    budget: float = field(metadata=_POSITIVE)
    cost: float | Mapping[str, float] = field(default=0.0, metadata=_NON_NEGATIVE)
    value_per_response: float = 1.0
    label: str = field(default="converted",
                       metadata=_choices("converted", "visited", "redeemed", "value"))
    caps: Mapping[str, int] | None = field(default=None, metadata=_NON_NEGATIVE)
    control_share: float = field(default=0.1, metadata=_SHARE)
    kind: str = field(default="lightgbm", metadata=_choices("lightgbm", "logistic"))
    calibrated: bool = True
    behaviour: bool = True
    seed: int = 0
    pseudonymise: bool = False


@dataclass(frozen=True)
class LoopConfig:
    """``[run.loop]``: a campaign every round, learnt from every earlier round's log.

    Args:
        budget: the money to spend on sends per round (> 0).
        cost: the cost of one send of each offer (offer -> cost, each >= 0).
        rounds: rounds to run (>= 1).
        days: days per round (>= 1).
        policy: ``thompson`` (default), ``epsilon_greedy`` or ``greedy``.
        control_share: the share of eligible users always held out, in [0, 1).
        floor: the least probability an exploring policy gives each allowed action.
        min_confidence: Thompson sampling sends an offer beyond exploration only where the
            posterior probability that it pays is at least this.
        explore: the most probability Thompson sampling gives an offer below
            ``min_confidence`` (exploration).
        ensemble: reward-model members (the posterior Thompson sampling draws from).
        seed: the random seed.
        update_models: after each round's events are ingested, bring the workspace's trained
            models and indexes up to date (``shopgraph update``'s path), so recommendations
            and audiences between rounds see the new events.
    """

    budget: float = field(metadata=_POSITIVE)
    cost: Mapping[str, float] = field(metadata=_NON_NEGATIVE)
    rounds: int = field(default=10, metadata=_AT_LEAST_ONE)
    days: int = field(default=7, metadata=_AT_LEAST_ONE)
    policy: str = field(default="thompson",
                        metadata=_choices("thompson", "epsilon_greedy", "greedy"))
    control_share: float = field(default=0.1, metadata=_SHARE)
    floor: float = field(default=0.01, metadata=_SHARE)
    min_confidence: float = field(default=0.95, metadata=_RECALL)
    explore: float = field(default=0.01, metadata=_SHARE)
    ensemble: int = field(default=10, metadata=_AT_LEAST_ONE)
    seed: int = 0
    update_models: bool = True


@dataclass(frozen=True)
class ReportConfig:
    """``[run.report]``: the HTML report.

    Args:
        title: the report's title (default: names the configuration's folder).
    """

    title: str | None = None


BULK_FIRST_LOAD_EDGES = 1_000_000
"""``first_load = "auto"`` takes the bulk loader from this many interactions (about a minute
row by row here): below, the row-by-row ingest, which resumes batch by batch after a failure,
costs little more than the importer's start."""


@dataclass(frozen=True)
class RunConfig:
    """``[run]``: the steps of ``shopgraph run`` and their settings.

    Args:
        file: the configuration file itself (absolute); not a key of the file.
        source: the dataset to ingest (absolute; relative in the file to the file's folder).
        format: the dataset's format.
        model: the embedding model.
        first_load: how the ingest step fills an empty database on the workspace's embedded
            server: ``auto`` (the bulk loader for a source of at least
            :data:`BULK_FIRST_LOAD_EDGES` interactions, row by row below), ``bulk`` (always the
            bulk loader) or ``rows`` (always row by row). A database with data is always added
            to row by row; see ``docs/bulk-load.md``.
        truth: the simulator's ground truth to score against (absolute, like ``source``).
        train: ``[run.train]``.
        index: ``[run.index]``.
        heads: ``[run.heads]``.
        target: ``[run.target]``; None when the target step is not configured.
        offers: ``[run.offers]``; None when the offers step is not configured.
        loop: ``[run.loop]``; None when no campaign loop is configured.
        report: ``[run.report]``.
    """

    file: Path = field(metadata=_GIVEN)
    source: Path | None = None
    format: str = "tabular"
    model: str = "spectral"
    first_load: str = field(default="auto", metadata=_choices("auto", "bulk", "rows"))
    truth: Path | None = None
    train: TrainConfig = field(default_factory=TrainConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    heads: HeadsConfig = field(default_factory=HeadsConfig)
    target: TargetConfig | None = None
    offers: OffersConfig | None = None
    loop: LoopConfig | None = None
    report: ReportConfig = field(default_factory=ReportConfig)


def load_run_config(path: str | Path) -> RunConfig:
    """Read the ``[run]`` table of ``path``, checked against :class:`RunConfig`.

    Args:
        path: the TOML file; relative paths inside it are relative to its folder.

    Raises:
        ConfigError: the file is missing or not valid TOML, has no ``[run]`` table, or has an
            unknown key, a missing required key or a wrong value; the message names the file,
            the table and the key.
    """
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise ConfigError(f"no run configuration at {path}; write one (see `shopgraph run "
                          "--help`) or create a simulated shop with `shopgraph simulate`")
    data = _read_toml(path)
    if "run" not in data:
        raise ConfigError(f"{path} has no [run] table")
    return _build(RunConfig, data["run"], path, "run", file=path)


def run_config_toml(config: RunConfig, header: str = "") -> str:
    """``config`` as TOML text that :func:`load_run_config` reads back to an equal config when
    saved as ``config.file``.

    Paths inside the file's folder are written relative to it; fields equal to their default
    and None values are left out; ``TrainConfig.settings`` becomes keys of ``[run.train]``.

    Args:
        config: the configuration.
        header: comment lines (each starting with ``#``) placed first.

    Raises:
        ValueError: a header line is not a comment, or a model setting is named like a field
            of ``[run.train]`` (it would be read back as that field).
    """
    lines = header.strip("\n").splitlines() if header.strip() else []
    if any(not line.startswith("#") for line in lines):
        raise ValueError(f"header lines must start with '#', got {header!r}")
    import tomli_w  # only writers need it: the CLI's start-up stays light

    body = tomli_w.dumps({"run": _table(config, config.file.parent)})
    return "\n".join(lines) + "\n\n" + body if lines else body


def write_run_config(path: str | Path, config: RunConfig, header: str = "") -> Path:
    """Write ``config`` to ``path`` atomically (mode 0644); see :func:`run_config_toml`.

    Args:
        path: the destination; it becomes ``config.file`` (paths are written relative to its
            folder).
        config: the configuration.
        header: comment lines placed first.

    Returns:
        The absolute path written.
    """
    dest = Path(path).expanduser().resolve()
    text = run_config_toml(replace(config, file=dest), header)
    from shopgraph.artifacts import atomic_path

    with atomic_path(dest, _RUN_FILE_MODE) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return dest


# -- the validator and the writer ---------------------------------------------------------------

class _Mismatch(Exception):
    """A TOML value does not have the type a field's annotation asks for."""


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the file") from exc


def _build(cls: type[_T], table: object, file: Path, section: str, /, **given: Any) -> _T:
    """An instance of the dataclass ``cls`` from the TOML table ``[section]`` of ``file``:
    keys checked against the fields, values against their annotations and metadata rules.
    Fields marked ``_GIVEN`` come from ``given``; a ``_REST`` field collects unknown keys."""
    if not isinstance(table, dict):
        raise ConfigError(f"{file}: [{section}] must be a table, got {table!r}")
    hints = get_type_hints(cls)
    own = [f for f in fields(cls) if not f.metadata.get("given")]
    rest = next((f.name for f in own if f.metadata.get("rest")), None)
    valid = [f.name for f in own if f.name != rest]
    if rest in table:
        raise ConfigError(f"{file}: [{section}] {rest}: not a key of its own; write each "
                          f"setting as a key of [{section}]")
    unknown = sorted(set(table) - set(valid))
    if unknown and rest is None:
        raise ConfigError(f"{file}: unknown [{section}] keys {unknown}; valid: {valid}")
    values = dict(given)
    if rest:  # every other key, in file order
        values[rest] = {k: v for k, v in table.items() if k not in valid}
    for f in own:
        at = f"{file}: [{section}] {f.name}"
        if f.name == rest:
            continue
        if f.name not in table:
            if f.default is MISSING and f.default_factory is MISSING:
                raise ConfigError(f"{at}: missing; required")
            continue
        try:
            value = _convert(table[f.name], hints[f.name], file, f"{section}.{f.name}")
        except _Mismatch:
            raise ConfigError(f"{at}: expected {_describe(hints[f.name])}, "
                              f"got {table[f.name]!r}") from None
        values[f.name] = _check(f, value, at)
    try:
        return cls(**values)
    except ConfigError as exc:  # a rule across fields, from __post_init__
        raise ConfigError(f"{file}: {exc}") from None


def _convert(value: object, hint: Any, file: Path, section: str) -> Any:
    """``value`` as the annotation ``hint`` asks: ints become floats where a float is expected
    (bools never pass as numbers), arrays tuples, tables dicts or nested configs (``section``),
    paths absolute. Raises :class:`_Mismatch` when it does not fit."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(value, option, file, section)
            except _Mismatch:
                pass
        raise _Mismatch
    if isinstance(hint, type) and is_dataclass(hint):
        return _build(hint, value, file, section)
    if hint is Any or (hint in (bool, str) and isinstance(value, hint)):
        return value
    if isinstance(value, bool):  # never a number
        raise _Mismatch
    if hint is int and isinstance(value, int):
        return value
    if hint is float and isinstance(value, int | float):
        return float(value)
    if hint is Path and isinstance(value, str):
        return (file.parent / Path(value).expanduser()).resolve()
    if origin is tuple and isinstance(value, list):
        return tuple(_convert(v, args[0], file, section) for v in value)
    if origin is Mapping and isinstance(value, dict):
        return {k: _convert(v, args[1], file, section) for k, v in value.items()}
    raise _Mismatch


def _check(f: Field[Any], value: Any, at: str) -> Any:
    """``value`` when it passes the choice and range rules of ``f``'s metadata."""
    choices = f.metadata.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{at}: expected one of {list(choices)}, got {value!r}")
    if "rule" in f.metadata:
        test, text = f.metadata["rule"]
        each = value.items() if isinstance(value, Mapping) else [(None, value)]
        for key, item in each:
            if not test(item):
                where = at if key is None else f"{at}[{key!r}]"
                raise ConfigError(f"{where}: must be {text}, got {item!r}")
    return value


_NAMES = {bool: ("true or false", "booleans"), int: ("an integer", "integers"),
          float: ("a number", "numbers"), str: ("a string", "strings"),
          Path: ("a path (a string)", "paths"), Any: ("any value", "values")}


def _describe(hint: Any) -> str:
    """What ``hint`` expects, in words (``a number or a table of numbers``)."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args if a is not type(None))
    if origin is tuple:
        return f"an array of {_NAMES[args[0]][1]}"
    if origin is Mapping:
        return f"a table of {_NAMES[args[1]][1]}"
    return _NAMES[hint][0] if hint in _NAMES else "a table"


def _table(obj: DataclassInstance, base: Path) -> dict[str, Any]:
    """The TOML table of the config ``obj``: defaults and None left out, paths relative to
    ``base`` where inside it, a ``_REST`` field's keys merged into the table."""
    table: dict[str, Any] = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if f.metadata.get("given") or value is None or value == _default(f):
            continue
        if f.metadata.get("rest"):
            clash = sorted(set(value) & {g.name for g in fields(obj)})
            if clash:
                raise ValueError(f"model settings {clash} are named like fields of "
                                 f"{type(obj).__name__}; set the fields instead")
            table.update({k: v for k, v in value.items() if v is not None})
        elif is_dataclass(value) and not isinstance(value, type):
            table[f.name] = _table(value, base)
        elif isinstance(value, Path):
            table[f.name] = (value.relative_to(base).as_posix() if value.is_relative_to(base)
                             else str(value))
        elif isinstance(value, Mapping):
            table[f.name] = dict(value)
        else:
            table[f.name] = value
    return table


def _default(f: Field[Any]) -> Any:
    """The default of ``f``; MISSING for a required field."""
    return f.default_factory() if f.default_factory is not MISSING else f.default
