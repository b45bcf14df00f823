"""Write a planned list back to the graph: ``TARGETED`` Campaign -> User for the send and
``HELD_OUT`` User -> Campaign for the control group (what
:func:`~shopgraph.graphdb.tables.campaign_log` reads as control), both with ``run_id`` and
``arm``, event id ``event_id(run_id, campaign, user)`` (``"<run_id>:<campaign>:<user>"``, a
``%`` or ``:`` inside a part escaped), through the idempotent ingest: a re-run
writes nothing.

Two kinds of write-back share these relationships:

* :func:`write_back` — a ranked audience and its hash-based control group (``arm`` treatment or
  control, ``value`` = score). It logs no policy or propensity and is left out of
  :func:`~shopgraph.graphdb.tables.decision_log`: an audience's send is not a stochastic
  decision over every eligible user, and a propensity of 1 would claim that the control group
  could not have happened.
* :func:`write_decisions` — a policy's decision for every eligible user, logged for learning
  (schema version 3): the action taken (``offer``, ``"none"`` for no offer), its ``propensity``,
  the policy and model versions and the candidate actions, on ``TARGETED`` (an offer) or
  ``HELD_OUT`` (none: ``arm`` control for the forced random control group, ``none`` for the
  policy's own choice). :func:`~shopgraph.graphdb.tables.decision_log` reads them back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

import numpy as np
import pandas as pd

from shopgraph.artifacts import fingerprint
from shopgraph.errors import quote
from shopgraph.graphdb import schema
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


#: ``arm`` of a user the policy itself chose to give no offer (``HELD_OUT``, not control).
NO_OFFER_ARM = schema.NO_OFFER
#: The columns a decisions frame must have; ``score`` and ``ts`` are optional.
DECISION_COLUMNS = ("user_id", "offer", "propensity", "control")


def decisions_source(decisions: pd.DataFrame, *, campaign_id: str, run_id: str, policy: str,
                     policy_version: str, model_version: str, candidates: Sequence[str],
                     round_id: str | None = None) -> SourceData:
    """A policy's decisions as a :class:`~shopgraph.graphdb.frames.SourceData`, validated.

    Users given an offer get ``TARGETED`` (Campaign -> User, ``arm`` treatment); users given
    none get ``HELD_OUT`` (User -> Campaign, ``arm`` control for the forced control group,
    ``none`` for the policy's own choice). Every relationship carries ``run_id``, ``offer``,
    ``propensity``, ``policy``, ``policy_version``, ``model_version``, ``candidates``,
    ``round_id`` when given, ``ts`` and (as ``value``) ``score`` when given; event id
    ``event_ids(run_id, campaign_id, user_id)``.

    Args:
        decisions: one row per eligible user: ``user_id``, ``offer`` (an action of
            ``candidates``, ``"none"`` for no offer), ``propensity`` (the probability, in
            (0, 1], that the logging policy took this action for this user, control draw
            included), ``control`` (bool: in the forced random control group, so ``offer`` is
            ``"none"``), optional ``score`` (float) and ``ts`` (int seconds, the decision time).
        campaign_id: the campaign decided on.
        run_id: the planning run.
        policy: the policy's name.
        policy_version: its version.
        model_version: the version of the model it scored with.
        candidates: the candidate action names; ``"none"`` (no offer) is always one and is put
            first when missing. Stored joined by ``|``, which a name may not contain.
        round_id: the planning round, if any.

    Raises:
        ValueError: a column is missing or holds a bad value (the message names the column),
            or an argument is empty.
    """
    names = _check_candidates(candidates)
    for arg, given in (("campaign_id", campaign_id), ("run_id", run_id), ("policy", policy),
                       ("policy_version", policy_version), ("model_version", model_version),
                       *((("round_id", round_id),) if round_id is not None else ())):
        if not isinstance(given, str) or not given:
            raise ValueError(f"{arg} must be a non-empty string, got {given!r}")
    rows = _checked_decisions(decisions, names)
    logged = {"run_id": run_id, "policy": policy, "policy_version": policy_version,
              "model_version": model_version,
              "candidates": schema.CANDIDATE_SEP.join(names),
              **({"round_id": round_id} if round_id is not None else {})}
    none = rows["offer"] == schema.NO_OFFER
    edges = []
    for rel, part in (("TARGETED", rows[~none]), ("HELD_OUT", rows[none])):
        if part.empty:
            continue
        camp = pd.Series(campaign_id, index=part.index, dtype=object)
        user = part["user_id"]
        src, dst = (camp, user) if rel == "TARGETED" else (user, camp)
        arm = (pd.Series(TREATMENT, index=part.index) if rel == "TARGETED"
               else part["control"].map({True: CONTROL, False: NO_OFFER_ARM}))
        edges.append(EdgeFrame(rel, pd.DataFrame({
            "src": src.to_numpy(dtype=object), "dst": dst.to_numpy(dtype=object),
            "eid": event_ids(run_id, campaign_id, user).to_numpy(),
            "ts": part["ts"].array, "value": part["score"].to_numpy(dtype=float),
            "arm": arm.to_numpy(dtype=object), "offer": part["offer"].to_numpy(dtype=object),
            "propensity": part["propensity"].to_numpy(dtype=float), **logged,
            "_line": part["_line"].to_numpy()})))
    content = fingerprint([frame_fingerprint(e.data) for e in edges])
    return SourceData(f"decisions:{run_id}", [], edges=edges,
                      options={"run_id": run_id, "campaign_id": campaign_id,
                               "content": content})


def write_decisions(store: GraphStore, decisions: pd.DataFrame, *, campaign_id: str,
                    run_id: str, policy: str, policy_version: str, model_version: str,
                    candidates: Sequence[str], round_id: str | None = None,
                    batch_size: int = 10_000) -> IngestSummary:
    """Log a policy's decisions in the graph (see :func:`decisions_source` for the arguments);
    :func:`~shopgraph.graphdb.tables.decision_log` reads them back.

    Everything is validated before anything is written. Campaign and users must already be in
    the graph. A re-run with the same ``run_id`` writes nothing: an event already present keeps
    what it was first written with.

    Returns:
        The :class:`~shopgraph.graphdb.ingest.IngestSummary`.

    Raises:
        ValueError: bad decisions (the message names the column).
        IngestError: the campaign or a user is not in the graph (ingest them first).
    """
    data = decisions_source(decisions, campaign_id=campaign_id, run_id=run_id, policy=policy,
                            policy_version=policy_version, model_version=model_version,
                            candidates=candidates, round_id=round_id)
    if not data.edges:
        return IngestSummary(data.name, "")
    return ingest(store, data, batch_size=batch_size, strict=True)


def _check_candidates(candidates: Sequence[str]) -> list[str]:
    """The candidate names, ``"none"`` first when missing; ValueError on a bad one."""
    if isinstance(candidates, str):
        raise ValueError(f"candidates must be a sequence of action names, not the string "
                         f"{quote(candidates)}")
    names = list(candidates)
    bad = [n for n in names if not isinstance(n, str) or not n or schema.CANDIDATE_SEP in n]
    if bad:
        raise ValueError(f"candidate action names must be non-empty strings without "
                         f"{schema.CANDIDATE_SEP!r}, got {bad[0]!r}")
    if len(set(names)) != len(names):
        dup = next(n for k, n in enumerate(names) if n in names[:k])
        raise ValueError(f"candidate action {quote(dup)} is listed twice")
    return names if schema.NO_OFFER in names else [schema.NO_OFFER, *names]


def _checked_decisions(decisions: pd.DataFrame, candidates: list[str]) -> pd.DataFrame:
    """``decisions`` with clean types and a ``_line`` (1-based row); ValueError naming the
    column of the first bad value."""
    missing = [c for c in DECISION_COLUMNS if c not in decisions.columns]
    if missing:
        raise ValueError(f"the decisions lack columns {missing}; each row needs "
                         f"{', '.join(DECISION_COLUMNS)} (score and ts optional)")
    frame = decisions.reset_index(drop=True)
    n = len(frame)

    def fail(column: str, mask: np.ndarray, why: str, shown: str | None = None) -> NoReturn:
        row = int(np.flatnonzero(mask)[0])
        value = frame[shown or column].iloc[row]
        raise ValueError(f"decisions column {column!r}, row {row + 1}: {why} {quote(value)} "
                         f"({int(mask.sum())} row(s) in all)")

    user = frame["user_id"]
    bad = user.isna().to_numpy() | (user.astype(str).str.len() == 0).to_numpy()
    if bad.any():
        fail("user_id", bad, "empty user id")
    user = user.astype(str)
    dup = user.duplicated().to_numpy()
    if dup.any():
        fail("user_id", dup, "one decision per user; duplicate user")
    offer = frame["offer"]
    bad = ~offer.isin(candidates).to_numpy()
    if bad.any():
        fail("offer", bad, f"not one of the candidates {candidates}:")
    prop = pd.to_numeric(frame["propensity"], errors="coerce").to_numpy(dtype=float)
    bad = ~((prop > 0) & (prop <= 1))  # NaN fails both
    if bad.any():
        fail("propensity", bad, "a propensity must be in (0, 1], got")
    control = frame["control"]
    bad = ~control.map(lambda x: isinstance(x, bool | np.bool_)).to_numpy(dtype=bool)
    if bad.any():
        fail("control", bad, "must be True or False, got")
    control = control.astype(bool)
    bad = (control & (offer != schema.NO_OFFER)).to_numpy()
    if bad.any():
        fail("control", bad, f"the control group gets no offer ({schema.NO_OFFER!r}), got",
             shown="offer")
    if "ts" in frame:
        ts = pd.to_numeric(frame["ts"], errors="coerce")
        bad = (frame["ts"].notna() & (ts.isna() | (ts % 1 != 0))).to_numpy()
        if bad.any():
            fail("ts", bad, "a timestamp must be whole seconds, got")
        ts_col = pd.array(ts, dtype="Int64")
    else:
        ts_col = pd.array([pd.NA] * n, dtype="Int64")
    if "score" in frame:
        score = pd.to_numeric(frame["score"], errors="coerce")
        bad = (frame["score"].notna() & score.isna()).to_numpy()
        if bad.any():
            fail("score", bad, "a score must be a number, got")
    else:
        score = pd.Series(np.nan, index=frame.index)
    return pd.DataFrame({"user_id": user.to_numpy(dtype=object),
                         "offer": offer.astype(str).to_numpy(dtype=object),
                         "propensity": prop, "control": control.to_numpy(dtype=bool),
                         "score": score.to_numpy(dtype=float), "ts": ts_col,
                         "_line": np.arange(1, n + 1)})
