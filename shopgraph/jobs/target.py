"""``shopgraph target``: a campaign's audience from the layers below: retrieval candidates,
optional response and churn scores, the ranked audience with its control group, why each user
is in it, the exported list and (optionally) the write-back.

The candidate pool is the ``pool`` users whose embeddings score highest against the campaign's
promoted items (:meth:`~shopgraph.retrieval.queries.Retriever.audience_batch`); the heads' scores
are joined onto it by user id, and :func:`~shopgraph.strategies.audience.rank_audience` blends
them. Retrieval reasons (:func:`~shopgraph.retrieval.explain.retrieval_reasons`) name, per user,
the promoted item the user's embedding scores highest and the item from the user's own history
closest to the promoted items.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from shopgraph.config import TargetConfig
from shopgraph.errors import InsufficientDataError
from shopgraph.graphdb import tables
from shopgraph.jobs.results import TargetResult
from shopgraph.jobs.writeback import write_back
from shopgraph.layout import WorkspaceLayout
from shopgraph.retrieval.explain import retrieval_reasons
from shopgraph.retrieval.queries import Retriever
from shopgraph.strategies import exports
from shopgraph.strategies.audience import rank_audience

if TYPE_CHECKING:
    from shopgraph.graphdb.store import GraphStore

CHURN_HORIZON_DAYS = 90.0
TREES_FROM_CUSTOMERS = 1000
"""Below this many customers the churn head is the RFM logistic model: trees need more rows to
split at all, and on CDNOW the two tie (docs/strategies-churn.md)."""
POOL_FACTOR = 5
"""Candidates fetched per audience place, so the heads can re-rank beyond retrieval's top n."""
Explain = Callable[[Sequence[str]], pd.DataFrame]
"""A head's reasons for given user ids: one text column indexed by user id."""


def pool_size(retriever: Retriever, n: int) -> int:
    """How many candidates an audience of ``n`` is chosen from."""
    return min(len(retriever.user_ids), n * POOL_FACTOR)


def candidates(retriever: Retriever, campaign_id: str, items: Sequence[str], pool: int,
               exclude_buyers: bool = False) -> pd.DataFrame:
    """The ``pool`` best users for the items: ``user_id``, ``retrieval_score``."""
    found = retriever.audience_batch({campaign_id: list(items)}, pool,
                                     exclude_buyers=exclude_buyers).to_pandas()
    return pd.DataFrame({"user_id": found["user_id"].astype(str),
                         "retrieval_score": found["score"].astype(float)})


def plan_audience(retriever: Retriever, campaign_id: str, items: Sequence[str], *, n: int,
                  pool: pd.DataFrame | None = None, control_share: float = 0.1, seed: int = 0,
                  weights: Mapping[str, float] | None = None,
                  response_proba: pd.Series | None = None, churn_risk: pd.Series | None = None,
                  consent: pd.Series | None = None, exclude_buyers: bool = False,
                  value: float = 1.0) -> pd.DataFrame:
    """The ranked audience of a campaign with its control group and retrieval reasons.

    Args:
        retriever: the model's :class:`~shopgraph.retrieval.queries.Retriever`.
        campaign_id: the campaign (salts the control draw).
        items: its promoted items.
        n: audience size, control included.
        pool: the candidates (:func:`candidates`), when the caller already fetched them.
        control_share: share held out for measurement.
        seed: seed of the control draw.
        weights: blend weights of ``retrieval_score``, ``response_proba``, ``churn_risk``
            (default: retrieval and response 1, churn 0; a win-back campaign sets churn > 0).
        response_proba: P(respond) per user id, where a response head exists.
        churn_risk: P(churn) per user id, where a churn head exists.
        consent: consent per user id (false: never contacted, nor held out).
        exclude_buyers: leave out users who already have one of the items.
        value: worth of one response, for ``expected_value``.

    Raises:
        InsufficientDataError: no candidate qualifies, or every one opted out.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    frame = (candidates(retriever, campaign_id, items, pool_size(retriever, n), exclude_buyers)
             if pool is None else pool.copy())
    if frame.empty:
        raise InsufficientDataError(f"no user qualifies for campaign {campaign_id!r} (all "
                                    "excluded); drop --exclude-buyers or widen the items")
    for name, series in (("response_proba", response_proba), ("churn_risk", churn_risk)):
        if series is not None:
            frame[name] = frame["user_id"].map(series.rename(index=str))
    ranked = rank_audience(frame, campaign_id, n=n, weights=weights,
                           control_share=control_share, seed=seed, consent=consent, value=value)
    if ranked.empty:
        raise InsufficientDataError(f"every candidate of campaign {campaign_id!r} opted out of "
                                    "contact (consent false); nothing to send")
    reasons = retrieval_reasons(retriever, ranked["user_id"].tolist(), items)
    out = ranked.merge(reasons, on="user_id", how="left")
    out.attrs.update(ranked.attrs)
    return out


def response_scores(store: GraphStore, campaign_id: str, user_ids: Sequence[str],
                    users: pd.DataFrame) -> tuple[pd.Series | None, Explain | None, str]:
    """``response_proba`` per user of ``user_ids`` for ``campaign_id``, from a response head
    trained on the other campaigns' logged outcomes; a function giving ``response_reasons``
    (top SHAP features) of any users (asked only of those chosen: TreeSHAP is the costly part);
    and a note. ``(None, None, why)`` when there is no such log. The label is the first of
    converted, redeemed, visited with both outcomes logged."""
    from shopgraph.strategies import response
    from shopgraph.strategies.evaluation import response_label

    log = tables.campaign_log(store)
    past = log[(log["campaign_id"] != str(campaign_id)) & log["treated"].astype(bool)]
    label = response_label(past)
    if label is None:
        return None, None, "no response head: no other campaign has logged outcomes"
    camps = tables.campaign_features(store)
    try:
        head = response.fit(past, users, camps, label=label)
    except InsufficientDataError as exc:
        return None, None, f"no response head: {exc}"

    def pairs(ids: Sequence[str]) -> pd.DataFrame:
        return pd.DataFrame({"user_id": [str(u) for u in ids], "campaign_id": str(campaign_id)})

    def explain(ids: Sequence[str]) -> pd.DataFrame:
        asked = pairs(ids)
        texts = head.reasons(asked, users, camps, top=3).astype(str)
        joined = texts.iloc[:, 0].str.cat([texts[c] for c in texts.columns[1:]], sep="; ")
        return pd.DataFrame({"response_reasons": joined.to_numpy()},
                            index=asked["user_id"].to_numpy())

    pool = pairs(user_ids)
    proba = pd.Series(head.predict_proba(pool, users, camps), index=pool["user_id"].to_numpy(),
                      name="response_proba")
    note = (f"response head ({head.kind}) on {len(past):,} past exposures of "
            f"{past['campaign_id'].nunique()} campaigns, label {label}")
    return proba, explain, note


def churn_scores(buys: pd.DataFrame, user_ids: Sequence[str],
                 horizon_days: float = CHURN_HORIZON_DAYS
                 ) -> tuple[pd.DataFrame | None, Explain | None, str]:
    """``churn_risk`` (P(no purchase in the next ``horizon_days``)) and ``risk_band`` per user
    from a churn head trained on the purchases ``buys`` up to the last one; a function giving
    ``churn_reasons`` of any users; and a note. ``(None, None, why)`` when the purchase history
    cannot support one. Users without a purchase get no score (NaN)."""
    from shopgraph.strategies.churn import ChurnHead

    if buys.empty:
        return None, None, "no churn head: no timestamped purchases in the graph"
    now = int(buys["ts"].max()) + 1
    customers = buys["user_id"].nunique()
    kind = "lightgbm" if customers >= TREES_FROM_CUSTOMERS else "logistic"
    try:
        head = ChurnHead(kind).fit(buys, now, horizon_days)
    except InsufficientDataError as exc:
        return None, None, f"no churn head: {exc}"
    pred = head.predict(buys, now)

    def explain(ids: Sequence[str]) -> pd.DataFrame:
        ids = [str(u) for u in ids]
        why = head.reasons(buys, now, users=ids, k=2)
        why["text"] = [f"{f}={v:g} ({c:+.2f})" for f, v, c in
                       zip(why["feature"], why["value"], why["contribution"])]
        return pd.DataFrame({"churn_reasons": why.groupby("user_id")["text"].agg(
            "; ".join).reindex(ids)})

    out = pd.DataFrame({"churn_risk": pred["churn_probability"],
                        "risk_band": pred["risk_band"].astype(str)}).reindex(
        [str(u) for u in user_ids])
    note = (f"churn head ({kind}, calibrated) over the next {horizon_days:g} days, "
            f"{len(pred):,} customers")
    return out, explain, note


def target(store: GraphStore, retriever: Retriever, layout: WorkspaceLayout,
           config: TargetConfig, *, output: str | Path | None = None) -> TargetResult:
    """Plan a campaign's audience and export it; see ``docs/strategies.md``.

    Candidates come from retrieval against the campaign's promoted items (or
    ``config.items``); response and churn heads re-rank them where the graph's history supports
    them; a hash-based control group of ``config.control_share`` is held out; users without
    consent are left out. The list is written to ``output`` (default: the layout's target list
    of the campaign and run) and, with ``config.write_back``, recorded in the graph as
    ``TARGETED`` / ``HELD_OUT`` relationships tagged with the run id. The same inputs and seed
    give the same run id and the same list.

    Raises:
        ValueError: neither a campaign nor items, or no promoted item.
        InsufficientDataError: nobody qualifies (see :func:`plan_audience`).
    """
    c = config
    if c.campaign is None and c.items is None:
        raise ValueError("give a campaign, items, or both")
    name = str(c.campaign) if c.campaign is not None else "items"
    promoted = list(c.items) if c.items is not None else tables.campaign_items(store, name)
    if not promoted:
        raise ValueError(f"campaign {name!r} promotes no items (no offer of it applies "
                         "to an item); pass items")
    users = tables.user_features(store)
    consent = users["consent"] if "consent" in users else None
    notes: list[str] = []
    response = churn = None
    response_why = churn_why = None
    pool = candidates(retriever, name, promoted, pool_size(retriever, c.n), c.exclude_buyers)
    if c.heads:
        pool_ids = pool["user_id"].tolist()
        if c.campaign is not None:
            response, response_why, note = response_scores(store, name, pool_ids, users)
            notes.append(note)
        churn, churn_why, note = churn_scores(tables.purchases(store), pool_ids)
        notes.append(note)
    weights = {"retrieval_score": 1.0, "response_proba": 1.0,
               "churn_risk": 1.0 if c.winback else 0.0}
    audience = plan_audience(retriever, name, promoted, n=c.n, pool=pool,
                             control_share=c.control_share, seed=c.seed, weights=weights,
                             response_proba=response,
                             churn_risk=None if churn is None else churn["churn_risk"],
                             consent=consent, exclude_buyers=c.exclude_buyers)
    # Reasons only for the chosen users (control included), not the whole candidate pool.
    chosen = audience["user_id"].tolist()
    if response_why is not None:
        audience["response_reasons"] = audience["user_id"].map(
            response_why(chosen)["response_reasons"])
    if churn is not None and churn_why is not None:
        audience["risk_band"] = audience["user_id"].map(churn["risk_band"])
        audience["churn_reasons"] = audience["user_id"].map(churn_why(chosen)["churn_reasons"])
    run = exports.run_id(name, sorted(promoted), c.n, c.control_share, c.winback, c.heads,
                         c.exclude_buyers, retriever.ckpt.fingerprint, audience, seed=c.seed)
    path = Path(output) if output is not None else layout.target_list(name, run)
    key = exports.load_key(layout.pseudonym_key) if c.pseudonymise else None
    emails = users["email"] if c.email_hashes and "email" in users else None
    if c.email_hashes and emails is None:
        raise ValueError("no user has an e-mail address in the graph; ingest the users' "
                         "email property or drop --email-hashes")
    exports.write_list(audience, path, run, key=key, emails=emails)
    written = write_back(store, audience, run).relationships_written if c.write_back else None
    return TargetResult(run_id=run, path=path, campaign=name, items=len(promoted),
                        audience=len(audience), send=int(audience.attrs.get("send", 0)),
                        control=int(audience.attrs.get("control", 0)),
                        no_consent=int(audience.attrs.get("no_consent", 0)), used=notes,
                        written_back=written, frame=audience)
