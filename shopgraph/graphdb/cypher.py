"""All Cypher text shopgraph sends, as named templates.

Values always travel as parameters. The only things formatted into the text are labels and
relationship types, and only after :func:`shopgraph.graphdb.schema.label` /
:func:`shopgraph.graphdb.schema.rel` accepted them. Every statement here runs on Neo4j 5 and
on ArcadeDB's Bolt endpoint.
"""

from __future__ import annotations

from collections.abc import Sequence

from shopgraph.graphdb import schema

MERGE_NODES = "UNWIND $rows AS row MERGE (n:{label} {{id: row.id}}) SET n += row.p"
# For nodes without properties: an existing node is only read, never written again (on ArcadeDB
# a write would collide with another writer's edges on the same node).
MERGE_NODE_IDS = "UNWIND $rows AS row MERGE (n:{label} {{id: row.id}})"

# Properties go inline (a null is simply not stored); ``SET r += row.p`` costs ~20 % more, so it
# is added only for frames with extra properties (see :func:`edges`).
CREATE_EDGES = (
    "UNWIND $rows AS row "
    "MATCH (s:{src} {{id: row.s}}) MATCH (d:{dst} {{id: row.d}}) "
    "CREATE (s)-[r:{rel} {{eid: row.e, ts: row.t, value: row.v}}]->(d){extra} "
    "RETURN count(r) AS n"
)

# For a batch whose fast CREATE hit the eid constraint: the events of the batch already in the
# graph (same eid between the same nodes) with their stored values; the others are then created
# with CREATE_EDGES.
PRESENT_EDGES = (
    "UNWIND $rows AS row "
    "MATCH (s:{src} {{id: row.s}})-[r:{rel} {{eid: row.e}}]->(d:{dst} {{id: row.d}}) "
    "RETURN row.e AS eid, r.ts AS t, r.value AS v"
)

# After a bulk load: properties its loader cannot write (empty strings), set on the events
# found as PRESENT_EDGES finds them.
SET_EDGE_PROPS = (
    "UNWIND $rows AS row "
    "MATCH (s:{src} {{id: row.s}})-[r:{rel} {{eid: row.e}}]->(d:{dst} {{id: row.d}}) "
    "SET r += row.p"
)

# Where one event id is (a scalar parameter, so that the server can use the eid index; one
# ``UNWIND`` of many ids would scan every relationship per id on ArcadeDB).
EDGE_BY_EID = "MATCH (s)-[r:{rel}]->(d) WHERE r.eid = $eid RETURN s.id AS s, d.id AS d"

EXISTING_IDS = "UNWIND $ids AS id MATCH (n:{label} {{id: id}}) RETURN n.id AS id"

LEDGER_READ = "MATCH (l:IngestLog {id: $source}) RETURN l.done AS done"
LEDGER_MARK = ("MERGE (l:IngestLog {id: $source}) "
               "SET l.done = coalesce(l.done, []) + [$batch]")
# The whole ledger of a source at once (after a bulk load: every batch is done).
LEDGER_WRITE = "MERGE (l:IngestLog {id: $source}) SET l.done = $done"

META_READ = "MATCH (m:ShopgraphMeta {id: $key}) RETURN m.version AS version"
META_WRITE = "MERGE (m:ShopgraphMeta {id: $key}) SET m.version = $version"
ANY_NODE = "MATCH (n:{label}) RETURN n.id AS id LIMIT 1"
# Any node but the schema version's: is the database empty?
ANY_BUT_META = "MATCH (n) WHERE NOT n:ShopgraphMeta RETURN 1 AS found LIMIT 1"
# A node whose id contains $a or $b (the characters that version 2 escapes in event ids).
NODE_ID_CONTAINING = ("MATCH (n:{label}) WHERE n.id CONTAINS $a OR n.id CONTAINS $b "
                      "RETURN n.id AS id LIMIT 1")

NODE_IDS = "MATCH (n:{label}) RETURN n.id AS id"
# Every id in one record: a tenth of the time of NODE_IDS's record per node (1M users: 2.6 s
# against 28 s), held in the server's query heap, so only for up to IDS_PER_QUERY nodes.
NODE_IDS_COLLECTED = "MATCH (n:{label}) RETURN collect(n.id) AS ids"
# One map of the stored properties per node (only the properties a node has travel), and all of
# them in one record (the driver decodes it in a sixth of the client's time), as above.
NODE_MAPS = "MATCH (n:{label}) RETURN properties(n) AS p"
NODE_MAPS_COLLECTED = "MATCH (n:{label}) RETURN collect(properties(n)) AS p"
NODE_PROPS = "MATCH (n:{label}) RETURN n.id AS id, n.{prop} AS v"
COUNT_NODES = "MATCH (n:{label}) RETURN count(n) AS n"
COUNT_RELS = "MATCH ()-[r:{rel}]->() RETURN count(r) AS n"

# The items a campaign promotes: those its offers apply to. OPTIONAL MATCH keeps a campaign
# without items (one row, item null) apart from an unknown campaign (no row).
CAMPAIGN_ITEMS = (
    "MATCH (c:Campaign {id: $campaign}) "
    "OPTIONAL MATCH (c)-[:INCLUDES]->(:Offer)-[:APPLIES_TO]->(i:Item) "
    "RETURN c.id AS campaign, collect(DISTINCT i.id) AS items"
)

# Interaction edges grouped by start node, the groups gathered into one record of columns: ``s``
# (one id per start node) and, per start node, a list of each other column. One record decodes
# far faster than a record per node (1M-user shop, 100k users' 2.1M views: 11.5 s against
# 15.1 s), while each ``collect`` stays under ArcadeDB's 2,097,152 elements as long as a read has
# fewer start nodes (a flat ``collect`` per edge would not). ``collect`` drops nulls, so missing
# values are replaced by the sentinels $no_ts and $no_value to keep the lists aligned. The
# server holds the groups in memory, so a type with many edges is read a batch of users at a
# time (the ``*_OF_USERS`` forms, through the id index; see
# :func:`shopgraph.graphdb.export.grouped_by_user`).
EDGES_BY_SOURCE = (
    "MATCH (s:{src})-[r:{rel}]->(d:{dst}) "
    "WITH s, collect(d.id) AS d, collect(coalesce(r.ts, $no_ts)) AS ts, "
    "collect(coalesce(r.value, $no_value)) AS v "
    "RETURN collect(s.id) AS s, collect(d) AS d, collect(ts) AS ts, collect(v) AS v"
)
EDGES_OF_USERS = ("UNWIND $ids AS id MATCH (s:{src} {{id: id}})-[r:{rel}]->(d:{dst}) "
                  + EDGES_BY_SOURCE[EDGES_BY_SOURCE.index("WITH"):])

# The times and values of one type's edges, grouped by start node as above (for the purchases
# table: no end node to decode); missing values as the sentinels $no_ts and $no_value.
EDGE_TIMES_BY_SOURCE = (
    "MATCH (s:{src})-[r:{rel}]->(:{dst}) "
    "WITH s, collect(coalesce(r.ts, $no_ts)) AS ts, collect(coalesce(r.value, $no_value)) AS v "
    "RETURN collect(s.id) AS s, collect(ts) AS ts, collect(v) AS v"
)
EDGE_TIMES_OF_USERS = ("UNWIND $ids AS id MATCH (s:{src} {{id: id}})-[r:{rel}]->(:{dst}) "
                       + EDGE_TIMES_BY_SOURCE[EDGE_TIMES_BY_SOURCE.index("WITH"):])

# Every user with its number of edges of each type (``COUNT {}`` walks each user's edge list: on
# the 20k-user shop 7x cheaper than streaming the edges); ``{counts}`` is filled by
# :func:`user_edge_counts`.
USER_EDGE_COUNTS = "MATCH (s:User) RETURN s.id AS s{counts}"
USER_EDGE_COUNT = ", COUNT {{ (s)-[:{rel}]->() }} AS n{k}"



def user_edge_counts(rels: Sequence[str]) -> str:
    """:data:`USER_EDGE_COUNTS` with one column ``n<k>`` per allow-listed type in ``rels``."""
    return USER_EDGE_COUNTS.format(counts="".join(
        USER_EDGE_COUNT.format(rel=schema.rel(t), k=k) for k, t in enumerate(rels)))


def nodes(template: str, label: str, prop: str | None = None) -> str:
    """Fill a node template with an allow-listed label (and a known property)."""
    if prop is not None and prop not in schema.NODE_PROPERTIES[schema.label(label)]:
        raise ValueError(f"{label} has no property {prop!r}")
    return template.format(label=schema.label(label), prop=prop)


def edges(template: str, rel: str, extra_props: bool = False) -> str:
    """Fill an edge template with an allow-listed relationship type and its end labels.

    Args:
        template: one of the edge templates above.
        rel: the relationship type.
        extra_props: rows carry a map ``p`` of further properties to set.
    """
    src, dst, _ = schema.RELATIONSHIPS[schema.rel(rel)]
    extra = " SET r += row.p" if extra_props else ""
    return template.format(rel=rel, src=src, dst=dst, extra=extra)
