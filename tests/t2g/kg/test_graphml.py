"""GraphML export: reloads through networkx with the same nodes, edges and attributes."""

from __future__ import annotations

import networkx as nx
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from t2g.kg.graphml import read_graphml, to_networkx, write_graphml, xml_text
from t2g.kg.tables import EDGES, NODES, edge_id
from tests.support.graph_sample import HOSTILE, sample_graph


def _sorted(table: pa.Table, key: str) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda r: r[key])


def test_graphml_round_trips_the_sample(tmp_path):
    g = sample_graph()
    path = write_graphml(g["nodes"], g["edges"], tmp_path / "graph.graphml")
    nodes, edges = read_graphml(path)
    assert nodes.schema == NODES and edges.schema == EDGES
    assert _sorted(nodes, "node_id") == _sorted(g["nodes"], "node_id")
    assert _sorted(edges, "edge_id") == _sorted(g["edges"], "edge_id")


def test_graphml_is_a_multigraph_networkx_reads_with_plain_attributes(tmp_path):
    g = sample_graph()
    path = write_graphml(g["nodes"], g["edges"], tmp_path / "graph.graphml")
    graph = nx.read_graphml(path)  # what a user does, with no help from t2g
    assert isinstance(graph, nx.MultiDiGraph)
    assert graph.number_of_nodes() == g["nodes"].num_rows
    assert graph.number_of_edges() == g["edges"].num_rows
    merkel, cdu = g["edges"]["head"][0].as_py(), g["edges"]["tail"][0].as_py()
    assert sorted(d["type"] for d in graph.get_edge_data(merkel, cdu).values()) == ["leader of", "member_of"]
    assert graph.nodes[merkel]["name"] == "Angela Merkel" and graph.nodes[merkel]["mention_count"] == 5
    assert any(d["name"] == HOSTILE for _, d in graph.nodes(data=True))


def test_a_dangling_edge_or_a_repeated_id_is_refused(tmp_path):
    g = sample_graph()
    dangling = g["edges"].to_pylist()[:1]
    dangling[0]["tail"] = "n-missing"
    with pytest.raises(ValueError, match="n-missing"):
        write_graphml(g["nodes"], pa.Table.from_pylist(dangling, schema=EDGES), tmp_path / "g.graphml")
    twice = pa.concat_tables([g["nodes"], g["nodes"].slice(0, 1)])
    with pytest.raises(ValueError, match="repeats node_id"):
        write_graphml(twice, g["edges"], tmp_path / "g.graphml")
    assert not (tmp_path / "g.graphml").exists()


def test_xml_text_removes_what_xml_forbids_and_keeps_the_rest():
    assert xml_text("a\x00b\x1fc\x0bd\ufffe") == "abcd"
    assert xml_text("tab\tnl\ncr\rcrlf\r\n<&>\"'") == "tab\tnl\ncr\ncrlf\n<&>\"'"


# Names a model might emit or a hostile document might carry: markup, quotes, entities, every C0
# control (XML 1.0 forbids most of them), CR/LF, non-characters, astral and whitespace-only text.
_HOSTILE_ALPHABET = st.sampled_from(list("<>&\"' ;,|\t\n\r") + [chr(c) for c in range(0x20)] + ["\ufffe", "é", "😀"])
_names = st.one_of(
    st.text(max_size=20),
    st.text(alphabet=_HOSTILE_ALPHABET, max_size=20),
    st.just("]]>"),
    st.just("&amp;"),
    st.just(HOSTILE),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(
        st.tuples(_names, _names, st.lists(_names, max_size=3), st.integers(0, 2**40)), min_size=1, max_size=6
    ),
    confidence=st.one_of(st.none(), st.floats(0, 1)),
)
def test_graphml_round_trips_hostile_names(tmp_path, rows, confidence):
    nodes = [
        {
            "node_id": f"n{i}#{name}",
            "name": name,
            "type": type_,
            "aliases": aliases,
            "mention_count": big,
            "doc_count": 1,
        }
        for i, (name, type_, aliases, big) in enumerate(rows)
    ]
    edges = [
        {
            "edge_id": edge_id(a["node_id"], b["type"], b["node_id"]),
            "head": a["node_id"],
            "tail": b["node_id"],
            "type": b["type"],
            "count": 1,
            "confidence": confidence,
        }
        for a, b in zip(nodes, nodes[1:] + nodes[:1])
    ]
    edges = list({e["edge_id"]: e for e in edges}.values())
    nodes_t, edges_t = pa.Table.from_pylist(nodes, schema=NODES), pa.Table.from_pylist(edges, schema=EDGES)
    path = write_graphml(nodes_t, edges_t, tmp_path / "h.graphml")
    got_nodes, got_edges = read_graphml(path)
    want = [
        dict(
            n,
            node_id=xml_text(n["node_id"]),
            name=xml_text(n["name"]),
            type=xml_text(n["type"]),
            aliases=[xml_text(a) for a in n["aliases"]],
        )
        for n in nodes
    ]
    assert _sorted(got_nodes, "node_id") == sorted(want, key=lambda r: r["node_id"])
    want_edges = [dict(e, head=xml_text(e["head"]), tail=xml_text(e["tail"]), type=xml_text(e["type"])) for e in edges]
    assert _sorted(got_edges, "edge_id") == sorted(want_edges, key=lambda r: r["edge_id"])
    _same_as_networkx_writes(path, nodes_t, edges_t, tmp_path)


def _same_as_networkx_writes(path, nodes, edges, tmp_path):
    """The streaming writer and networkx's own writer (on to_networkx) read back as the same graph."""
    theirs = tmp_path / "networkx.graphml"
    nx.write_graphml(to_networkx(nodes, edges), theirs)
    a, b = nx.read_graphml(path, force_multigraph=True), nx.read_graphml(theirs, force_multigraph=True)
    assert a.graph == b.graph
    assert dict(a.nodes(data=True)) == dict(b.nodes(data=True))
    assert sorted(a.edges(keys=True, data=True)) == sorted(b.edges(keys=True, data=True))


def test_the_streaming_writer_matches_networkx_on_the_sample(tmp_path):
    g = sample_graph()
    path = write_graphml(g["nodes"], g["edges"], tmp_path / "graph.graphml")
    _same_as_networkx_writes(path, g["nodes"], g["edges"], tmp_path)
