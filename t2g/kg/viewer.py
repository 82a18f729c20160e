"""One self-contained HTML file to look at the corpus graph: opens offline, no CDN, no server.

What it shows: a force-directed drawing on a canvas (layout written in vanilla JS, t2g/kg/viewer_js.py),
node types as colours with a legend, a search box that narrows the view to the neighbourhood of an
entity (also `graph.html#search=NAME`; `#select=NAME` selects one in the whole view), and for a clicked node or edge its provenance: the
mention spans (document, offsets, surface text) and the evidence sentences of its edges.

Safety: the graph travels as JSON inside `<script type="application/json">`, with `<`, `>` and `&`
written as \\u003c, \\u003e, \\u0026 (JSON string escapes), so no name can close the script element
or open a comment; the page's script puts every name into the page through textContent or the
canvas, never as markup.

Big graphs: only the `max_nodes` most connected entities are drawn (degree, then mention count,
then id, so the choice is stable) with the edges among them; the page says how many were left
out. Provenance is capped per node and per edge (`max_provenance`), with the total shown.
"""

from __future__ import annotations

import html
import json
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from t2g.kg.viewer_js import SCRIPT, STYLE

# Tableau 10 and two more: distinct on white, and readable as a legend.
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
    "#17becf",
    "#8c564b",
)


def type_colours(types: list[str]) -> dict[str, str]:
    """A colour per node type, stable for a given set of types (sorted), golden-angle hues past the palette."""
    out = {}
    for i, t in enumerate(sorted(set(types))):
        out[t] = PALETTE[i] if i < len(PALETTE) else f"hsl({(i * 137.508) % 360:.0f}, 55%, 50%)"
    return out


def select_nodes(nodes: pa.Table, edges: pa.Table, max_nodes: int) -> list[dict]:
    """The `max_nodes` most connected nodes (degree, then mention_count, then node_id)."""
    degree: Counter[str] = Counter(edges.column("head").to_pylist())
    degree.update(edges.column("tail").to_pylist())
    rows = nodes.to_pylist()
    for r in rows:
        r["degree"] = degree.get(r["node_id"], 0)
    rows.sort(key=lambda r: (-r["degree"], -r["mention_count"], r["node_id"]))
    return rows[:max_nodes]


def graph_data(
    nodes: pa.Table,
    edges: pa.Table,
    mentions: pa.Table,
    evidence: pa.Table,
    *,
    max_nodes: int = 300,
    max_provenance: int = 8,
) -> dict:
    """The JSON the page draws: kept nodes and edges, colours, the note, provenance by id."""
    if max_nodes < 1:
        raise ValueError(f"max_nodes={max_nodes}: draw at least one node")
    kept = select_nodes(nodes, edges, max_nodes)
    kept_ids = {r["node_id"] for r in kept}
    kept_edges = [e for e in edges.to_pylist() if e["head"] in kept_ids and e["tail"] in kept_ids]
    kept_edge_ids = {e["edge_id"] for e in kept_edges}
    note = ""
    if len(kept) < nodes.num_rows:
        note = (
            f"Showing the {len(kept)} most connected of {nodes.num_rows} entities "
            f"and the {len(kept_edges)} of {edges.num_rows} relations among them."
        )

    def _provenance(table: pa.Table, key: str, wanted: set[str]) -> dict[str, dict]:
        # Filtered in Arrow first: a corpus has millions of mentions, the page a few hundred nodes.
        table = table.filter(pc.is_in(table.column(key), value_set=pa.array(sorted(wanted), pa.string())))
        table = table.select([key, "doc_id", "start", "end", "text"]).combine_chunks()
        if not table.num_rows:
            return {}
        # Per id (in order of first appearance, as the page lists them): its total, and its first
        # `max_provenance` rows, picked by rank within the id in numpy: only those become Python.
        encoded = table.column(key).chunk(0).dictionary_encode()
        ids, codes = encoded.dictionary.to_pylist(), encoded.indices.to_numpy()
        totals = np.bincount(codes, minlength=len(ids))
        order = np.argsort(codes, kind="stable")
        rank = np.empty(len(codes), dtype=np.int64)
        rank[order] = np.arange(len(codes)) - (np.cumsum(totals) - totals)[codes[order]]
        out = {i: {"total": n, "items": []} for i, n in zip(ids, totals.tolist())}
        picked = table.filter(pa.array(rank < max_provenance))
        for k, *item in zip(*(picked.column(c).to_pylist() for c in (key, "doc_id", "start", "end", "text"))):
            out[k]["items"].append(item)
        return out

    return {
        "nodes": [
            {
                "id": r["node_id"],
                "name": r["name"],
                "type": r["type"],
                "aliases": r["aliases"] or [],
                "mentions": r["mention_count"],
                "docs": r["doc_count"],
                "degree": r["degree"],
            }
            for r in kept
        ],
        "edges": [
            {
                "id": e["edge_id"],
                "source": e["head"],
                "target": e["tail"],
                "type": e["type"],
                "count": e["count"],
                "confidence": _finite(e["confidence"]),
            }
            for e in kept_edges
        ],
        "types": type_colours([r["type"] for r in kept]),
        "note": note,
        "total": {"nodes": nodes.num_rows, "edges": edges.num_rows},
        "mentions": _provenance(mentions, "node_id", kept_ids),
        "evidence": _provenance(evidence, "edge_id", kept_edge_ids),
    }


def _finite(value: float | None) -> float | None:
    # JSON has no NaN: an unknown confidence is null either way.
    return None if value is None or value != value or value in (float("inf"), float("-inf")) else value


def embed_json(data: object) -> str:
    """JSON safe inside a <script> element: no '<', '>' or '&' survives outside an escape."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(
    nodes: pa.Table,
    edges: pa.Table,
    mentions: pa.Table,
    evidence: pa.Table,
    *,
    max_nodes: int = 300,
    max_provenance: int = 8,
    title: str = "t2g corpus graph",
) -> str:
    """The viewer page as one string (write it to graph.html); see the module doc."""
    data = graph_data(nodes, edges, mentions, evidence, max_nodes=max_nodes, max_provenance=max_provenance)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{STYLE}</style>
</head>
<body data-rendered-nodes="0" data-rendered-edges="0">
<header>
  <strong>{html.escape(title)}</strong>
  <form id="search-form" autocomplete="off">
    <input id="search" type="search" placeholder="Search an entity (name or alias)" aria-label="Search an entity">
    <button type="submit">Neighbourhood</button>
    <button type="button" id="show-all">Show all</button>
  </form>
  <span id="status" role="status"></span>
</header>
<main>
  <canvas id="graph" aria-label="graph drawing"></canvas>
  <aside>
    <section id="legend"><h2>Node types</h2><ul id="legend-list"></ul></section>
    <p id="note"></p>
    <section id="details"><h2>Details</h2><p class="hint">Click a node or an edge to see where it comes from.</p></section>
  </aside>
</main>
<script type="application/json" id="graph-data">{embed_json(data)}</script>
<script>{SCRIPT}</script>
</body>
</html>
"""
