"""Atomic file writes, secret files and fingerprints."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_path(path: str | os.PathLike[str], mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success.

    Args:
        path: the final destination.
        mode: optional permission bits applied before the rename (e.g. ``0o600``).

    Raises:
        ArtifactWriteError: the file could not be written (full or read-only disk, no
            permission); nothing is left at ``path`` or beside it.
    """
    dest = Path(path)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    except OSError as exc:
        raise _write_error(dest, exc) from exc
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if mode is not None:
            os.chmod(tmp_path, mode)
        os.replace(tmp_path, dest)
    except OSError as exc:
        raise _write_error(dest, exc) from exc
    finally:
        tmp_path.unlink(missing_ok=True)


def _write_error(dest: Path, exc: OSError) -> Exception:
    from shopgraph.errors import ArtifactWriteError

    return ArtifactWriteError(f"cannot write {dest}: {exc.strerror or exc}; free some space, "
                              "fix the folder's permissions or choose another path (nothing "
                              "was written)")


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w",
                perms: int | None = None) -> Iterator[IO[Any]]:
    """Open a file for writing that appears at ``path`` only once it is complete."""
    with atomic_path(path, perms) as tmp:
        # Create with restrictive permissions from the start when asked for.
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        fd = os.open(tmp, flags, perms if perms is not None else 0o666)
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())


def write_json(path: str | os.PathLike[str], obj: Any, perms: int | None = None) -> None:
    """Write ``obj`` as pretty JSON, atomically."""
    with atomic_open(path, "w", perms) as fh:
        json.dump(obj, fh, indent=2, sort_keys=True)
        fh.write("\n")


def write_secret(path: str | os.PathLike[str], text: str) -> None:
    """Write a secret readable by its owner only (0600), atomically."""
    with atomic_open(path, "w", 0o600) as fh:
        fh.write(text)


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(*parts: Any) -> str:
    """A short, stable SHA-256 fingerprint of JSON-serialisable parts."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def write_npz(path: str | os.PathLike[str], header: dict[str, Any], arrays: dict[str, Any]
              ) -> Path:
    """Write ``arrays`` and a JSON ``header`` (stored as the array ``meta``) as one ``.npz``,
    atomically and without pickles; :func:`read_header` reads the header back."""
    import numpy as np

    dest = Path(path)
    with atomic_path(dest) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, meta=np.asarray(json.dumps(header, default=float)), **arrays)
    return dest


def read_header(npz: Any, path: str | os.PathLike[str], version: int, fix: str
                ) -> dict[str, Any]:
    """The JSON header of an open ``.npz`` written by :func:`write_npz`, checked for its format.

    Args:
        npz: the open file (``np.load(path, allow_pickle=False)``).
        path: its path, for the message.
        version: the format version this shopgraph reads.
        fix: the command that makes the file again, for the message.

    Raises:
        ArtifactFormatError: the file has another (or no) format version.
    """
    from shopgraph.errors import ArtifactFormatError

    header: dict[str, Any] = json.loads(str(npz["meta"])) if "meta" in npz.files else {}
    if header.get("format") != version:
        raise ArtifactFormatError(f"{path}: format {header.get('format')} is not {version}, the "
                                  f"one this shopgraph reads; make it again with `{fix}`")
    return header
