"""Settings: defaults < ``<workspace>/shopgraph.toml`` < ``SHOPGRAPH_*`` variables < CLI options.

Secrets never live in the TOML file or on the command line: the password comes from
``SHOPGRAPH_PASSWORD``, from a file named by ``password_file``, or, for the embedded server,
from the 0600 file the server keeps in the workspace.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from shopgraph.errors import ConfigError

CONFIG_NAME = "shopgraph.toml"


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


def load_db_config(workspace: str | Path, **overrides: str | None) -> DbConfig:
    """Read the ``[db]`` table of the workspace config, then env variables, then overrides."""
    cfg = DbConfig()
    path = Path(workspace) / CONFIG_NAME
    if path.is_file():
        try:
            table = tomllib.loads(path.read_text()).get("db", {})
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML ({exc}); fix the file") from exc
        known = {f.name for f in fields(DbConfig)}
        if "password" in table:
            raise ConfigError(f"{path}: never store the password in the config; set "
                              "SHOPGRAPH_PASSWORD or password_file instead")
        unknown = set(table) - known
        if unknown:
            raise ConfigError(f"{path}: unknown [db] keys {sorted(unknown)}; "
                              f"known: {sorted(known)}")
        cfg = replace(cfg, **{k: str(v) for k, v in table.items()})
    env = {k: os.environ[v] for k, v in ENV.items() if os.environ.get(v)}
    cfg = replace(cfg, **env)
    given = {k: v for k, v in overrides.items() if v}
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
