"""The streamed source of the line-based user -> item loaders (lightgcn, ratings).

:func:`user_item_source` reads the file once to find bad and repeated rows and the distinct
ids, and gives ingest a streamed :class:`~shopgraph.graphdb.frames.EdgeFrame` that reads it
again a chunk at a time: memory holds the distinct ids and one chunk, never all the events.

Measured on lightgcn files (dev-2c, peak RSS growth while loading and reading every chunk):
20 MB, 3 M pairs, 0.53 M ids: 210 MB; 100 MB, 15 M pairs, 0.59 M ids: 270 MB (the in-memory
loader needed about 100 bytes a pair for the frames alone, 2.8 GB for a 200 MB file).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from shopgraph.errors import IngestError
from shopgraph.graphdb.formats.common import (
    RowSink,
    iter_text_chunks,
    missing_ts,
    nodes_from_ids,
)
from shopgraph.graphdb.frames import EdgeFrame, SourceData, check_edge_frame

#: parses one chunk of lines into ``src, dst, eid, _line`` (and ``value``) rows; bad lines go
#: to the sink; None when the chunk has no rows
ChunkParser = Callable[[int, list[str], RowSink], "pd.DataFrame | None"]
#: distinct ids gathered a chunk at a time wait unmerged up to this many (or as many as are
#: merged already: merging then costs amortised O(1) a value)
_MERGE_AT = 1 << 18


class _Distinct:
    """Distinct values in first-seen order, gathered a chunk at a time (memory: the distinct
    values, about 70 bytes each, plus at most as many waiting to be merged)."""

    def __init__(self) -> None:
        self.merged: np.ndarray = np.zeros(0, object)
        self.waiting: list[np.ndarray] = []
        self.held = 0

    def add(self, values: pd.Series) -> None:
        part = pd.unique(values.to_numpy(dtype=object))
        self.waiting.append(part)
        self.held += len(part)
        if self.held > max(len(self.merged), _MERGE_AT):
            self.merged = self.values()

    def values(self) -> np.ndarray:
        """The distinct values so far, in first-seen order."""
        if self.waiting:
            self.merged = pd.unique(np.concatenate([self.merged, *self.waiting]))
            self.waiting, self.held = [], 0
        return self.merged


def _shared_in(h: np.ndarray) -> np.ndarray:
    """Indexes into ``h`` of the hashes that occur more than once in it."""
    s = np.sort(h)
    dup_values = np.unique(s[1:][s[1:] == s[:-1]])
    del s
    if not dup_values.size:
        return np.zeros(0, np.int64)
    at = np.minimum(np.searchsorted(dup_values, h), len(dup_values) - 1)
    return np.flatnonzero(dup_values[at] == h)


class _HashSpill:
    """The rows' event-id hashes, spilled to scratch files by their top bits (:data:`BUCKETS`
    of them, 16 bytes a row on disk), so that finding the hashes two rows share holds one
    bucket in memory at a time: a :data:`BUCKETS`-th of the rows, not all of them."""

    BUCKETS = 64
    RECORD = np.dtype([("h", "<u8"), ("p", "<i8")])

    def __init__(self, file: str) -> None:
        self.file = file
        try:
            self.dir = tempfile.TemporaryDirectory(prefix="shopgraph-ingest-")
            self.parts = [open(Path(self.dir.name) / f"{b:02d}", "wb")
                          for b in range(self.BUCKETS)]
        except OSError as exc:
            raise self._error(exc) from exc
        self.rows = 0

    def _error(self, exc: OSError) -> IngestError:
        return IngestError(f"cannot write the duplicate check's scratch files in "
                           f"{tempfile.gettempdir()}: {exc.strerror or exc}; set TMPDIR to a "
                           "folder with room (16 bytes a row)", file=self.file)

    def add(self, h: np.ndarray) -> None:
        """Append the hashes of the next ``len(h)`` rows."""
        bucket = (h >> np.uint64(58)).astype(np.intp)
        order = np.argsort(bucket, kind="stable")
        rec = np.empty(len(h), self.RECORD)
        rec["h"], rec["p"] = h[order], order + self.rows
        bounds = np.searchsorted(bucket[order], np.arange(self.BUCKETS + 1))
        try:
            for b in np.flatnonzero(np.diff(bounds)):
                rec[bounds[b]:bounds[b + 1]].tofile(self.parts[b])
        except OSError as exc:
            self.close()
            raise self._error(exc) from exc
        self.rows += len(h)

    def shared(self) -> np.ndarray:
        """Sorted positions of the rows whose hash another row has too; removes the files."""
        try:
            for fh in self.parts:
                fh.close()
            out = []
            for fh in self.parts:
                rec = np.fromfile(fh.name, self.RECORD)
                out.append(rec["p"][_shared_in(rec["h"])])
        finally:
            self.close()
        return np.sort(np.concatenate(out))

    def close(self) -> None:
        """Remove the scratch files."""
        for fh in self.parts:
            fh.close()
        self.dir.cleanup()


def _stamp(p: Path) -> tuple[int, int]:
    st = p.stat()
    return st.st_size, st.st_mtime_ns


def user_item_source(p: Path, sink: RowSink, parse: ChunkParser,
                     field_name: Callable[[int], str], *, fmt: str, rel: str,
                     name: str | None, nothing: str, duplicate: str) -> SourceData:
    """The source of a line-based user -> item loader, streamed: one ``rel`` relationship per
    row that ``parse`` makes of a chunk of lines, users and items as nodes.

    The file is read once here, a chunk at a time: bad lines go to ``sink`` (strict mode raises
    on the first), each row's event id is hashed, and the distinct user and item ids are kept
    for the node frames. Rows whose event id repeats an earlier row's are bad
    rows (``duplicate``; rows sharing a hash are compared by value in a second read of just
    those rows); no row at all is a bad file (``nothing``). The relationships are a streamed
    :class:`EdgeFrame` that reads the file again at ingest, leaving the bad rows out. Memory:
    O(one chunk), plus the distinct ids (about 150 bytes each), plus a 64th of 16 bytes a row
    (the event-id hashes wait in scratch files, 16 bytes a row on disk: :class:`_HashSpill`).
    The file must not change until the ingest is done (checked by size and time).
    """
    data = SourceData(name or p.parent.name, [p], options={"format": fmt, "rel": rel})
    stamp = _stamp(p)
    spill = _HashSpill(str(p))
    users, items = _Distinct(), _Distinct()
    try:
        for _, df in _parsed(p, parse, field_name, sink):
            spill.add(pd.util.hash_array(df["eid"].to_numpy(dtype=object), categorize=False))
            users.add(df["src"])
            items.add(df["dst"])
    except BaseException:
        spill.close()
        raise
    n_rows = spill.rows
    candidates = spill.shared()
    if not n_rows:
        sink.bad(1, "user", nothing)
        data.problems = sink.problems
        return data
    drop = np.zeros(0, np.int64)
    if candidates.size:
        drop, lines_of = _confirm_duplicates(p, parse, field_name, candidates)
        for line in lines_of[: 1 if sink.strict else None]:
            sink.bad(int(line), "item", duplicate)
    data.problems = sink.problems
    file = str(p)

    def reader() -> Iterator[pd.DataFrame]:
        if _stamp(p) != stamp:
            raise IngestError("the file changed after it was read; run the ingest again",
                              file=file)
        seen = 0
        for offset, df in _parsed(p, parse, field_name, RowSink(p, strict=False)):
            seen = offset + len(df)
            lo, hi = np.searchsorted(drop, [offset, seen])
            if hi > lo:
                df = df.drop(index=df.index[drop[lo:hi] - offset])
            if not len(df):
                continue
            df = df.reset_index(drop=True)
            df["ts"] = missing_ts(len(df))
            if "value" not in df:
                df["value"] = np.full(len(df), np.nan)
            df = df[["src", "dst", "eid", "ts", "value", "_line"]]
            check_edge_frame(EdgeFrame(rel, df, file))
            yield df
        if seen != n_rows:
            raise IngestError("the file changed after it was read; run the ingest again",
                              file=file)

    data.nodes = [nodes_from_ids("User", users.values(), file),
                  nodes_from_ids("Item", items.values(), file)]
    data.edges = [EdgeFrame(rel, file=file, reader=reader, rows=n_rows - len(drop))]
    data.validate()
    return data


def _parsed(p: Path, parse: ChunkParser, field_name: Callable[[int], str], sink: RowSink
            ) -> Iterator[tuple[int, pd.DataFrame]]:
    """``(position of its first row, rows)`` for each chunk of ``p`` that ``parse`` makes rows
    of; positions count the parsed rows from 0 (the numbering of the duplicate check)."""
    offset = 0
    for first, lines in iter_text_chunks(p, sink, field_name):
        df = parse(first, lines, sink)
        if df is not None:
            yield offset, df
            offset += len(df)


def _rows_at(p: Path, parse: ChunkParser, field_name: Callable[[int], str],
             positions: np.ndarray) -> pd.DataFrame:
    """The parsed rows at ``positions`` (sorted row numbers from 0, counted over the rows
    ``parse`` yields), read again from the file, in order."""
    parts = []
    for offset, df in _parsed(p, parse, field_name, RowSink(p, strict=False)):
        lo, hi = np.searchsorted(positions, [offset, offset + len(df)])
        if hi > lo:
            parts.append(df.iloc[positions[lo:hi] - offset][["eid", "_line"]])
    return (pd.concat(parts, ignore_index=True) if parts
            else pd.DataFrame({"eid": pd.Series(dtype=str), "_line": np.zeros(0, np.int64)}))


def _confirm_duplicates(p: Path, parse: ChunkParser, field_name: Callable[[int], str],
                        candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Of ``candidates`` (sorted positions: every row whose hash another row shares), those
    whose event id equals an earlier row's, compared by value: their positions and lines."""
    rows = _rows_at(p, parse, field_name, candidates)
    dup = rows["eid"].duplicated(keep="first").to_numpy()
    return candidates[dup], rows["_line"].to_numpy()[dup]
