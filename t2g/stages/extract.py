"""Extraction: label each document with a graph of the requested types.

Backends: `gold` takes the graph an annotated source carries (a user with an annotated
dataset needs no teacher); the LLM backends (transformers, vllm, openai) come with the
teacher build. Every output row carries either a graph or the reason it has none.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pyarrow as pa

from t2g.config import ExtractConfig
from t2g.graph import graph_from_obj
from t2g.stage import StageResult

OUTPUT_FIELDS = [
    pa.field("graph", pa.string()),
    pa.field("error", pa.string()),
    pa.field("model", pa.string()),
    pa.field("finish_reason", pa.string()),
    pa.field("prompt_tokens", pa.int64()),
    pa.field("completion_tokens", pa.int64()),
]


class ExtractError(ValueError):
    """The documents cannot be extracted with this recipe (not a transient failure)."""


def request_types(row: dict[str, Any], cfg: ExtractConfig) -> tuple[list[str], list[str]]:
    """The types to ask for. A document that brings its own request keeps it; otherwise
    the request is every type its gold uses (so the gold stays complete) plus
    `absent_types` types of the recipe's inventory that it does not use, sampled per
    document so the student learns that requested types may be absent."""
    if row.get("entity_types") is not None and row.get("relation_types") is not None:
        return list(row["entity_types"]), list(row["relation_types"])
    gold = json.loads(row["gold"]) if row.get("gold") else {"entities": [], "relations": []}
    rng = random.Random(f"{cfg.seed}:{row['id']}")
    present_e = list(dict.fromkeys(e["type"] for e in gold["entities"]))
    present_r = list(dict.fromkeys(r["type"] for r in gold["relations"]))
    absent_e = [t for t in cfg.entity_types if t not in present_e]
    absent_r = [t for t in cfg.relation_types if t not in present_r]
    etypes = present_e + rng.sample(absent_e, min(cfg.absent_types, len(absent_e)))
    rtypes = present_r + rng.sample(absent_r, min(cfg.absent_types, len(absent_r)))
    return sorted(etypes), sorted(rtypes)


def extract(cfg: ExtractConfig, docs: pa.Table) -> StageResult:
    if cfg.backend != "gold":
        raise NotImplementedError(
            f"extract.backend={cfg.backend!r} is not implemented in this build; use extract.backend=gold "
            "with annotated or toyworld sources"
        )
    return _extract_gold(cfg, docs)


def _extract_gold(cfg: ExtractConfig, docs: pa.Table) -> StageResult:
    rows = docs.to_pylist()
    without = sorted({r["source"] for r in rows if not r.get("gold")})
    if without:
        raise ExtractError(
            f"extract.backend=gold needs a gold graph on every document, but source(s) {without} carry none: "
            "use annotated or toyworld sources, or choose an LLM extract.backend"
        )
    out = []
    for row in rows:
        etypes, rtypes = request_types(row, cfg)
        graph = graph_from_obj(json.loads(row["gold"])).restricted(etypes, rtypes)
        out.append(
            {
                **row,
                "entity_types": etypes,
                "relation_types": rtypes,
                "graph": graph.to_json(),
                "error": "",
                "model": "gold",
                "finish_reason": "gold",
                "prompt_tokens": 0,
                "completion_tokens": 0,
            }
        )
    schema = pa.schema(list(docs.schema) + OUTPUT_FIELDS)
    table = pa.Table.from_pylist(out, schema=schema)
    return StageResult(main=table, summary={"rows_in": len(rows), "rows_out": len(out), "backend": "gold"})
