"""Relations -> EDGES and EVIDENCE, once every mention has its node (t2g.kg.resolve).

A relation's head (and tail) is the node of the first mention (in the sorted mentions) with
the same document, chunk, name and type; failing that, of the first mention in the document
with that name and type (a relation without a chunk looks in its document only). A relation
whose head or tail has no such mention is dropped and counted. Edges: one per (head node,
relation type, tail node), with the number of relations stating it; evidence: one row per
(edge, document, start, end), its text the span of the first such relation's chunk.

Done in Arrow (hash lookups of composite keys, group-bys), so the work per relation is C++'s:
a Python loop over the relations was the largest part of resolve at scale. A null in a key
column never matches, which only matters for rows no extraction writes.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from t2g.kg.tables import EDGES, EVIDENCE, edge_id

DROPPED = "no mention of its head or tail"


def _key(table: pa.Table, columns: tuple[str, ...]) -> pa.ChunkedArray:
    """One string per row, equal to another row's exactly when every column is: each value is
    written after its length ("3:abc:2:de:"), so no value can run into the next. Null if any is."""
    parts = []
    for c in columns:
        col = table.column(c)
        parts += [pc.cast(pc.utf8_length(col), pa.string()), col]
    return pc.binary_join_element_wise(*parts, ":")


def _numbered(table: pa.Table, name: str) -> pa.Table:
    return table.append_column(name, pa.array(np.arange(table.num_rows, dtype=np.int64)))


def edges_and_evidence(
    mentions: pa.Table, relations: pa.Table, chunks: pa.Table | None
) -> tuple[pa.Table, pa.Table, Counter]:
    """(EDGES, EVIDENCE, dropped relations by reason) from `mentions` (doc_id, chunk_id, name,
    type, node_id: the resolved mentions in order) and RELATIONS; `chunks` gives evidence text."""
    rel = relations
    chunk_keys, doc_keys = ("doc_id", "chunk_id", "name", "type"), ("doc_id", "name", "type")
    by_chunk, by_doc = (_key(mentions, k).combine_chunks() for k in (chunk_keys, doc_keys))
    nodes = mentions.column("node_id")
    # Heads and tails looked up together (one hash table per key kind). index_in answers the
    # FIRST row of the value set that matches: the first such mention.
    n = rel.num_rows
    here = pc.index_in(
        pa.concat_arrays(
            [_key(rel, ("doc_id", "chunk_id", e, f"{e}_type")).combine_chunks() for e in ("head", "tail")]
        ),
        value_set=by_chunk,
        skip_nulls=True,
    )
    there = pc.index_in(
        pa.concat_arrays([_key(rel, ("doc_id", e, f"{e}_type")).combine_chunks() for e in ("head", "tail")]),
        value_set=by_doc,
        skip_nulls=True,
    )
    ends = pc.coalesce(nodes.take(here), nodes.take(there))
    h, t = ends.slice(0, n), ends.slice(n)
    found = pc.and_(pc.is_valid(h), pc.is_valid(t))
    dropped: Counter = Counter()
    if missing := rel.num_rows - (pc.sum(found).as_py() or 0):
        dropped[DROPPED] = missing
    kept = pa.table(
        {
            "head": h,
            "type": rel.column("type"),
            "tail": t,
            "doc_id": rel.column("doc_id"),
            "chunk_id": rel.column("chunk_id"),
            "start": rel.column("start"),
            "end": rel.column("end"),
        }
    ).filter(found)

    # Edges: one per (head, type, tail), its id hashed once.
    triples = kept.group_by(["head", "type", "tail"], use_threads=False).aggregate([([], "count_all")])
    heads, types, tails = (triples.column(c).to_pylist() for c in ("head", "type", "tail"))
    ids = [edge_id(*x) for x in zip(heads, types, tails)]
    edges = pa.table(
        {
            "edge_id": pa.array(ids, pa.string()),
            "head": triples.column("head"),
            "tail": triples.column("tail"),
            "type": triples.column("type"),
            "count": triples.column("count_all"),
            "confidence": pa.nulls(triples.num_rows, pa.float64()),
        }
    ).sort_by("edge_id")

    # Evidence: the first relation of each (edge, document, start, end).
    id_of = dict(zip(zip(heads, types, tails), ids))
    kept = _numbered(kept, "_kept").append_column(
        "edge_id",
        pa.array([id_of[x] for x in zip(*(kept.column(c).to_pylist() for c in ("head", "type", "tail")))], pa.string()),
    )
    firsts = kept.group_by(["edge_id", "doc_id", "start", "end"], use_threads=False).aggregate([("_kept", "min")])
    spans = kept.take(firsts.column("_kept_min")).sort_by(
        [(c, "ascending") for c in ("edge_id", "doc_id", "start", "end")]
    )
    texts = {}
    if chunks is not None:
        wanted = chunks.filter(
            pc.is_in(chunks.column("chunk_id"), value_set=pc.unique(spans.column("chunk_id").combine_chunks()))
        )
        texts = {c: (s, x) for c, s, x in zip(*(wanted.column(k).to_pylist() for k in ("chunk_id", "start", "text")))}
    text = []
    for chunk, start, end in zip(*(spans.column(c).to_pylist() for c in ("chunk_id", "start", "end"))):
        if chunk in texts:
            cstart, ctext = texts[chunk]
            text.append(ctext[start - cstart : end - cstart])
        else:
            text.append("")
    evidence = spans.select(["edge_id", "doc_id", "start", "end"]).append_column("text", pa.array(text, pa.string()))
    return _as(edges, EDGES), _as(evidence, EVIDENCE), dropped


def _as(table: pa.Table, schema: pa.Schema) -> pa.Table:
    return table.select(schema.names).cast(schema).combine_chunks()
