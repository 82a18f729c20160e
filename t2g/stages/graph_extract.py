"""Graph extraction over chunks: each chunk is one request to any t2g.llm backend (the
trained student through transformers or vllm, or an OpenAI-compatible server), under the
graph JSON schema of the recipe's types, through the per-request LLM cache (an unchanged
chunk is never asked twice, which is what makes an incremental update cheap).

Every answer is grounded in its chunk (t2g.kg.grounding): a kept mention is a span of the
document (document-level character offsets), a name the model gave that is not in the
text is dropped with every relation naming it, and both are counted by reason. Mentions
found twice by overlapping windows are merged (`merge_windows`); the shards of this stage
keep a document's chunks together (t2g.shards groups rows by `doc_id`), so that merge sees
all of a document's windows.

main: MENTIONS (t2g.kg.tables); side `relations`: RELATIONS, and `dropped`: what grounding
dropped, as (reason, count) rows (a shard's rows each; the export's summary adds them up).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa

from t2g import llm
from t2g.fingerprint import llm_inputs
from t2g.graph import json_schema, parse_completion
from t2g.kg.config import GRPO, GraphConfig
from t2g.kg.grounding import ground_chunk, merge_windows
from t2g.kg.tables import MENTIONS, RELATIONS
from t2g.llm import cache as llm_cache
from t2g.prompts import messages
from t2g.stage import StageResult

DROPPED = pa.schema([("reason", pa.string()), ("count", pa.int64())])
BATCH = 512  # chunks per generate call: bounds what is in flight and paces the progress bar


class GraphExtractError(ValueError):
    """The chunks cannot be extracted with this recipe (not a transient failure)."""


def external_inputs(cfg: GraphConfig) -> dict[str, str | None]:
    """The model the stage prompts, fingerprinted (t2g.fingerprint), unless it is the
    recipe's own GRPO model: an upstream artifact, already in the key."""
    return {} if cfg.model == GRPO else llm_inputs(cfg)


def model_name(cfg: GraphConfig, model: Path | None) -> str:
    if cfg.model == GRPO:
        if model is None:
            raise GraphExtractError(f'graph.model="{GRPO}" needs the recipe\'s grpo stage (its model is the input)')
        return str(model)
    return str(cfg.model)


def requests(cfg: GraphConfig, texts: Iterable[str]) -> list[llm.Request]:
    sampling = llm.Sampling(cfg.max_new_tokens, cfg.temperature, cfg.top_p, cfg.seed)
    schema = json_schema(cfg.entity_types, cfg.relation_types) if cfg.constrained else None
    return [
        llm.Request(messages=messages(t, cfg.entity_types, cfg.relation_types), schema=schema, sampling=sampling)
        for t in texts
    ]


def ground_answers(
    cfg: GraphConfig, chunks: list[dict[str, Any]], results: list[llm.Result], dropped: Counter
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Mention and relation rows of the answers to `chunks`; what was not kept is counted
    in `dropped` by reason."""
    mentions: list[dict[str, Any]] = []
    relations: list[dict[str, Any]] = []
    for chunk, res in zip(chunks, results):
        if res.error:
            dropped["chunk: generation failed"] += 1
            continue
        parsed = parse_completion(res.text)
        if parsed.graph is None:
            dropped[
                "chunk: unparseable answer" + (" (cut at max_new_tokens)" if res.finish_reason == "length" else "")
            ] += 1
            continue
        m, r, why = ground_chunk(chunk, parsed.graph.interchange(), cfg.entity_types, cfg.relation_types)
        mentions += m
        relations += r
        dropped.update(why)
    return mentions, relations


def graph_extract(
    cfg: GraphConfig,
    chunks: pa.Table,
    model: Path | None = None,
    *,
    api_key: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> StageResult:
    """MENTIONS and RELATIONS of `chunks` (CHUNKS). `progress(n)` is told of every n
    chunks answered (the command line's progress bar)."""
    name = model_name(cfg, model)
    dropped: Counter[str] = Counter()
    mention_parts, relation_parts, accounting = [], [], []
    for batch in chunks.to_batches(max_chunksize=BATCH):
        rows = batch.to_pylist()
        results, acc = llm_cache.generate(cfg, name, requests(cfg, (r["text"] for r in rows)), api_key)
        if len(results) != len(rows):  # the protocol's promise; a backend bug must not lose chunks silently
            raise RuntimeError(f"backend {cfg.backend} returned {len(results)} results for {len(rows)} requests")
        m, r = ground_answers(cfg, rows, results, dropped)
        mention_parts.append(pa.Table.from_pylist(m, schema=MENTIONS))
        relation_parts.append(pa.Table.from_pylist(r, schema=RELATIONS))
        accounting.append(acc)
        if progress is not None:
            progress(len(rows))
    mentions = pa.concat_tables(mention_parts) if mention_parts else MENTIONS.empty_table()
    relations = pa.concat_tables(relation_parts) if relation_parts else RELATIONS.empty_table()
    mentions, relations = merge_windows(mentions, relations)
    summary = {
        "rows_in": chunks.num_rows,
        "chunks": chunks.num_rows,
        "mentions": mentions.num_rows,
        "relations": relations.num_rows,
        "dropped": dict(sorted(dropped.items())),
        "backend": cfg.backend,
        "model": cfg.model,
        "llm": _merged(accounting),
    }
    dropped_rows = pa.Table.from_pylist([{"reason": k, "count": v} for k, v in sorted(dropped.items())], schema=DROPPED)
    return StageResult(main=mentions, side={"relations": relations, "dropped": dropped_rows}, summary=summary)


def _merged(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The batches' LLM accounting added up as one (numbers summed, the rest kept when
    every batch agrees), as t2g.shards adds up shard summaries."""
    out: dict[str, Any] = {}
    for part in parts:
        for k, v in part.items():
            if k not in out:
                out[k] = v
            elif isinstance(v, (int, float)) and not isinstance(v, bool) and isinstance(out[k], (int, float)):
                out[k] = round(out[k] + v, 3) if isinstance(v, float) or isinstance(out[k], float) else out[k] + v
            elif out[k] != v:
                out[k] = f"{out[k]}; {v}"
    return out
