"""Loaders for the input formats: each parses files into a validated :class:`SourceData`."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shopgraph.graphdb.frames import SourceData

#: format name -> (module, function, what the path points at)
FORMATS: dict[str, tuple[str, str, str]] = {
    "lightgcn": ("lightgcn", "load_lightgcn", "a `user item item ...` file (gowalla, lastfm)"),
    "ratings": ("ratings", "load_ratings", "a `user item rating` file (amazon-sports)"),
    "hillstrom": ("hillstrom", "load_hillstrom", "the Hillstrom e-mail campaign CSV"),
    "cdnow": ("cdnow", "load_cdnow", "CDNOW_master.txt or CDNOW_sample.txt"),
    "dunnhumby": ("dunnhumby", "load_dunnhumby", "the Complete Journey folder"),
    "tabular": ("tabular", "load_tabular", "a TOML column mapping for CSV/Parquet files"),
}


def load(fmt: str, path: str | Path, *, strict: bool = True) -> SourceData:
    """Parse ``path`` with the loader of format ``fmt``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    module, func, _ = FORMATS[fmt]
    loader: Callable[..., SourceData] = getattr(
        importlib.import_module(f"shopgraph.graphdb.formats.{module}"), func)
    return loader(path, strict=strict)
