"""Every export on a graph that resolution really built (the identities world, gold mentions):
the exports agree with the Parquet tables and with each other."""

from __future__ import annotations

import csv
import importlib.util
import json
import re

import pytest

from t2g.kg import identities
from t2g.kg.graphml import read_graphml, write_graphml
from t2g.kg.neo4j import write_neo4j_csv
from t2g.kg.resolve import resolve
from t2g.kg.summary import graph_summary
from t2g.kg.viewer import render_html


@pytest.fixture(scope="module")
def graph():
    mentions, relations = identities.gold_tables(identities.documents(60, seed=3))
    return resolve(mentions, relations)


def _rows(table, key):
    return sorted(table.to_pylist(), key=lambda r: r[key])


def test_graphml_and_neo4j_agree_with_the_tables(graph, tmp_path):
    nodes, edges = read_graphml(write_graphml(graph.nodes, graph.edges, tmp_path / "graph.graphml"))
    assert _rows(nodes, "node_id") == _rows(graph.nodes, "node_id")
    assert _rows(edges, "edge_id") == _rows(graph.edges, "edge_id")
    write_neo4j_csv(graph.nodes, graph.edges, tmp_path / "neo4j")
    with open(tmp_path / "neo4j" / "nodes.csv", newline="", encoding="utf-8") as f:
        ids = [r["nodeId:ID"] for r in csv.DictReader(f)]
    with open(tmp_path / "neo4j" / "relationships.csv", newline="", encoding="utf-8") as f:
        rels = list(csv.DictReader(f))
    assert sorted(ids) == sorted(graph.nodes.column("node_id").to_pylist()) and len(set(ids)) == len(ids)
    assert len(rels) == graph.edges.num_rows
    assert all(r[":START_ID"] in set(ids) and r[":END_ID"] in set(ids) for r in rels)


@pytest.mark.skipif(
    importlib.util.find_spec("ladybug") is None,
    reason="LadybugDB (the graphdb extra: pip install 't2g[graphdb]') is not installed",
)
def test_the_embedded_database_answers_like_the_tables(graph, tmp_path):
    from t2g.kg.embedded import load_embedded, neighbours, neighbours_from_tables

    db = load_embedded(graph.nodes, graph.edges, tmp_path / "graph.lbug")
    for node_id in graph.nodes.column("node_id").to_pylist():
        assert neighbours(db, node_id) == neighbours_from_tables(graph.nodes, graph.edges, node_id)


def test_the_viewer_and_the_summary_cover_the_graph(graph):
    page = render_html(graph.nodes, graph.edges, graph.mentions, graph.evidence)
    data = json.loads(re.search(r'id="graph-data">(.*?)</script>', page, re.S).group(1))
    assert len(data["nodes"]) == graph.nodes.num_rows and len(data["edges"]) == graph.edges.num_rows
    assert sum(s["total"] for s in data["mentions"].values()) == graph.mentions.num_rows
    assert sum(s["total"] for s in data["evidence"].values()) == graph.evidence.num_rows
    md = graph_summary(graph.nodes, graph.edges, graph.merges, {"ungrounded": 2})
    assert f"**{graph.nodes.num_rows}** entities, **{graph.edges.num_rows}** relations" in md
