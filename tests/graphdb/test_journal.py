"""The ingest journal's files (no server): what an update may read from it, and when not."""

from __future__ import annotations

import time
from pathlib import Path

from shopgraph.graphdb.journal import (
    journalled_users,
    prune_journal,
    start_journal,
    write_journal_entry,
)


def test_entries_after_the_export_are_read_and_older_ones_skipped(tmp_path: Path) -> None:
    folder = tmp_path / "changes"
    start_journal(folder)
    write_journal_entry(folder, "a" * 64, "e0:0", {"VIEWED": ["u1", "u2"]})
    export = time.time()
    time.sleep(0.01)
    write_journal_entry(folder, "b" * 64, "e0:0", {"VIEWED": ["u2", "u3"]})
    write_journal_entry(folder, "b" * 64, "e1:0", {"PURCHASED": ["u4"]})
    write_journal_entry(folder, "b" * 64, "e1:0", {"PURCHASED": ["u4"]})  # twice: harmless
    assert journalled_users(folder, export) == {"VIEWED": {"u2", "u3"}, "PURCHASED": {"u4"}}
    assert journalled_users(folder, time.time()) == {}
    assert not list(folder.glob(".*"))  # no temporary files left


def test_a_journal_that_began_after_the_export_or_is_unreadable_gives_none(
        tmp_path: Path) -> None:
    folder = tmp_path / "changes"
    assert journalled_users(folder, time.time()) is None  # no journal
    export = time.time()
    time.sleep(0.01)
    start_journal(folder)
    assert journalled_users(folder, export) is None  # began after the export
    assert journalled_users(folder, time.time()) == {}
    first = (folder / "started").read_text()
    start_journal(folder)
    assert (folder / "started").read_text() == first  # the first start is kept
    since = time.time()
    write_journal_entry(folder, "c" * 64, "e0:0", {"VIEWED": ["u1"]}).write_text("{broken")
    assert journalled_users(folder, since) is None


def test_pruning_drops_what_an_update_read_and_keeps_what_the_next_needs(tmp_path: Path) -> None:
    folder = tmp_path / "changes"
    assert prune_journal(folder, time.time()) == 0  # no journal: nothing to do
    start_journal(folder)
    write_journal_entry(folder, "a" * 64, "e0:0", {"VIEWED": ["u1"]})
    read = time.time()  # an update read up to here
    time.sleep(0.01)
    write_journal_entry(folder, "b" * 64, "e0:0", {"VIEWED": ["u2"]})
    assert prune_journal(folder, read) == 1
    assert len(list(folder.glob("*.json"))) == 1
    assert journalled_users(folder, read) == {"VIEWED": {"u2"}}  # the next update's view
    assert journalled_users(folder, read - 1) is None  # no longer covers before the prune
