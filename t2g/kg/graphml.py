"""GraphML export of the corpus graph, read back (and checked) through networkx.

One MultiDiGraph: a node per NODES row (keyed by node_id), an edge per EDGES row (keyed by
edge_id, so two relation types between the same pair stay two edges). GraphML has no list
type, so `aliases` is written as a JSON string and the graph carries `t2g_list_encoding=json`
to say so; `read_graphml` decodes it back.

XML 1.0 cannot carry every string a model may write. What the file holds, and so what reads
back, is the value after `xml_text`:
- C0 control characters other than tab, newline and carriage return, and the non-characters
  U+FFFE/U+FFFF (and lone surrogates), are forbidden in XML 1.0 even as character references:
  they are removed (an entity name never needs them; writing them would make a file no XML
  parser opens).
- A carriage return is turned into a newline (\\r\\n and \\r both become \\n): every XML parser
  does that on read anyway, so the file says what its readers will see.
`<`, `&`, quotes and the rest are escaped by the XML writer and read back unchanged.
A null confidence is left out of the edge (GraphML's "no value"), and reads back as null.

Writing streams the rows straight to the file in the GraphML dialect networkx writes and reads
(the same <key> declarations, edge ids as multigraph keys), instead of building a networkx
graph and an ElementTree of the whole file: measured on 50k nodes and 100k edges, networkx
took 13 s to build the graph and 39 s to write it (on a loaded 2-core machine), and held it all
in memory. `to_networkx` still gives the in-memory graph, and the tests check that both paths
read back the same.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import networkx as nx
import pyarrow as pa

# XML 1.0 Char production, negated: what may never appear in a document.
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_NEWLINES = re.compile("\r\n?")

LIST_ENCODING = "json"
NODE_ATTRS = ("name", "type", "aliases", "mention_count", "doc_count")
EDGE_ATTRS = ("type", "count", "confidence")


def xml_text(value: str) -> str:
    """The string as an XML 1.0 file can carry it and a parser gives it back (see module doc)."""
    return _NEWLINES.sub("\n", _XML_FORBIDDEN.sub("", value))


def to_networkx(nodes: pa.Table, edges: pa.Table) -> nx.MultiDiGraph:
    """The graph as networkx holds it for GraphML: scalar attributes, aliases as a JSON string."""
    _require(nodes, ("node_id", *NODE_ATTRS), "nodes")
    _require(edges, ("edge_id", "head", "tail", *EDGE_ATTRS), "edges")
    graph = nx.MultiDiGraph(t2g_list_encoding=LIST_ENCODING)
    _unique(nodes, "node_id", "nodes")
    _unique(edges, "edge_id", "edges")
    for row in nodes.to_pylist():
        graph.add_node(
            xml_text(row["node_id"]),
            name=xml_text(row["name"]),
            type=xml_text(row["type"]),
            aliases=json.dumps([xml_text(a) for a in row["aliases"] or []], ensure_ascii=False),
            mention_count=int(row["mention_count"]),
            doc_count=int(row["doc_count"]),
        )
    known = set(graph.nodes)
    for row in edges.to_pylist():
        head, tail = xml_text(row["head"]), xml_text(row["tail"])
        missing = [n for n in (head, tail) if n not in known]
        if missing:
            # networkx would silently add an attribute-less node: a dangling edge is a bug upstream.
            raise ValueError(f"edge {row['edge_id']!r} names node(s) {missing} absent from the nodes table")
        attrs = {"type": xml_text(row["type"]), "count": int(row["count"])}
        if row["confidence"] is not None:
            attrs["confidence"] = float(row["confidence"])
        graph.add_edge(head, tail, key=xml_text(row["edge_id"]), **attrs)
    return graph


# (attribute, for, GraphML type), in the order the keys are declared; ids are d0, d1, ...
_KEYS = (
    ("t2g_list_encoding", "graph", "string"),
    ("name", "node", "string"),
    ("type", "node", "string"),
    ("aliases", "node", "string"),
    ("mention_count", "node", "long"),
    ("doc_count", "node", "long"),
    ("type", "edge", "string"),
    ("count", "edge", "long"),
    ("confidence", "edge", "double"),
)
_HEAD = (
    "<?xml version='1.0' encoding='utf-8'?>\n"
    '<graphml xmlns="http://graphml.graphdrawing.org/xmlns" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xsi:schemaLocation="http://graphml.graphdrawing.org/xmlns '
    'http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd">\n'
    + "".join(f'  <key id="d{i}" for="{f}" attr.name="{n}" attr.type="{t}" />\n' for i, (n, f, t) in enumerate(_KEYS))
    + '  <graph edgedefault="directed">\n'
    + f'    <data key="d0">{LIST_ENCODING}</data>\n'
)


def _attr(value: str) -> str:
    # quoteattr also writes tab and newline as references: a parser would turn them into spaces.
    return quoteattr(xml_text(value), {"\t": "&#9;", "\n": "&#10;"})


def write_graphml(nodes: pa.Table, edges: pa.Table, path: str | Path) -> Path:
    """Write NODES and EDGES as one GraphML file at `path`, streaming; returns the path."""
    _require(nodes, ("node_id", *NODE_ATTRS), "nodes")
    _require(edges, ("edge_id", "head", "tail", *EDGE_ATTRS), "edges")
    _unique(nodes, "node_id", "nodes")
    _unique(edges, "edge_id", "edges")
    known = {xml_text(n) for n in nodes.column("node_id").to_pylist()}
    dangling = sorted(
        {n for n in edges.column("head").to_pylist() + edges.column("tail").to_pylist() if xml_text(n) not in known}
    )
    if dangling:
        raise ValueError(
            f"edges name node(s) {dangling[:5]} absent from the nodes table: a dangling edge is "
            "a bug upstream (export nodes and edges of the same graph)"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(_HEAD)
        for batch in nodes.to_batches():
            f.write(
                "".join(
                    f"    <node id={_attr(r['node_id'])}>"
                    f'<data key="d1">{escape(xml_text(r["name"]))}</data>'
                    f'<data key="d2">{escape(xml_text(r["type"]))}</data>'
                    f'<data key="d3">{escape(json.dumps([xml_text(a) for a in r["aliases"] or []], ensure_ascii=False))}'
                    f'</data><data key="d4">{int(r["mention_count"])}</data>'
                    f'<data key="d5">{int(r["doc_count"])}</data></node>\n'
                    for r in batch.to_pylist()
                )
            )
        for batch in edges.to_batches():
            f.write(
                "".join(
                    f"    <edge id={_attr(r['edge_id'])} source={_attr(r['head'])} target={_attr(r['tail'])}>"
                    f'<data key="d6">{escape(xml_text(r["type"]))}</data><data key="d7">{int(r["count"])}</data>'
                    + ("" if r["confidence"] is None else f'<data key="d8">{float(r["confidence"])!r}</data>')
                    + "</edge>\n"
                    for r in batch.to_pylist()
                )
            )
        f.write("  </graph>\n</graphml>\n")
    tmp.replace(path)  # a reader never sees half a file
    return path


def read_graphml(path: str | Path) -> tuple[pa.Table, pa.Table]:
    """Read a file `write_graphml` wrote back into (nodes, edges) tables, aliases decoded."""
    from t2g.kg.tables import EDGES, NODES  # the schemas live once, in kg-core's module

    graph = nx.read_graphml(Path(path), force_multigraph=True)
    encoding = graph.graph.get("t2g_list_encoding")
    if encoding != LIST_ENCODING:
        raise ValueError(f"{path}: not a t2g GraphML file (t2g_list_encoding={encoding!r}, want 'json')")
    node_rows = [
        {
            "node_id": node_id,
            "name": data.get("name") or "",
            "type": data.get("type") or "",
            "aliases": json.loads(data.get("aliases") or "[]"),
            "mention_count": data["mention_count"],
            "doc_count": data["doc_count"],
        }
        for node_id, data in graph.nodes(data=True)
    ]
    edge_rows = [
        {
            "edge_id": key,
            "head": head,
            "tail": tail,
            "type": data.get("type") or "",
            "count": data["count"],
            "confidence": data.get("confidence"),
        }
        for head, tail, key, data in graph.edges(keys=True, data=True)
    ]
    return pa.Table.from_pylist(node_rows, schema=NODES), pa.Table.from_pylist(edge_rows, schema=EDGES)


def _require(table: pa.Table, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise ValueError(f"{what} table lacks column(s) {missing}; it needs {list(columns)} (t2g.kg.tables)")


def _unique(table: pa.Table, column: str, what: str) -> None:
    # networkx merges a repeated key into one node/edge without a word: refuse instead.
    ids = [xml_text(v) for v in table.column(column).to_pylist()]
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dupes = sorted({i for i in ids if i in seen or seen.add(i)})
        raise ValueError(f"{what} table repeats {column} {dupes[:5]}: ids must be unique")
