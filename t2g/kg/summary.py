"""A markdown summary of a corpus graph, for the run's Prefect artifact (the flow publishes it; this
module is plain Python): nodes and edges by type, merges by rule, dropped mentions by reason, and
the most connected entities. Names come from documents and models, so every cell is escaped: a
`|`, a line break, markdown emphasis or raw HTML in a name cannot bend the tables."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import pyarrow as pa

_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\|*_`[]#~"} | {"<": "&lt;", ">": "&gt;", "&": "&amp;"})


def md_cell(value: object) -> str:
    """A value as one markdown table cell: special characters escaped, line breaks as spaces."""
    return " ".join(str(value).split()).translate(_MD_SPECIAL) or " "


def _table(header: tuple[str, ...], rows: list[tuple]) -> list[str]:
    if not rows:
        return ["_none_", ""]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_cell(v) for v in row) + " |" for row in rows]
    return lines + [""]


def graph_summary(
    nodes: pa.Table, edges: pa.Table, merges: pa.Table, dropped_counts: Mapping[str, int], *, top: int = 10
) -> str:
    """The summary as markdown (see module doc); `dropped_counts` maps a reason to a number of mentions."""
    node_types = Counter(nodes.column("type").to_pylist())
    mentions_by_type: Counter[str] = Counter()
    for t, m in zip(nodes.column("type").to_pylist(), nodes.column("mention_count").to_pylist()):
        mentions_by_type[t] += m
    edge_types = Counter(edges.column("type").to_pylist())
    support: Counter[str] = Counter()
    for t, c in zip(edges.column("type").to_pylist(), edges.column("count").to_pylist()):
        support[t] += c
    rules = Counter(merges.column("rule").to_pylist())
    degree: Counter[str] = Counter(edges.column("head").to_pylist())
    degree.update(edges.column("tail").to_pylist())
    rows = nodes.select(["node_id", "name", "type", "mention_count"]).to_pylist()
    rows.sort(key=lambda r: (-degree.get(r["node_id"], 0), -r["mention_count"], r["node_id"]))
    dropped = sorted(((r, int(n)) for r, n in dropped_counts.items() if n), key=lambda x: (-x[1], x[0]))

    out = [
        "## Corpus graph",
        "",
        f"**{nodes.num_rows}** entities, **{edges.num_rows}** relations, **{sum(rules.values())}** merges, "
        f"**{sum(n for _, n in dropped)}** mentions dropped.",
        "",
        "### Entities by type",
        "",
    ]
    out += _table(
        ("type", "entities", "mentions"),
        [(t, n, mentions_by_type[t]) for t, n in sorted(node_types.items(), key=lambda x: (-x[1], x[0]))],
    )
    out += ["### Relations by type", ""]
    out += _table(
        ("type", "relations", "statements"),
        [(t, n, support[t]) for t, n in sorted(edge_types.items(), key=lambda x: (-x[1], x[0]))],
    )
    out += ["### Merges by rule", ""]
    out += _table(("rule", "merges"), sorted(rules.items(), key=lambda x: (-x[1], x[0])))
    out += ["### Dropped mentions by reason", ""]
    out += _table(("reason", "mentions"), dropped)
    out += [f"### Most connected entities (top {top})", ""]
    out += _table(
        ("entity", "type", "relations", "mentions"),
        [(r["name"], r["type"], degree.get(r["node_id"], 0), r["mention_count"]) for r in rows[:top]],
    )
    return "\n".join(out)
