"""The embedded graph database (LadybugDB): loaded in bulk, and a Cypher query's answer equals the tables'."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from t2g.kg.tables import EDGES, NODES
from tests.support.graph_sample import sample_graph

pytest.importorskip("ladybug", reason="LadybugDB (the graphdb extra: pip install 't2g[graphdb]') is not installed")

from t2g.kg.embedded import cypher, load_embedded, neighbours, neighbours_from_tables  # noqa: E402


def test_neighbours_by_cypher_equal_the_tables(tmp_path):
    g = sample_graph()
    db = load_embedded(g["nodes"], g["edges"], tmp_path / "graph.lbug")
    for node_id in g["nodes"].column("node_id").to_pylist():
        assert neighbours(db, node_id) == neighbours_from_tables(g["nodes"], g["edges"], node_id)
    merkel = g["edges"]["head"][0].as_py()
    assert sorted(r["type"] for r in neighbours(db, merkel)) == ["leader of", "lives_in", "member_of"]
    assert neighbours(db, "n-unknown") == []


def test_every_row_and_attribute_is_in_the_database(tmp_path):
    g = sample_graph()
    db = load_embedded(g["nodes"], g["edges"], tmp_path / "graph.lbug")
    got = cypher(
        db,
        "MATCH (n:Entity) RETURN n.node_id AS node_id, n.name AS name, n.type AS type, "
        "n.aliases AS aliases, n.mention_count AS mention_count, n.doc_count AS doc_count",
    )
    assert sorted(got.to_pylist(), key=lambda r: r["node_id"]) == sorted(
        g["nodes"].to_pylist(), key=lambda r: r["node_id"]
    )
    got = cypher(
        db,
        "MATCH (a:Entity)-[r:RELATES]->(b:Entity) RETURN r.edge_id AS edge_id, a.node_id AS head, "
        "b.node_id AS tail, r.type AS type, r.count AS count, r.confidence AS confidence",
    )
    assert sorted(got.to_pylist(), key=lambda r: r["edge_id"]) == sorted(
        g["edges"].to_pylist(), key=lambda r: r["edge_id"]
    )


def test_a_rebuild_replaces_the_old_database(tmp_path):
    g = sample_graph()
    path = tmp_path / "graph.lbug"
    load_embedded(g["nodes"], g["edges"], path)
    load_embedded(g["nodes"].slice(0, 3), g["edges"].slice(0, 3), path)
    assert cypher(path, "MATCH (n:Entity) RETURN count(n) AS n").column("n").to_pylist() == [3]
    assert not path.with_name(path.name + ".part").exists()


def test_dangling_edges_are_refused_and_a_missing_file_is_named(tmp_path):
    g = sample_graph()
    with pytest.raises(ValueError, match="absent from the nodes table"):
        load_embedded(g["nodes"].slice(0, 1), g["edges"], tmp_path / "g.lbug")
    with pytest.raises(FileNotFoundError, match="load_embedded"):
        neighbours(tmp_path / "nothing.lbug", "n1")


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(1, 6),
    pairs=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5), st.sampled_from("ab")), max_size=12),
    name=st.text(max_size=8),
)
def test_neighbours_equal_the_tables_on_random_graphs(tmp_path, n, pairs, name):
    nodes = [
        {
            "node_id": f"n'{i}\"",
            "name": f"{name}{i}",
            "type": "t",
            "aliases": [name],
            "mention_count": 1,
            "doc_count": 1,
        }
        for i in range(n)
    ]
    edges = {}
    for h, t, type_ in pairs:  # self-loops and two types between a pair included
        head, tail = nodes[h % n]["node_id"], nodes[t % n]["node_id"]
        edges.setdefault(
            (head, type_, tail),
            {"edge_id": f"e{len(edges)}", "head": head, "tail": tail, "type": type_, "count": 1, "confidence": None},
        )
    nodes_t, edges_t = (
        pa.Table.from_pylist(nodes, schema=NODES),
        pa.Table.from_pylist(list(edges.values()), schema=EDGES),
    )
    db = load_embedded(nodes_t, edges_t, tmp_path / "r.lbug")
    for node in nodes:
        assert neighbours(db, node["node_id"]) == neighbours_from_tables(nodes_t, edges_t, node["node_id"])
