"""The ingest journal: which users each committed ingest batch wrote user->item edges for.

``shopgraph update`` reads it to re-read only those users' edges instead of scanning every
user's edge counts (``docs/update.md``). One JSON file per batch, written atomically after the
batch's transaction committed, its name starting with the time in nanoseconds; a ``started``
file holds the time the journal began, so a reader knows whether it covers an interval.
Entries an update has read are pruned afterwards (:func:`prune_journal`), so the journal holds
only what the next update needs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from shopgraph.artifacts import atomic_path

JOURNAL_FORMAT = 1
JOURNAL_STARTED = "started"
"""The journal's first file: the time (seconds since the epoch) it began recording."""


def start_journal(folder: Path) -> None:
    """Record when the journal at ``folder`` began (once: an existing start is kept). Called
    before an ingest's first write, so every batch committed after it is in the journal."""
    marker = folder / JOURNAL_STARTED
    if not marker.is_file():
        with atomic_path(marker) as tmp:
            tmp.write_text(repr(time.time()))


def write_journal_entry(folder: Path, source: str, batch: str,
                        users: dict[str, list[str]]) -> Path:
    """Record, after its transaction committed, that batch ``batch`` of ``source`` wrote
    edges of each type in ``users`` for those users; one file, written atomically, its name
    starting with the time in nanoseconds."""
    at = time.time_ns()
    path = folder / f"{at:020d}-{source[:12]}-{batch.replace(':', '-')}.json"
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"format": JOURNAL_FORMAT, "at": at / 1e9, "source": source,
                                   "batch": batch, "users": users}))
    return path


def journalled_users(folder: str | Path, since: float) -> dict[str, set[str]] | None:
    """Per user->item type, the users the journal at ``folder`` records edges for in entries
    written after ``since`` (seconds since the epoch); ``None`` when the journal does not cover
    everything since then (it is missing, began later, or an entry cannot be read).

    Ingests into the same graph without this journal (another workspace, a job calling
    :func:`ingest` without one) are not in it: a reader checks the result against the graph's
    edge counts (:func:`~shopgraph.graphdb.export.read_listed_changes`)."""
    folder = Path(folder)
    try:
        started = float((folder / JOURNAL_STARTED).read_text())
    except (OSError, ValueError):
        return None
    if started > since:
        return None
    users: dict[str, set[str]] = {}
    try:
        for path in sorted(folder.glob("*.json")):
            if int(path.name.split("-", 1)[0]) / 1e9 <= since:
                continue
            entry = json.loads(path.read_text())
            if entry.get("format") != JOURNAL_FORMAT:
                return None
            for rel, ids in entry["users"].items():
                users.setdefault(rel, set()).update(ids)
    except (OSError, ValueError, KeyError, AttributeError):
        return None
    return users


def prune_journal(folder: str | Path, before: float) -> int:
    """Delete the entries written at or before ``before`` (seconds since the epoch: the export
    an update has just read past), then move the ``started`` mark up to ``before``: the journal
    still covers every interval that starts later, which is all a later update asks for (its
    export is newer). The mark moves first, so a crash in between leaves entries a reader skips
    anyway. Returns the number of entries deleted; a missing journal is left alone."""
    folder = Path(folder)
    marker = folder / JOURNAL_STARTED
    try:
        started = float(marker.read_text())
    except (OSError, ValueError):
        return 0
    if before > started:
        with atomic_path(marker) as tmp:
            tmp.write_text(repr(before))
    gone = 0
    for path in folder.glob("*.json"):
        try:
            at = int(path.name.split("-", 1)[0]) / 1e9
        except ValueError:
            continue
        if at <= before:
            path.unlink(missing_ok=True)
            gone += 1
    return gone
