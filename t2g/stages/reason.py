"""Reasoning: the SFT target for each kept example.

With thinking on, an R1 reasoner is shown the text, the requested types and the filtered
graph, and writes how it would reach that graph without having seen it. Only the
thinking is kept (anything after </think> is dropped); an answer without a closed think
block, one that quotes the graph JSON verbatim, or one longer than `max_think_chars` is
rejected into the `dropped` side table with its reason. The target is
`<think>\\n…\\n</think>\\n<graph JSON>`. With thinking off, the target is the graph JSON
alone and the summary says so, so nobody mistakes a no-thinking run for an R1 one.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa

from t2g import llm
from t2g.config import REASONER, ReasonConfig
from t2g.graph import THINK_CLOSE, THINK_OPEN
from t2g.llm import cache as llm_cache
from t2g.prompts import reasoner_messages
from t2g.stage import StageResult

OUTPUT_FIELDS = [pa.field("think", pa.string()), pa.field("target", pa.string())]
DROPPED_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string()),
        pa.field("raw", pa.string()),
    ]
)

# Drop reasons.
GENERATION_ERROR = "generation error"
UNCLOSED = "no closed think block"
EMPTY = "empty thinking"
NESTED = "think tags inside the thinking"
QUOTES_GRAPH = "quotes the graph JSON"
TOO_LONG = "thinking too long"

_SPACE = re.compile(r"\s+")


class ReasonError(ValueError):
    """The examples cannot be reasoned with this recipe (not a transient failure)."""


class Rejected(ValueError):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason, self.detail = reason, detail


def thinking(res: llm.Result, graph_json: str, max_chars: int) -> str:
    """The reasoning to keep from a reasoner's answer; raises Rejected with the reason."""
    if res.error:
        raise Rejected(GENERATION_ERROR, res.error)
    if res.reasoning is not None:
        # The server split the thinking off (reasoning parser): it is closed unless cut.
        if res.finish_reason == "length" and not res.text.strip():
            raise Rejected(UNCLOSED, "cut at max_new_tokens inside the reasoning")
        think = res.reasoning
    else:
        close = res.text.find(THINK_CLOSE)
        if close < 0:
            raise Rejected(UNCLOSED, f"finish_reason={res.finish_reason}")
        think = res.text[:close]
        # R1 chat templates open the block in the prompt, so the answer may lack <think>.
        opened = think.find(THINK_OPEN)
        if opened >= 0:
            if think[:opened].strip():
                raise Rejected(UNCLOSED, "text before <think>")
            think = think[opened + len(THINK_OPEN) :]
    think = think.strip()
    if not think:
        raise Rejected(EMPTY)
    if THINK_OPEN in think or THINK_CLOSE in think:
        raise Rejected(NESTED)
    if _SPACE.sub("", graph_json) in _SPACE.sub("", think):
        raise Rejected(QUOTES_GRAPH)
    if len(think) > max_chars:
        raise Rejected(TOO_LONG, f"{len(think)} > {max_chars} chars")
    return think


def target(think: str, graph_json: str) -> str:
    return f"{THINK_OPEN}\n{think}\n{THINK_CLOSE}\n{graph_json}"


def reason(
    cfg: ReasonConfig, examples: pa.Table, reasoner: Path | None = None, *, api_key: str | None = None
) -> StageResult:
    if not cfg.thinking:
        n = examples.num_rows
        table = examples.append_column(OUTPUT_FIELDS[0], pa.nulls(n, pa.string()))
        table = table.append_column(OUTPUT_FIELDS[1], examples.column("graph"))
        note = "thinking disabled in the recipe: targets are the graph JSON without <think> reasoning"
        empty = pa.Table.from_pylist([], schema=DROPPED_SCHEMA)
        return StageResult(main=table, side={"dropped": empty}, summary={"rows_in": n, "rows_out": n, "note": note})
    return _reason(cfg, examples, _model(cfg, reasoner), api_key)


def _model(cfg: ReasonConfig, reasoner: Path | None) -> str:
    if cfg.model == REASONER:
        if reasoner is None:
            raise ReasonError(
                f'reason.model="{REASONER}" needs a reasoner model: add a `reasoner` section to the recipe'
            )
        return str(reasoner)
    if not cfg.model:
        raise ReasonError(
            f'reason.thinking=true needs reason.model (the reasoner: a model path, hub name, served name or "{REASONER}")'
        )
    return cfg.model


def _reason(cfg: ReasonConfig, examples: pa.Table, model: str, api_key: str | None) -> StageResult:
    rows = examples.to_pylist()
    sampling = llm.Sampling(cfg.max_new_tokens, cfg.temperature, cfg.top_p, cfg.seed)
    requests = [
        llm.Request(
            messages=reasoner_messages(r["text"], r["entity_types"], r["relation_types"], r["graph"]), sampling=sampling
        )
        for r in rows
    ]
    started = time.time()
    # Through the LLM response cache when the run opened one (t2g.llm.cache).
    results, accounting = llm_cache.generate(cfg, model, requests, api_key)
    if len(results) != len(requests):
        raise RuntimeError(f"backend {cfg.backend} returned {len(results)} results for {len(requests)} requests")

    kept: list[dict[str, Any]] = []
    dropped: list[dict[str, Any]] = []
    reasons: Counter[str] = Counter()
    prompt_tokens = completion_tokens = 0
    for row, res in zip(rows, results):
        prompt_tokens += res.prompt_tokens
        completion_tokens += res.completion_tokens
        try:
            think = thinking(res, row["graph"], cfg.max_think_chars)
        except Rejected as rej:
            reasons[rej.reason] += 1
            dropped.append({"id": row.get("id"), "reason": rej.reason, "detail": rej.detail, "raw": res.text})
            continue
        kept.append({**row, "think": think, "target": target(think, row["graph"])})
    schema = pa.schema(list(examples.schema) + OUTPUT_FIELDS)
    summary = {
        "rows_in": len(rows),
        "rows_out": len(kept),
        "backend": cfg.backend,
        "model": cfg.model,
        "reasons": dict(reasons),
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "generate_s": round(time.time() - started, 3),
        "llm": accounting,
    }
    return StageResult(
        main=pa.Table.from_pylist(kept, schema=schema),
        side={"dropped": pa.Table.from_pylist(dropped, schema=DROPPED_SCHEMA)},
        summary=summary,
    )
