"""Audience exports: CSV / Parquet lists, pseudonymised ids, hashed e-mails.

* :func:`write_list` — one row per audience member: ``run_id, campaign_id, rank, user_id`` (or
  ``pseudo_id``), ``offer, score``, the component scores present, ``expected_value, arm``
  (``treatment`` / ``control``) and optionally ``email_sha256``; written atomically, and the
  same audience and run id give a byte-identical file.
* :func:`pseudonymise` — HMAC-SHA256 of the user id under a per-workspace secret key
  (:func:`load_key`, a 0600 file): stable across runs, not reversible or linkable without it.
* :func:`normalise_email` / :func:`hash_email` — Google Customer Match's rule: trim, lowercase,
  and for ``gmail.com`` / ``googlemail.com`` drop the dots of the local part; then lowercase hex
  SHA-256 of the UTF-8 bytes. ``+tags`` are kept (Google's samples keep them).
  :func:`write_customer_list` writes the send only as a one-column ``Email`` CSV of hashes, the
  shape of a customer-list upload.

The write-back of a list to the graph is :mod:`shopgraph.jobs.writeback`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shopgraph.artifacts import atomic_path, fingerprint, write_secret
from shopgraph.errors import ShopgraphError
from shopgraph.strategies.audience import COMPONENTS, CONTROL, TREATMENT

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
GMAIL_DOMAINS = ("gmail.com", "googlemail.com")


REASON_COLUMNS = ("uplift", "risk_band", "top_item", "because_of", "response_reasons",
                  "churn_reasons", "uplift_reasons")
"""Columns carried into the lists when the audience has them (see strategies.targeting)."""


def frame_fingerprint(frame: pd.DataFrame | pd.Series) -> str:
    """A fingerprint of a frame's content (columns, index and values, via its CSV form)."""
    return fingerprint(frame.to_csv())


def run_id(*inputs: Any, seed: int) -> str:
    """A deterministic run id: the fingerprint of the inputs (frames by content) and the seed."""
    parts = [frame_fingerprint(x) if isinstance(x, pd.DataFrame | pd.Series) else x
             for x in inputs]
    return fingerprint("shopgraph-target", parts, seed)


# -- pseudonyms ------------------------------------------------------------------------------

def load_key(path: str | os.PathLike[str]) -> bytes:
    """The pseudonymisation key in ``path``, created (32 random bytes, hex, mode 0600) if absent.

    Raises:
        ShopgraphError: the file is readable by others, or empty.
    """
    path = Path(path)
    if not path.exists():
        write_secret(path, secrets.token_hex(32) + "\n")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ShopgraphError(f"{path} is readable by others (mode {mode:o}); run "
                             f"`chmod 600 {path}` so only its owner can read the key")
    text = path.read_text().strip()
    if not text:
        raise ShopgraphError(f"{path} is empty; delete it to create a new key (pseudonyms "
                             "made with the lost key will no longer match)")
    return text.encode()


def pseudonymise(user_ids: Iterable[object], key: bytes) -> list[str]:
    """HMAC-SHA256 (lowercase hex) of each user id under ``key``."""
    if not key:
        raise ValueError("the pseudonymisation key is empty; load one with load_key")
    return [hmac.new(key, str(u).encode(), hashlib.sha256).hexdigest() for u in user_ids]


# -- e-mail hashes ---------------------------------------------------------------------------

def normalise_email(email: object) -> str | None:
    """Trim and lowercase; drop the local part's dots at gmail.com / googlemail.com.

    Returns None for a missing value or text that is not ``local@domain``.
    """
    if email is None or (isinstance(email, float) and np.isnan(email)):
        return None
    text = str(email).strip().lower()
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in text):
        return None
    if domain in GMAIL_DOMAINS:
        local = local.replace(".", "")
    return f"{local}@{domain}"


def hash_email(email: object) -> str | None:
    """Lowercase hex SHA-256 of the normalised address (None when it is not an address)."""
    norm = normalise_email(email)
    return None if norm is None else hashlib.sha256(norm.encode("utf-8")).hexdigest()


# -- lists -----------------------------------------------------------------------------------

def list_frame(audience: pd.DataFrame, run: str, *, key: bytes | None = None,
               emails: pd.Series | None = None,
               arms: tuple[str, ...] = (TREATMENT, CONTROL)) -> pd.DataFrame:
    """The exported table (see :func:`write_list` for the arguments)."""
    missing = {"campaign_id", "user_id", "score", "arm"} - set(audience.columns)
    if missing:
        raise ValueError(f"the audience lacks columns {sorted(missing)}; make it with "
                         "audience.rank_audience")
    bad = set(arms) - {TREATMENT, CONTROL}
    if bad:
        raise ValueError(f"unknown arms {sorted(bad)}; use {TREATMENT!r} and/or {CONTROL!r}")
    rows = audience[audience["arm"].isin(arms)]
    ids = rows["user_id"].astype(str)
    out = pd.DataFrame({"run_id": run, "campaign_id": rows["campaign_id"].astype(str)})
    out["rank"] = rows["rank"] if "rank" in rows else np.arange(1, len(rows) + 1)
    if key is None:
        out["user_id"] = ids
    else:
        out["pseudo_id"] = pseudonymise(ids, key)
    out["offer"] = rows["offer"] if "offer" in rows else None
    out["score"] = rows["score"].astype(float)
    for col in (*COMPONENTS, "expected_value"):
        if col in rows:
            out[col] = rows[col].astype(float)
    out["arm"] = rows["arm"]
    for col in REASON_COLUMNS:
        if col in rows:
            out[col] = rows[col].to_numpy()
    if emails is not None:
        out["email_sha256"] = [hash_email(e) for e in emails.reindex(ids).to_numpy()]
    return out.reset_index(drop=True)


def _format(path: Path, fmt: str | None) -> str:
    if fmt is None:
        fmt = FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise ValueError(f"cannot tell the format of {path.name!r}; end it in .csv or "
                             ".parquet, or pass fmt")
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"unknown format {fmt!r}; choose csv or parquet")
    return fmt


def _write(table: pd.DataFrame, path: Path, fmt: str) -> Path:
    with atomic_path(path) as tmp:
        if fmt == "csv":
            table.to_csv(tmp, index=False, lineterminator="\n")
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pandas(table, preserve_index=False), tmp)
    return path


def write_list(audience: pd.DataFrame, path: str | os.PathLike[str], run: str, *,
               key: bytes | None = None, emails: pd.Series | None = None,
               arms: tuple[str, ...] = (TREATMENT, CONTROL), fmt: str | None = None) -> Path:
    """Write an audience as CSV or Parquet, atomically.

    Args:
        audience: from :func:`~shopgraph.strategies.audience.rank_audience`.
        path: the file; ``.csv`` or ``.parquet`` picks the format unless ``fmt`` is given.
        run: the run id (:func:`run_id`), written on every row.
        key: pseudonymise: ``pseudo_id`` (HMAC-SHA256) replaces ``user_id``.
        emails: e-mail per user id; adds ``email_sha256`` (empty where there is none).
        arms: which arms to write (both by default, told apart by ``arm``).
        fmt: ``"csv"`` or ``"parquet"``.

    Returns:
        The path written.
    """
    path = Path(path)
    fmt = _format(path, fmt)
    return _write(list_frame(audience, run, key=key, emails=emails, arms=arms), path, fmt)


def write_customer_list(audience: pd.DataFrame, emails: pd.Series,
                        path: str | os.PathLike[str]) -> int:
    """Write the send's hashed e-mails as a one-column ``Email`` CSV for an ad platform's
    customer-list upload (control users and users without an address are left out).

    Returns:
        The number of hashes written (distinct, in rank order).
    """
    send = audience[audience["arm"] == TREATMENT]
    hashes = [hash_email(e) for e in emails.reindex(send["user_id"].astype(str)).to_numpy()]
    kept = list(dict.fromkeys(h for h in hashes if h is not None))
    _write(pd.DataFrame({"Email": kept}), Path(path), "csv")
    return len(kept)
