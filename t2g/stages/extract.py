"""Extraction: label each document with a graph of the requested types.

Backends: `gold` takes the graph an annotated source carries (a user with an annotated
dataset needs no teacher); the LLM backends (transformers, vllm, openai; see t2g.llm)
prompt a teacher with the shared prompt (t2g.prompts) under the JSON schema of the
requested types. Every output row carries either a graph or the reason it has none:
an answer that breaks the schema (a server without constrained decoding) is kept with
its raw text and parse error, for the filter to drop and count.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa

from t2g import llm, reporting
from t2g.config import TEACHER, ExtractConfig  # TEACHER: the model artifact passed as the stage's second input
from t2g.graph import graph_from_obj, json_schema, parse_completion
from t2g.llm import cache as llm_cache
from t2g.metrics import Counts, count, entity_set, relation_set
from t2g.prompts import messages
from t2g.stage import StageResult

OUTPUT_FIELDS = [
    pa.field("graph", pa.string()),
    pa.field("error", pa.string()),
    pa.field("model", pa.string()),
    pa.field("finish_reason", pa.string()),
    pa.field("prompt_tokens", pa.int64()),
    pa.field("completion_tokens", pa.int64()),
    pa.field("raw", pa.string()),  # the teacher's answer as generated (null for gold)
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


def select(cfg: ExtractConfig, docs: pa.Table) -> tuple[list[dict[str, Any]], int]:
    """The documents to label (those of `cfg.splits`), and how many were not selected."""
    rows = docs.to_pylist()
    if cfg.splits is None:
        return rows, 0
    wanted = set(cfg.splits)
    chosen = [r for r in rows if r.get("split") in wanted]
    return chosen, len(rows) - len(chosen)


def resolve_model(cfg: ExtractConfig, teacher: Path | None) -> str:
    if cfg.model == TEACHER:
        if teacher is None:
            raise ExtractError(
                'extract.model="@teacher" needs a teacher model: add a `teacher` section to the recipe '
                "(or name a model path in extract.model)"
            )
        return str(teacher)
    if not cfg.model:
        raise ExtractError(f'extract.backend={cfg.backend} needs extract.model (a model path, hub name or "@teacher")')
    return cfg.model


def extract(
    cfg: ExtractConfig, docs: pa.Table, teacher: Path | None = None, *, api_key: str | None = None
) -> StageResult:
    rows, not_selected = select(cfg, docs)
    schema = pa.schema(list(docs.schema) + OUTPUT_FIELDS)
    if cfg.backend == "gold":
        result = _extract_gold(cfg, rows, schema)
    else:
        result = _extract_llm(cfg, rows, schema, teacher, api_key)
    result.summary = {"rows_in": docs.num_rows, "not_selected": not_selected, **result.summary}
    return result


def _extract_gold(cfg: ExtractConfig, rows: list[dict[str, Any]], schema: pa.Schema) -> StageResult:
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
                "raw": None,
            }
        )
    table = pa.Table.from_pylist(out, schema=schema)
    return StageResult(main=table, summary={"rows_out": len(out), "backend": "gold"})


def build_requests(
    cfg: ExtractConfig, rows: list[dict[str, Any]]
) -> tuple[list[llm.Request], list[tuple[list[str], list[str]]]]:
    """The teacher's request for each row (the shared prompt under the JSON schema of the
    row's requested types), and those types."""
    requests, types = [], []
    sampling = llm.Sampling(cfg.max_new_tokens, cfg.temperature, cfg.top_p, cfg.seed)
    for row in rows:
        etypes, rtypes = request_types(row, cfg)
        types.append((etypes, rtypes))
        requests.append(
            llm.Request(
                messages=messages(row["text"], etypes, rtypes), schema=json_schema(etypes, rtypes), sampling=sampling
            )
        )
    return requests, types


def _extract_llm(
    cfg: ExtractConfig, rows: list[dict[str, Any]], schema: pa.Schema, teacher: Path | None, api_key: str | None
) -> StageResult:
    model = resolve_model(cfg, teacher)
    requests, types = build_requests(cfg, rows)
    started = time.time()
    # Through the LLM response cache when the run opened one (t2g.llm.cache).
    results, accounting = llm_cache.generate(cfg, model, requests, api_key)
    seconds = time.time() - started
    if len(results) != len(requests):  # the protocol's promise; a backend bug must not lose rows silently
        raise RuntimeError(f"backend {cfg.backend} returned {len(results)} results for {len(requests)} requests")

    out, errors, finish = [], Counter(), Counter()
    truncated = prompt_tokens = completion_tokens = 0
    for row, (etypes, rtypes), res in zip(rows, types, results):
        graph, error = _graph(res, etypes, rtypes)
        if error:
            errors[error.split(":")[0]] += 1
        finish[res.finish_reason or "unknown"] += 1
        truncated += res.truncated
        prompt_tokens += res.prompt_tokens
        completion_tokens += res.completion_tokens
        out.append(
            {
                **row,
                "entity_types": etypes,
                "relation_types": rtypes,
                "graph": graph,
                "error": error,
                # The recipe's name for the model: "@teacher" rather than a temporary folder.
                "model": cfg.model,
                "finish_reason": res.finish_reason,
                "prompt_tokens": res.prompt_tokens,
                "completion_tokens": res.completion_tokens,
                "raw": res.text,
            }
        )
    table = pa.Table.from_pylist(out, schema=schema)
    summary = {
        "rows_out": len(out),
        "backend": cfg.backend,
        "model": cfg.model,
        "graphs": len(out) - sum(errors.values()),
        "errors": dict(errors),
        "finish_reasons": dict(finish),
        "truncated": truncated,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "generate_s": round(seconds, 3),
        "llm": accounting,
    }
    if scored := against_gold(out):
        summary["vs_gold"] = scored
    return StageResult(main=table, summary=summary)


def against_gold(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The teacher's labels scored against the gold its documents carry (the toy world's
    hidden gold, an annotated source), per split: documents and entity / relation
    TP/FP/FN, counts so that shard summaries add up (`label_quality` turns them into
    P/R/F1). The gold is restricted to the requested types; a row without a graph counts
    as an empty answer. Empty when no document carries gold (a user's own texts)."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        if not row.get("gold"):
            continue
        gold = graph_from_obj(json.loads(row["gold"])).restricted(row["entity_types"], row["relation_types"])
        pred = graph_from_obj(json.loads(row["graph"])) if row.get("graph") else graph_from_obj({})
        tally = out.setdefault(str(row.get("split") or "all"), {"documents": 0, "entities": {}, "relations": {}})
        tally["documents"] += 1
        for kind, items in (("entities", entity_set), ("relations", relation_set)):
            c = count(items(gold), items(pred))
            for name, n in (("tp", c.tp), ("fp", c.fp), ("fn", c.fn)):
                tally[kind][name] = tally[kind].get(name, 0) + n
    return out


def label_quality(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the teacher's label quality (one per split) from an extract summary's
    `vs_gold`, for the run report and the closing table; empty without it."""
    rows = []
    for split, tally in sorted((summary.get("vs_gold") or {}).items()):
        row: dict[str, Any] = {"split": split, "documents": tally["documents"]}
        for kind, label in (("entities", "entity"), ("relations", "relation")):
            prf = Counts(**{k: int(tally[kind].get(k, 0)) for k in ("tp", "fp", "fn")}).prf()
            row.update({f"{label} {k}": round(v, 3) for k, v in prf.items()})
        rows.append(row)
    return rows


def run_report(summary: dict[str, Any], node: reporting.ReportNode, kind: reporting.Kind) -> dict[str, list[str]]:
    """The registry's report hook (t2g.reporting): how good the teacher's labels were
    against the documents' own gold, per split; nothing for gold labels or documents
    without gold."""
    quality = label_quality(summary)
    if not quality:
        return {}
    if kind == "markdown":
        return {"data": ["", "### Teacher labels against the documents' gold", "", *reporting.table(quality)]}
    return {"data": [
        f"teacher labels, {row['split']} ({row['documents']} documents, against their gold): "
        f"entity P/R/F1 {row['entity precision']:.3f} / {row['entity recall']:.3f} / {row['entity f1']:.3f}, "
        f"relation {row['relation precision']:.3f} / {row['relation recall']:.3f} / {row['relation f1']:.3f}"
        for row in quality
    ]}  # fmt: skip


def _graph(res: llm.Result, etypes: list[str], rtypes: list[str]) -> tuple[str | None, str]:
    """(canonical graph JSON, "") or (None, why not)."""
    if res.error:
        return None, f"generation failed: {res.error}"
    parsed = parse_completion(res.text)
    if parsed.graph is None:
        suffix = " (cut at max_new_tokens)" if res.finish_reason == "length" else ""
        return None, f"unparseable answer: {parsed.error}{suffix}"
    # A server without constrained decoding may answer types nobody asked for.
    stray = sorted({e.type for e in parsed.graph.entities} - set(etypes)) + sorted(
        {r.type for r in parsed.graph.relations} - set(rtypes)
    )
    if stray:
        return None, f"types not requested: {', '.join(stray)}"
    return parsed.graph.to_json(), ""
