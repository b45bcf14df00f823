"""Rendering: tables and JSON to stdout, messages and progress to stderr."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

out = Console()
err = Console(stderr=True)


def print_json(obj: Any) -> None:
    """Print ``obj`` as JSON on stdout."""
    out.print_json(json.dumps(obj, default=str))


def print_summary(summary: dict[str, dict[str, int]], title: str = "graph") -> None:
    """Print node and relationship counts as a table."""
    table = Table(title=title)
    table.add_column("kind")
    table.add_column("name")
    table.add_column("count", justify="right")
    for kind, counts in summary.items():
        for name, count in counts.items():
            table.add_row(kind, name, f"{count:,}")
    out.print(table)


@contextmanager
def progress_bar(description: str) -> Iterator[Any]:
    """A progress bar on stderr; yields a callback ``(done, total)``."""
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=err, transient=False) as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update
