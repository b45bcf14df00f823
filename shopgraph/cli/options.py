"""Options shared by several commands, and the one place a command opens its workspace."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

if TYPE_CHECKING:
    from shopgraph.workspace import Workspace

WorkspaceOpt = Annotated[Path, typer.Option(
    "--workspace", "-w", envvar="SHOPGRAPH_WORKSPACE",
    help="Workspace folder: config, embedded graph server, artefacts.")]
UriOpt = Annotated[str | None, typer.Option(
    "--uri", envvar="SHOPGRAPH_URI",
    help="Bolt URI of a Neo4j 5 server; leave unset to use the workspace's embedded server. "
         "The password is read from SHOPGRAPH_PASSWORD, never from the command line.")]
UserOpt = Annotated[str | None, typer.Option("--user", envvar="SHOPGRAPH_USER",
                                             help="User name on the graph server.")]
DatabaseOpt = Annotated[str | None, typer.Option("--database", envvar="SHOPGRAPH_DATABASE",
                                                 help="Database name (default: shopgraph).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]

DEFAULT_WORKSPACE = Path("shopgraph-workspace")
FormatOpt = Annotated[Literal["table", "csv", "json", "parquet"], typer.Option(
    "--format", help="Output format: table (on the terminal), csv, json (a list of records equal "
                     "to the Python API's `Results.to_pandas()`), or parquet (needs --output). "
                     "With --output and the default format, the format follows the file suffix "
                     "(.csv, .json, .parquet).")]
OutputOpt = Annotated[Path | None, typer.Option(
    "--output", "-o", dir_okay=False,
    help="Write the results to this file (atomically) instead of stdout.")]
ModelOpt = Annotated[str | None, typer.Option(
    help="Model whose embeddings and index to use (default: the one whose index was built "
         "last).")]


@dataclass(frozen=True)
class Connection:
    """The graph-server options given before the command (``shopgraph --uri ... CMD``)."""

    uri: str | None = None
    user: str | None = None
    database: str | None = None


connection = Connection()
"""Set by the app's callback before every command (see :mod:`shopgraph.cli.main`)."""


def open_workspace(path: Path) -> Workspace:
    """The workspace at ``path``, connected as the root options say."""
    from shopgraph.workspace import Workspace

    return Workspace(path, uri=connection.uri, user=connection.user,
                     database=connection.database)
