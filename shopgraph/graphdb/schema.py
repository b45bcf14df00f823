"""The graph schema: the only labels and relationship types shopgraph ever writes.

Cypher cannot take labels or relationship types as parameters, so every label or type that
reaches query text must come from the allow-lists below (see :func:`label` and :func:`rel`).
Every node is keyed by a string ``id``; every relationship carries a string event id ``eid``.
Both are unique (one constraint each), which is also what makes batched writes fast.

The graph records the schema version it was written with in one ``ShopgraphMeta`` node
(``{id: 'schema', version: SCHEMA_VERSION}``); see :meth:`GraphStore.ensure_schema
<shopgraph.graphdb.store.GraphStore.ensure_schema>` for how older graphs are taken over.
Versions:

1. event ids join their parts with ``:`` unescaped, so (``a:b``, ``c``) and (``a``, ``b:c``)
   collide. The version was never written into the graph: a graph without a version is version 1.
2. each part of an event id is percent-escaped (``%`` as ``%25``, ``:`` as ``%3A``) before the
   parts are joined with ``:``. Ids without ``%`` or ``:`` keep the event id of version 1.
3. every decision is logged for learning: the ``TARGETED`` and ``HELD_OUT`` relationships a
   policy writes back also carry ``offer`` (the action taken, :data:`NO_OFFER` for none),
   ``propensity`` (its probability under the policy, in (0, 1]), ``policy``,
   ``policy_version``, ``model_version``, ``candidates`` (the candidate actions joined by
   :data:`CANDIDATE_SEP`) and optionally ``round_id``. Additive: no stored value changes, so a
   version-2 graph is stamped 3 as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEMA_VERSION = 3

#: The first version whose event ids escape their parts; graphs older than it are checked for
#: ids that would get another event id before they are taken over.
ESCAPED_EVENT_IDS_VERSION = 2

#: The key (``id``) of the ``ShopgraphMeta`` node that holds the schema version.
META_SCHEMA_KEY = "schema"

#: Node labels and the properties each may carry (besides ``id``), with their types.
NODE_PROPERTIES: dict[str, dict[str, type]] = {
    "User": {"email": str, "consent": bool, "recency": float, "history": float, "mens": int,
             "womens": int, "zip_code": str, "newbie": int, "channel": str, "age": str,
             "marital_status": str, "income": str, "homeowner": str, "household_comp": str,
             "household_size": str, "kids": str},
    "Item": {"name": str, "category": str, "price": float},
    "Category": {"name": str},
    "Campaign": {"name": str, "type": str, "start_day": int, "end_day": int, "channel": str},
    "Offer": {"name": str, "type": str, "reward": float, "difficulty": float,
              "duration": float, "channels": str, "upc": str},
    "IngestLog": {"source": str, "done": list},
    "ShopgraphMeta": {"version": int},
}

#: Labels shopgraph keeps for itself (the ingest ledger, the schema version): no loader or
#: mapping may write them, and they are left out of counts.
INTERNAL_LABELS: tuple[str, ...] = ("IngestLog", "ShopgraphMeta")

#: Labels that hold the shop's data.
DATA_LABELS: tuple[str, ...] = tuple(lab for lab in NODE_PROPERTIES if lab not in INTERNAL_LABELS)

#: Relationship types -> (source label, target label, is an interaction).
RELATIONSHIPS: dict[str, tuple[str, str, bool]] = {
    # user -> item interactions
    "VIEWED": ("User", "Item", True),
    "CARTED": ("User", "Item", True),
    "PURCHASED": ("User", "Item", True),
    "RATED": ("User", "Item", True),
    "INTERACTED": ("User", "Item", True),  # implicit feedback: a check-in, a listen
    # user -> offer
    "RECEIVED": ("User", "Offer", True),
    "VIEWED_OFFER": ("User", "Offer", True),
    "COMPLETED": ("User", "Offer", True),
    # user -> campaign
    "EXPOSED": ("User", "Campaign", True),   # saw an ad / was sent the campaign
    "CLICKED": ("User", "Campaign", True),   # clicked an ad
    "VISITED": ("User", "Campaign", True),   # visited the shop during the campaign
    "CONVERTED": ("User", "Campaign", True),  # bought during the campaign (value = spend)
    "HELD_OUT": ("User", "Campaign", True),  # in the campaign's control group
    # structure
    "TARGETED": ("Campaign", "User", False),
    "INCLUDES": ("Campaign", "Offer", False),
    "APPLIES_TO": ("Offer", "Item", False),
    "IN_CATEGORY": ("Item", "Category", False),
}

#: Properties a relationship may carry besides ``eid``. The decision-log ones (version 3,
#: ``propensity`` to ``round_id``) are written by :func:`shopgraph.jobs.writeback.write_decisions`
#: on ``TARGETED`` / ``HELD_OUT``; lists are stored as strings (``candidates``) so that Neo4j and
#: ArcadeDB hold the same value.
REL_PROPERTIES: dict[str, type] = {"ts": int, "value": float, "arm": str, "run_id": str,
                                  "quantity": int,
                                  # the decision log (version 3)
                                  "offer": str, "propensity": float, "policy": str,
                                  "policy_version": str, "model_version": str,
                                  "candidates": str, "round_id": str}

#: The decision-log properties, in the order :func:`shopgraph.graphdb.tables.decision_log`
#: reads them.
DECISION_PROPERTIES: tuple[str, ...] = ("offer", "propensity", "policy", "policy_version",
                                        "model_version", "candidates", "round_id")

#: The action "no offer" in ``offer`` and ``candidates``.
NO_OFFER = "none"

#: Joins the candidate action names in ``candidates`` (a name may not contain it).
CANDIDATE_SEP = "|"

INTERACTION_TYPES = tuple(t for t, (_, _, inter) in RELATIONSHIPS.items() if inter)
USER_ITEM_TYPES = tuple(t for t, (s, d, _) in RELATIONSHIPS.items() if (s, d) == ("User", "Item"))


def label(name: str) -> str:
    """Return ``name`` if it is an allowed node label, else raise ``ValueError``."""
    if name not in NODE_PROPERTIES:
        raise ValueError(f"unknown node label {name!r}; allowed: {', '.join(NODE_PROPERTIES)}")
    return name


def rel(name: str) -> str:
    """Return ``name`` if it is an allowed relationship type, else raise ``ValueError``."""
    if name not in RELATIONSHIPS:
        raise ValueError(
            f"unknown relationship type {name!r}; allowed: {', '.join(RELATIONSHIPS)}")
    return name


@dataclass(frozen=True)
class Constraint:
    """One uniqueness constraint: on a node label's ``id`` or a relationship type's ``eid``."""

    name: str
    cypher: str


def constraints() -> list[Constraint]:
    """Every uniqueness constraint of the schema, as idempotent Cypher statements."""
    out = [Constraint(f"{lab.lower()}_id",
                      f"CREATE CONSTRAINT {lab.lower()}_id IF NOT EXISTS "
                      f"FOR (n:{lab}) REQUIRE n.id IS UNIQUE")
           for lab in NODE_PROPERTIES]
    out += [Constraint(f"{t.lower()}_eid",
                       f"CREATE CONSTRAINT {t.lower()}_eid IF NOT EXISTS "
                       f"FOR ()-[r:{t}]-() REQUIRE r.eid IS UNIQUE")
            for t in RELATIONSHIPS]
    return out
