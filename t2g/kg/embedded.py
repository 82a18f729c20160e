"""The corpus graph in an embedded graph database queried with Cypher: LadybugDB.

Why LadybugDB (PyPI `ladybug`, pinned in the `graphdb` extra): Kùzu, the embedded Cypher database
this would have used, was archived by its maintainers in October 2025 (last release `kuzu`
0.11.3, no fixes since). LadybugDB is its maintained fork by the same core team, MIT licensed,
released on PyPI through 2026, with Kùzu's storage, Cypher dialect and Python API under a new
module name (`ladybug.Database`, `ladybug.Connection`). It runs in-process from one file: no
server, which is what a laptop-first pipeline wants.

Layout: one node table `Entity(node_id PK, name, type, aliases STRING[], mention_count,
doc_count)` and one relationship table `RELATES(FROM Entity TO Entity, edge_id, type, count,
confidence)`. The relation type is a property rather than one table per type: types are
open-ended strings from the model, and a single table keeps every query (and `neighbours`)
the same whatever the schema. Loading is a bulk `COPY ... FROM` Parquet files written to a
temporary folder, not row-by-row CREATE.

The database is built under `<db_path>.part` and renamed over `<db_path>` once closed, so the
export is rewritten whole (incremental updates rebuild it) and a reader never opens half of one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from t2g.kg.neo4j import check_graph

NODE_TABLE = "Entity"
REL_TABLE = "RELATES"
_SCHEMA = (
    f"CREATE NODE TABLE {NODE_TABLE}(node_id STRING PRIMARY KEY, name STRING, type STRING, "
    "aliases STRING[], mention_count INT64, doc_count INT64)",
    f"CREATE REL TABLE {REL_TABLE}(FROM {NODE_TABLE} TO {NODE_TABLE}, edge_id STRING, type STRING, "
    "count INT64, confidence DOUBLE)",
)
_NODE_COLUMNS = ["node_id", "name", "type", "aliases", "mention_count", "doc_count"]
# COPY into a relationship table reads FROM and TO primary keys as its first two columns.
_EDGE_COLUMNS = ["head", "tail", "edge_id", "type", "count", "confidence"]


def _ladybug():
    try:
        import ladybug
    except ImportError as exc:  # an optional extra: say how to get it
        raise ImportError("the embedded graph database needs LadybugDB: pip install 't2g[graphdb]'") from exc
    return ladybug


def load_embedded(nodes: pa.Table, edges: pa.Table, db_path: str | Path) -> Path:
    """Build the database file at `db_path` from NODES and EDGES (replacing any old one)."""
    ladybug = _ladybug()
    check_graph(nodes, edges)  # the same refusals as the Neo4j export: unique ids, no dangling edge
    db_path = Path(db_path)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    part = db_path.with_name(db_path.name + ".part")
    _remove(part)
    with tempfile.TemporaryDirectory(prefix="t2g-graphdb-") as tmp:
        node_file, edge_file = Path(tmp) / "nodes.parquet", Path(tmp) / "edges.parquet"
        pq.write_table(nodes.select(_NODE_COLUMNS), node_file)
        pq.write_table(edges.select(_EDGE_COLUMNS), edge_file)
        db = ladybug.Database(str(part))
        conn = ladybug.Connection(db)
        try:
            for statement in _SCHEMA:
                conn.execute(statement)
            if nodes.num_rows:
                conn.execute(f"COPY {NODE_TABLE} FROM {_quote(node_file)}")
            if edges.num_rows:
                conn.execute(f"COPY {REL_TABLE} FROM {_quote(edge_file)}")
        finally:
            conn.close()
            db.close()  # checkpoints the write-ahead log into the file
    _remove(db_path)
    os.replace(part, db_path)
    return db_path


def cypher(db_path: str | Path, query: str, parameters: dict | None = None) -> pa.Table:
    """Run a read-only Cypher query against the database file; the answer as a pyarrow table."""
    ladybug = _ladybug()
    if not Path(db_path).is_file():
        raise FileNotFoundError(f"{db_path}: no graph database here; build it with load_embedded first")
    db = ladybug.Database(str(db_path), read_only=True)
    conn = ladybug.Connection(db)
    try:
        return conn.execute(query, parameters or {}).get_as_arrow()
    finally:
        conn.close()
        db.close()


_NEIGHBOURS = (
    f"MATCH (a:{NODE_TABLE} {{node_id: $id}})-[r:{REL_TABLE}]->(b:{NODE_TABLE}) "
    "RETURN r.edge_id AS edge_id, r.type AS type, 'out' AS direction, b.node_id AS node_id, b.name AS name "
    "UNION ALL "
    f"MATCH (a:{NODE_TABLE} {{node_id: $id}})<-[r:{REL_TABLE}]-(b:{NODE_TABLE}) "
    "RETURN r.edge_id AS edge_id, r.type AS type, 'in' AS direction, b.node_id AS node_id, b.name AS name"
)


def neighbours(db_path: str | Path, node_id: str) -> list[dict]:
    """Every edge at `node_id`, by Cypher: edge_id, type, direction (out/in), the other node's id and name.

    Sorted by (edge_id, direction); a self-loop appears twice, once each way.
    """
    rows = cypher(db_path, _NEIGHBOURS, {"id": node_id}).to_pylist()
    return sorted(rows, key=lambda r: (r["edge_id"], r["direction"]))


def neighbours_from_tables(nodes: pa.Table, edges: pa.Table, node_id: str) -> list[dict]:
    """The same answer as `neighbours`, computed from the Parquet tables (the reference)."""
    names = dict(zip(nodes.column("node_id").to_pylist(), nodes.column("name").to_pylist()))
    rows = []
    for e in edges.to_pylist():
        if e["head"] == node_id:
            rows.append(
                {
                    "edge_id": e["edge_id"],
                    "type": e["type"],
                    "direction": "out",
                    "node_id": e["tail"],
                    "name": names[e["tail"]],
                }
            )
        if e["tail"] == node_id:
            rows.append(
                {
                    "edge_id": e["edge_id"],
                    "type": e["type"],
                    "direction": "in",
                    "node_id": e["head"],
                    "name": names[e["head"]],
                }
            )
    return sorted(rows, key=lambda r: (r["edge_id"], r["direction"]))


def _quote(path: Path) -> str:
    # COPY takes a string literal, not a parameter: escape what would end the literal.
    return "'" + str(path).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _remove(path: Path) -> None:
    for p in (path, path.with_name(path.name + ".wal")):
        if p.is_dir():
            raise IsADirectoryError(f"{p} is a folder; give load_embedded a file path for the database")
        p.unlink(missing_ok=True)
