"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

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
