"""The corpus graph's tables (pyarrow schemas), defined once, and the ids every branch computes.

The contract (issue 26): chunk -> grounded mentions and relations -> resolved nodes, edges,
graph mentions, merges and evidence. Ids are content hashes, never counters, so the same corpus
gives the same ids and adding documents does not renumber existing nodes.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa

CHUNKS = pa.schema(
    [
        ("doc_id", pa.string()),
        ("chunk_id", pa.string()),
        ("chunk_index", pa.int32()),
        ("start", pa.int64()),
        ("end", pa.int64()),
        ("text", pa.string()),
    ]
)

# name = the entity text the model gave; text = the document's surface form == doc[start:end].
MENTIONS = pa.schema(
    [
        ("doc_id", pa.string()),
        ("chunk_id", pa.string()),
        ("start", pa.int64()),
        ("end", pa.int64()),
        ("text", pa.string()),
        ("type", pa.string()),
        ("name", pa.string()),
    ]
)

# head/tail = the model's entity names (grounded); start/end = the evidence span in the document.
RELATIONS = pa.schema(
    [
        ("doc_id", pa.string()),
        ("chunk_id", pa.string()),
        ("head", pa.string()),
        ("head_type", pa.string()),
        ("tail", pa.string()),
        ("tail_type", pa.string()),
        ("type", pa.string()),
        ("start", pa.int64()),
        ("end", pa.int64()),
    ]
)

NODES = pa.schema(
    [
        ("node_id", pa.string()),
        ("name", pa.string()),
        ("type", pa.string()),
        ("aliases", pa.list_(pa.string())),
        ("mention_count", pa.int64()),
        ("doc_count", pa.int64()),
    ]
)

EDGES = pa.schema(
    [
        ("edge_id", pa.string()),
        ("head", pa.string()),
        ("tail", pa.string()),
        ("type", pa.string()),
        ("count", pa.int64()),
        pa.field("confidence", pa.float64(), nullable=True),
    ]
)

GRAPH_MENTIONS = pa.schema(
    [
        ("mention_id", pa.string()),
        ("node_id", pa.string()),
        ("doc_id", pa.string()),
        ("chunk_id", pa.string()),
        ("start", pa.int64()),
        ("end", pa.int64()),
        ("text", pa.string()),
        ("type", pa.string()),
    ]
)

MERGES = pa.schema(
    [
        ("node_id", pa.string()),
        ("mention_id", pa.string()),
        ("joined_to", pa.string()),
        ("rule", pa.string()),
        pa.field("score", pa.float64(), nullable=True),
    ]
)

EVIDENCE = pa.schema(
    [
        ("edge_id", pa.string()),
        ("doc_id", pa.string()),
        ("start", pa.int64()),
        ("end", pa.int64()),
        ("text", pa.string()),
    ]
)


def _h(joined: str) -> str:
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()[:16]


def node_id(type_: str, key: str) -> str:
    """A node's id from its type and canonical key (the cluster's normalised full name)."""
    return "n" + _h(f"{type_}\0{key}")


def edge_id(head: str, type_: str, tail: str) -> str:
    """An edge's id from its head node id, relation type and tail node id."""
    return "e" + _h(f"{head}\0{type_}\0{tail}")


def mention_id(doc_id: str, start: int, end: int, type_: str) -> str:
    """A mention's id from where it sits in its document and its type."""
    return "m" + _h(f"{doc_id}\0{int(start)}\0{int(end)}\0{type_}")


def mention_ids(doc_ids: list, starts: list, ends: list, types: list) -> list[str]:
    """`mention_id` of every row of four columns: the same formula, inlined, because two Python
    calls per mention were a third of resolve's first step."""
    sha = hashlib.sha256
    return [
        "m" + sha(f"{d}\0{int(s)}\0{int(e)}\0{t}".encode()).hexdigest()[:16]
        for d, s, e, t in zip(doc_ids, starts, ends, types)
    ]


def empty(schema: pa.Schema) -> pa.Table:
    """An empty table of a schema (a stage with nothing to write still writes its columns)."""
    return schema.empty_table()


def from_columns(columns: dict[str, list], schema: pa.Schema) -> pa.Table:
    """Columns (lists) to a table of the schema: faster than rows for large tables."""
    return pa.table({n: columns[n] for n in schema.names}, schema=schema)


def from_rows(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """Rows (dicts) to a table of the schema; a missing column is an error naming it."""
    if not rows:
        return empty(schema)
    missing = [n for n in schema.names if n not in rows[0]]
    if missing:
        raise ValueError(f"rows lack column(s) {missing} of the schema {schema.names}")
    return pa.Table.from_pylist(rows, schema=schema)
