"""Small builders of SourceData for graph tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from shopgraph.graphdb.formats.common import nodes_from_ids
from shopgraph.graphdb.frames import EdgeFrame, NodeFrame, SourceData


def edges_frame(pairs: list[tuple[str, str]], ts: list[int | None] | None = None,
                value: list[float | None] | None = None) -> pd.DataFrame:
    """An edge frame for (user, item) pairs with eids ``u:i``."""
    n = len(pairs)
    return pd.DataFrame({
        "src": [u for u, _ in pairs], "dst": [i for _, i in pairs],
        "eid": [f"{u}:{i}" for u, i in pairs],
        "ts": pd.array(ts if ts is not None else [None] * n, dtype="Int64"),
        "value": np.array([np.nan if v is None else v for v in (value or [None] * n)], float),
        "_line": np.arange(1, n + 1)})


def source(tmp_path: Path, pairs: list[tuple[str, str]], name: str = "t", rel: str = "PURCHASED",
           with_nodes: bool = True, **edge_kw: list) -> SourceData:
    """A source of one edge frame (and its implied nodes), backed by a real file for hashing."""
    f = tmp_path / f"{name}.txt"
    f.write_text("\n".join(f"{u} {i}" for u, i in pairs) + "\n")
    df = edges_frame(pairs, **edge_kw)
    nodes: list[NodeFrame] = []
    if with_nodes:
        nodes = [nodes_from_ids("User", df["src"], str(f)),
                 nodes_from_ids("Item", df["dst"], str(f))]
    return SourceData(name, [f], nodes=nodes, edges=[EdgeFrame(rel, df, str(f))])
