"""Resolve: one node per entity (t2g.kg.resolve). Mentions are clustered by type, tier by
tier (normalised exact match, documented alias rules, fuzzy character n-grams); relations become edges between the nodes of their
head and tail, each with the sentences that state it.

main: NODES; side artifacts: `edges` (EDGES), `mentions` (GRAPH_MENTIONS), `merges`
(MERGES: what joined which mention, by which rule) and `evidence` (EVIDENCE). Node ids are
content hashes (t2g.kg.tables.node_id): the same corpus gives the same ids, and adding
documents does not renumber existing nodes.

It runs as one task: candidate pairs come from blocking keys inside t2g.kg.resolve, but
the tiers join clusters across blocks (an alias rule ties a surname to a full name), so
blocks are not yet independent shards.
"""

from __future__ import annotations

from collections import Counter

import pyarrow as pa

from t2g.kg.config import ResolveConfig
from t2g.kg.resolve import resolve as resolve_graph
from t2g.stage import StageResult


def resolve(cfg: ResolveConfig, mentions: pa.Table, relations: pa.Table, chunks: pa.Table | None = None) -> StageResult:
    # The chunks give each edge's evidence its sentence text.
    g = resolve_graph(mentions, relations, fuzzy_threshold=cfg.fuzzy_threshold, chunks=chunks)
    rules = Counter(g.merges.column("rule").to_pylist()) if g.merges.num_rows else Counter()
    summary = {
        "rows_in": mentions.num_rows,
        "mentions": mentions.num_rows,
        "relations": relations.num_rows,
        "nodes": g.nodes.num_rows,
        "edges": g.edges.num_rows,
        "merges_by_rule": dict(sorted(rules.items())),
        "nodes_by_type": _by(g.nodes, "type"),
        "edges_by_type": _by(g.edges, "type"),
    }
    side = {"edges": g.edges, "mentions": g.mentions, "merges": g.merges, "evidence": g.evidence}
    return StageResult(main=g.nodes, side=side, summary=summary)


def _by(table: pa.Table, column: str) -> dict[str, int]:
    return dict(sorted(Counter(table.column(column).to_pylist()).items())) if table.num_rows else {}
