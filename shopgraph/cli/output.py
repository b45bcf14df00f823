"""Rendering: tables and JSON to stdout, messages and progress to stderr."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

# User data (ids, paths, messages) is printed as text: never read as Rich markup ("[/x]") or
# emoji codes (":b:"); styling goes through style= and Text, never through markup strings.
out = Console(markup=False, emoji=False)
err = Console(stderr=True, emoji=False)


def error_line(exc: BaseException) -> None:
    """The one line a failed command prints on stderr."""
    err.print(Text.assemble(("error:", "red"), f" {exc}"), soft_wrap=True)


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
def progress_bar(description: str, quiet: bool = False
                 ) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr; yields a callback ``(done, total)`` (None when ``quiet``)."""
    if quiet:
        yield None
        return
    label = TextColumn("{task.description}", style="bold", markup=False)  # may hold a file name
    with Progress(label, BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=err, transient=False) as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


SUFFIX_FORMATS = {".csv": "csv", ".json": "json", ".parquet": "parquet"}


def resolve_format(fmt: str, output: Path | None) -> str:
    """The format to write: ``fmt``, or the file suffix's when writing a file in the default
    ``table`` format; parquet only into a ``.parquet`` file."""
    if output is not None and fmt == "table":
        fmt = SUFFIX_FORMATS.get(output.suffix.lower(), "table")
    if fmt == "parquet" and (output is None or output.suffix.lower() != ".parquet"):
        raise typer.BadParameter("parquet is written only to a file: pass --output FILE.parquet",
                                 param_hint="--format")
    return fmt


def results_table(frame: Any) -> Table:
    """Query results (``query``, ``rank``, ``<kind>_id``, ``score``) as a rich table."""
    table = Table()
    for name in ("query", "rank", "id", "score"):
        table.add_column(name, justify="right" if name in ("rank", "score") else "left")
    for query, rank, id_, score in frame.itertuples(index=False, name=None):
        table.add_row(str(query), str(rank), str(id_), f"{score:.4f}")
    return table


def write_results(results: Any, fmt: str = "table", output: Path | None = None) -> None:
    """Render query results to stdout, or atomically to ``output`` with a summary on stderr.

    Args:
        results: a :class:`~shopgraph.retrieval.queries.Results`, or its ``to_pandas()`` frame.
        fmt: ``table``, ``csv``, ``json`` (a list of the frame's records) or ``parquet``.
        output: the file to write; None for stdout.
    """
    from shopgraph.artifacts import atomic_open

    fmt = resolve_format(fmt, output)
    frame = results.to_pandas() if hasattr(results, "to_pandas") else results
    if fmt == "parquet":
        assert output is not None  # resolve_format refuses parquet to stdout
        with atomic_open(output, "wb") as fh:
            frame.to_parquet(fh, index=False)
    elif fmt == "table":
        if output is None:
            out.print(results_table(frame))
        else:
            with atomic_open(output) as fh:
                Console(file=fh, width=100).print(results_table(frame))
    else:
        text = (frame.to_csv(index=False) if fmt == "csv"
                else json.dumps(frame.to_dict("records"), indent=2) + "\n")
        if output is None:
            typer.echo(text, nl=False)
        else:
            with atomic_open(output) as fh:
                fh.write(text)
    if output is not None:
        err.print(f"wrote {len(frame):,} rows to {output}")
