"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

WorkspaceOpt = Annotated[Path, typer.Option(
    "--workspace", "-w", envvar="SHOPGRAPH_WORKSPACE",
    help="Workspace folder: config, embedded graph server, artefacts.")]
UriOpt = Annotated[str | None, typer.Option(
    "--uri", envvar="SHOPGRAPH_URI",
    help="Bolt URI of a Neo4j 5 server; leave unset to use the embedded server. "
         "The password is read from SHOPGRAPH_PASSWORD, never from the command line.")]
UserOpt = Annotated[str | None, typer.Option("--user", envvar="SHOPGRAPH_USER",
                                             help="User name on the graph server.")]
DatabaseOpt = Annotated[str | None, typer.Option("--database", envvar="SHOPGRAPH_DATABASE",
                                                 help="Database name (default: shopgraph).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]

DEFAULT_WORKSPACE = Path("shopgraph-workspace")
