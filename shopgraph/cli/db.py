"""``shopgraph db start|stop|status``: the embedded graph server of a workspace."""

from __future__ import annotations

import typer

from shopgraph.cli.options import DEFAULT_WORKSPACE, JsonOpt, WorkspaceOpt, open_workspace
from shopgraph.cli.output import err, print_json

app = typer.Typer(help="Run the embedded graph server (ArcadeDB over Bolt, on 127.0.0.1).",
                  no_args_is_help=True, rich_markup_mode="markdown")


@app.command()
def start(workspace: WorkspaceOpt = DEFAULT_WORKSPACE) -> None:
    """Start the workspace's embedded server and wait until it answers."""
    ws = open_workspace(workspace)
    status = ws.server().start()
    ws.server().ensure_database(ws.db.database)
    err.print(f"graph server running: pid {status.pid}, {status.uri}, "
              f"database {ws.db.database!r}, data in {ws.layout.graphdb}")


@app.command()
def stop(workspace: WorkspaceOpt = DEFAULT_WORKSPACE) -> None:
    """Stop the workspace's embedded server."""
    stopped = open_workspace(workspace).server().stop()
    err.print("graph server stopped" if stopped else "graph server was not running")


@app.command()
def status(workspace: WorkspaceOpt = DEFAULT_WORKSPACE, as_json: JsonOpt = False) -> None:
    """Say whether the embedded server runs, and where."""
    st = open_workspace(workspace).server().status()
    info = {"running": st.running, "pid": st.pid, "uri": st.uri, "root": str(st.root)}
    if as_json:
        print_json(info)
    else:
        err.print("running" if st.running else "not running",
                  f"(pid {st.pid}, {st.uri})" if st.running else "")
    if not st.running:
        raise typer.Exit(3)
