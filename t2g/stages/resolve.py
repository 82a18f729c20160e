"""Resolve: one node per entity (t2g.kg.resolve). Mentions are clustered by type, tier by
tier (normalised exact match, documented alias rules, fuzzy character n-grams); relations become edges between the nodes of their
head and tail, each with the sentences that state it.

main: NODES; side artifacts: `edges` (EDGES), `mentions` (GRAPH_MENTIONS), `merges`
(MERGES: what joined which mention, by which rule) and `evidence` (EVIDENCE). Node ids are
content hashes (t2g.kg.tables.node_id): the same corpus gives the same ids, and adding
documents does not renumber existing nodes.

Fuzzy pairs: computed here in one task, or with `resolve.shard_size` by the
`resolve-blocks` and `resolve-pairs` nodes (t2g/stages/resolve_pairs.py: shards of
blocking keys on the recipe's task runner) and passed in as `pairs`. The alias tiers join
clusters across blocks (a surname to a full name), so the union-find over the pairs stays
here, one task holding one entry per distinct name and the pairs, never all mentions' pairs.

With `resolve.judge`, the uncertain pairs are asked of an LLM here (t2g.kg.judge), in one
batch through the recipe's LLM cache (a rerun asks nothing); its counts are the summary's
`judge` and its accounting the summary's `llm`.
"""

from __future__ import annotations

from collections import Counter

import pyarrow as pa

from t2g.fingerprint import llm_inputs
from t2g.kg.config import ResolveConfig
from t2g.kg.judge import LLMJudge
from t2g.kg.resolve import resolve as resolve_graph
from t2g.stage import StageResult


def external_inputs(cfg: ResolveConfig) -> dict[str, str | None]:
    """The judge's model, fingerprinted (t2g.fingerprint): it joins the key. None without a judge."""
    return llm_inputs(cfg.judge) if cfg.judge is not None else {}


def resolve(
    cfg: ResolveConfig,
    mentions: pa.Table,
    relations: pa.Table,
    chunks: pa.Table | None = None,
    pairs: pa.Table | None = None,
    *,
    api_key: str | None = None,
) -> StageResult:
    # The chunks give each edge's evidence its sentence text, and the judge its sentences.
    judge = LLMJudge(cfg.judge, mentions, chunks, api_key) if cfg.judge is not None else None
    options = {"judge_threshold": cfg.judge.threshold} if cfg.judge is not None else {}
    g = resolve_graph(mentions, relations, fuzzy_threshold=cfg.fuzzy_threshold, judge=judge, pairs=pairs, chunks=chunks,
                      **options)  # fmt: skip
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
    if pairs is not None:
        summary["sharded_pairs"] = pairs.num_rows
    if judge is not None:
        summary["judge"] = judge.summary()
        summary["judge_unparsed"] = judge.counts.get("unparsed", 0)
        if judge.accounting:
            summary["llm"] = judge.accounting
    side = {"edges": g.edges, "mentions": g.mentions, "merges": g.merges, "evidence": g.evidence}
    return StageResult(main=g.nodes, side=side, summary=summary)


def _by(table: pa.Table, column: str) -> dict[str, int]:
    return dict(sorted(Counter(table.column(column).to_pylist()).items())) if table.num_rows else {}
