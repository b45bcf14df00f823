"""Write a planned list back to the graph: ``TARGETED`` Campaign -> User for the send and
``HELD_OUT`` User -> Campaign for the control group (what
:func:`~shopgraph.graphdb.tables.campaign_log` reads as control), both with ``run_id`` and
``arm``, event id ``event_id(run_id, campaign, user)`` (``"<run_id>:<campaign>:<user>"``, a
``%`` or ``:`` inside a part escaped), through the idempotent ingest: a re-run
writes nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from shopgraph.artifacts import fingerprint
from shopgraph.graphdb.formats.common import event_ids
from shopgraph.graphdb.frames import EdgeFrame, SourceData
from shopgraph.graphdb.ingest import IngestSummary, ingest
from shopgraph.strategies.audience import CONTROL, TREATMENT
from shopgraph.strategies.exports import frame_fingerprint

if TYPE_CHECKING:
    from shopgraph.graphdb.store import GraphStore


def targeting_source(audience: pd.DataFrame, run: str) -> SourceData:
    """The write-back as a :class:`~shopgraph.graphdb.frames.SourceData` (see write_back)."""
    missing = {"campaign_id", "user_id", "arm"} - set(audience.columns)
    if missing:
        raise ValueError(f"the audience lacks columns {sorted(missing)}; make it with "
                         "audience.rank_audience")
    edges = []
    for rel, arm in (("TARGETED", TREATMENT), ("HELD_OUT", CONTROL)):
        rows = audience[audience["arm"] == arm]
        if rows.empty:
            continue
        camp, user = rows["campaign_id"].astype(str), rows["user_id"].astype(str)
        src, dst = (camp, user) if rel == "TARGETED" else (user, camp)
        score = rows["score"] if "score" in rows else pd.Series(np.nan, rows.index)
        edges.append(EdgeFrame(rel, pd.DataFrame({
            "src": src.to_numpy(), "dst": dst.to_numpy(),
            "eid": event_ids(run, camp, user).to_numpy(),
            "ts": pd.array([pd.NA] * len(rows), dtype="Int64"),
            "value": score.to_numpy(dtype=float), "arm": arm, "run_id": run,
            "_line": np.arange(1, len(rows) + 1)})))
    content = fingerprint([frame_fingerprint(e.data) for e in edges])
    return SourceData(f"targeting:{run}", [], edges=edges,
                      options={"run_id": run, "content": content})


def write_back(store: GraphStore, audience: pd.DataFrame, run: str, *,
               batch_size: int = 10_000) -> IngestSummary:
    """Record a run in the graph: ``TARGETED`` for the send, ``HELD_OUT`` for the control.

    Each relationship carries ``run_id``, ``arm`` and the audience ``score`` as ``value``.
    Campaign and users must already be in the graph.

    Returns:
        The :class:`~shopgraph.graphdb.ingest.IngestSummary`; on a re-run nothing is written.

    Raises:
        IngestError: the campaign or a user is not in the graph (ingest them first).
    """
    data = targeting_source(audience, run)
    if not data.edges:
        return IngestSummary(data.name, "")
    return ingest(store, data, batch_size=batch_size, strict=True)
