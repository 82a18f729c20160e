"""The corpus graph's quality with a trained extractor (issue 26's acceptance), on the toy world
with identities (t2g.kg.identities), with the corpus, windows and types of
configs/tiny-graph.yaml and its `graph` settings, the model swapped for the one measured.

1. Long documents: the world's documents whose prompt does not fit the model's context
   (what `too_long: truncate` would cut), extracted three ways by the same model:
   (a) chunked: t2g's windows (chunk.max_tokens/overlap_tokens), each grounded, the
       overlaps merged (`merge_windows`): exactly what graph-extract does;
   (b) each part alone: the document cut at its gold sentence boundaries into parts the
       size of the world's short documents (World.max_facts fact sentences, with the
       distractor sentences between them), each part prompted as a document of its own
       and grounded in itself; parts do not overlap, so nothing is merged. This is the
       reference "what the model finds when every part is a document it can read whole";
   (c) one truncated pass: the whole document as one prompt, cut by the backend's
       `too_long: truncate` rule (t2g.llm.base.fit_prompt: head and last tokens kept) as
       the teacher's is, its answer grounded in the part of the document the model read
       (the kept head, to the last whole word; the few words in the kept tail are ignored),
       and, beside it, grounded in the whole document (t2g without chunking: a name read
       in the head is then found at every later occurrence too).
   Recall against the gold mentions: a gold mention is found when a predicted mention has
   its document, start, end and type (`mention_recall`); `entity_recall` counts distinct
   (document, gold entity) pairs with at least one found mention. Goal: (a)/(b) >= 0.95.
2. The corpus graph (chunk -> graph-extract -> resolve, as the stages run them): edge
   precision and recall against the world's gold facts after resolution
   (t2g.kg.scoring.edge_scores: a node stands for the gold entity most of its mentions
   are), the fraction of graph mentions whose text equals the source at their span (must
   be 1.0), mention recall/precision, and B-cubed of the resolution over the gold mentions
   that were found (span and type), which isolates resolution errors from missed mentions.

    T2G_GRAPH_MODEL=.t2g/store/grpo/<key> python -m bench graph_quality
    python -m bench --smoke graph_quality   # a tiny random model (t2g.tiny), 10 documents

T2G_GRAPH_MODEL takes what `t2g graph --model` takes (t2g.kg.models.artifact_model): a model
artifact folder or URI of a store, or a model folder. No LLM cache: every request is asked.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from t2g import llm
from t2g.kg import identities
from t2g.kg.chunking import chunk_table
from t2g.kg.config import load_recipe
from t2g.kg.resolve import resolve
from t2g.kg.scoring import bcubed, edge_scores, node_to_gold
from t2g.kg.tables import CHUNKS, from_rows
from t2g.llm import cache as llm_cache
from t2g.llm.base import fit_prompt
from t2g.stages.chunk import counter
from t2g.stages.graph_extract import graph_extract, ground_answers, requests

ENV = "T2G_GRAPH_MODEL"
RECIPE = Path(__file__).resolve().parents[1] / "configs" / "tiny-graph.yaml"
SMOKE_DOCS, SMOKE_NEW_TOKENS = 10, 48
GOAL_RATIO = 0.95


def run(smoke: bool = False) -> dict[str, Any]:
    if smoke:
        with tempfile.TemporaryDirectory(prefix="t2g-graph-quality-") as tmp:
            return measure(str(smoke_model(Path(tmp))), n_docs=SMOKE_DOCS, max_new_tokens=SMOKE_NEW_TOKENS)
    return measure(model_from_env())


def model_from_env() -> str:
    from t2g.kg.models import artifact_model  # the resolution `t2g graph --model` does

    given = os.environ.get(ENV)
    if not given:
        raise SystemExit(
            f"bench graph_quality measures a trained extractor: set {ENV} to the GRPO model, e.g. "
            f"{ENV}=.t2g/store/grpo/<key> (what `t2g run` prints for the grpo stage; a store URI "
            "or a model folder also do)"
        )
    return str(artifact_model(given))


def smoke_model(out: Path) -> Path:
    """A tiny random model (seconds to build): its answers are noise, the figures only say
    that the benchmark runs."""
    from t2g import tiny

    texts = [d["text"] for d in identities.documents(60, seed=1)]
    return tiny.build_tiny(out, texts, vocab_size=400, hidden_size=32, layers=1, heads=1)


def measure(
    model: str, n_docs: int | None = None, max_new_tokens: int | None = None, window_tokens: int | None = None
) -> dict[str, Any]:
    """The figures for `model`; `max_new_tokens` and `window_tokens` (chunk.max_tokens) replace
    the recipe's."""
    recipe = load_recipe(RECIPE)
    if window_tokens is not None:
        recipe = recipe.model_copy(update={"chunk": recipe.chunk.model_copy(update={"max_tokens": window_tokens})})
    src = recipe.corpus.sources[0]
    update: dict[str, Any] = {"model": model, "too_long": "truncate", "max_prompt_tokens": None}
    if max_new_tokens is not None:
        update["max_new_tokens"] = max_new_tokens
    cfg = recipe.graph.model_copy(update=update)
    world = identities.World(seed=src.world_seed, long_every=src.long_every)
    docs = identities.documents(n_docs or src.n, src.seed, world)
    table = pa.table({"id": [d["id"] for d in docs], "text": [d["text"] for d in docs]})

    started = time.time()
    chunks = chunk_table(table, recipe.chunk.max_tokens, recipe.chunk.overlap_tokens, counter(recipe.chunk.tokenizer))
    extracted = graph_extract(cfg, chunks)
    graph = resolve(extracted.main, extracted.side["relations"], fuzzy_threshold=recipe.resolve.fuzzy_threshold,
                    chunks=chunks)  # fmt: skip
    corpus_s = time.time() - started

    # The backend graph_extract loaded (same settings and key: t2g.llm.cache.generate's call).
    backend = llm.get_backend(cfg.backend, llm.engine_settings(cfg, model), llm.resolve_api_key(cfg))
    read = {d["id"]: read_chars(backend, cfg, d["text"]) for d in docs}
    long_docs = [d for d in docs if read[d["id"]] < len(d["text"])]
    out: dict[str, Any] = {
        "model": model,
        "documents": len(docs),
        "context_tokens": backend.context,
        "max_new_tokens": cfg.max_new_tokens,
        "long_documents": long_docs_figures(cfg, docs, long_docs, read, chunks, extracted.main, world),
        "corpus_graph": {**corpus_figures(docs, chunks, extracted, graph), "seconds": round(corpus_s, 1)},
    }
    return out


def long_docs_figures(
    cfg, docs, long_docs, read, chunks: pa.Table, chunked_mentions: pa.Table, world
) -> dict[str, Any]:
    ids = {d["id"] for d in long_docs}
    every = world.long_every
    figures: dict[str, Any] = {
        "documents": len(long_docs),  # of the world's long ones:
        "world_long_documents": sum(1 for i in range(len(docs)) if every and i % every == every - 1),
    }
    if not long_docs:
        return {**figures, "ratio": None, "meets_goal": None}
    among = pa.array(sorted(ids), pa.string())
    chunked = chunked_mentions.filter(pc.is_in(chunked_mentions.column("doc_id"), value_set=among))
    started = time.time()
    parts = from_rows([row for d in long_docs for row in part_rows(d, world.max_facts)], CHUNKS)
    alone = graph_extract(cfg, parts)
    parts_s = time.time() - started

    started = time.time()
    whole = [_row(d["id"], 0, d["text"], 0, len(d["text"])) for d in long_docs]
    head = [_row(d["id"], 0, d["text"], 0, read[d["id"]]) for d in long_docs]
    results, _ = llm_cache.generate(cfg, cfg.model, requests(cfg, (r["text"] for r in whole)))
    truncated_s = time.time() - started
    dropped: Counter = Counter()
    in_head = from_rows(ground_answers(cfg, head, results, dropped)[0], chunked_mentions.schema)
    in_whole = from_rows(ground_answers(cfg, whole, results, dropped)[0], chunked_mentions.schema)

    a, b = recall(chunked, long_docs), recall(alone.main, long_docs)
    ratio = a["mention_recall"] / b["mention_recall"] if b["mention_recall"] else None
    entity_ratio = a["entity_recall"] / b["entity_recall"] if b["entity_recall"] else None
    return {
        **figures,
        "mean_chars": round(sum(len(d["text"]) for d in long_docs) / len(long_docs)),
        "mean_chars_read_by_truncated_pass": round(sum(read[i] for i in ids) / len(ids)),
        "windows": pc.sum(pc.is_in(chunks.column("doc_id"), value_set=among)).as_py(),
        "parts": parts.num_rows,
        "chunked": a,
        "parts_alone": {**b, "seconds": round(parts_s, 1)},
        "truncated": {**recall(in_head, long_docs), "seconds": round(truncated_s, 1),
                      "prompts_cut": sum(r.truncated for r in results)},
        "truncated_grounded_in_whole_document": recall(in_whole, long_docs),
        "ratio": _r(ratio),
        "entity_ratio": _r(entity_ratio),
        "goal_ratio": GOAL_RATIO,
        "meets_goal": None if ratio is None else ratio >= GOAL_RATIO,
    }  # fmt: skip


def corpus_figures(docs, chunks: pa.Table, extracted, graph) -> dict[str, Any]:
    gold = identities.gold_ids(docs)
    gold_type = {(d["id"], m["start"], m["end"]): m["type"] for d in docs for m in d["mentions"]}
    text = {d["id"]: d["text"] for d in docs}
    rows = graph.mentions.select(["doc_id", "start", "end", "type", "text", "node_id"]).to_pylist()
    spans_ok = sum(text[r["doc_id"]][r["start"] : r["end"]] == r["text"] for r in rows)
    # A predicted mention is a gold one when span and type agree (a span read as two types
    # is one correct mention and one wrong one).
    found = {(r["doc_id"], r["start"], r["end"]): r["node_id"] for r in rows
             if gold_type.get((r["doc_id"], r["start"], r["end"])) == r["type"]}  # fmt: skip
    edges = list(zip(*(graph.edges.column(c).to_pylist() for c in ("head", "type", "tail"))))
    node_gold = node_to_gold(found.items(), gold)
    return {
        "chunks": chunks.num_rows,
        "mentions": extracted.main.num_rows,
        "relations": extracted.side["relations"].num_rows,
        "dropped": extracted.summary["dropped"],
        "nodes": graph.nodes.num_rows,
        "edges": graph.edges.num_rows,
        "graph_mentions": len(rows),
        "span_equals_text": _r(spans_ok / len(rows)) if rows else 1.0,
        "mention_recall": _r(len(found) / len(gold)) if gold else None,
        "mention_precision": _r(len(found) / len(rows)) if rows else None,
        "edges_vs_gold_facts": {
            k: _r(v) for k, v in edge_scores(edges, node_gold, identities.gold_facts(docs)).items()
        },
        "bcubed_found_mentions": {k: _r(v) for k, v in bcubed(found, {k: gold[k] for k in found}).items()},
    }


def read_chars(backend: Any, cfg: Any, text: str) -> int:
    """How many characters of `text` the model reads when the whole text is one prompt under
    `too_long: truncate`: all of it when it fits, else those in the kept head (cut to the
    last whole word), found through the tokenizer's character offsets."""
    rendered = backend.render(requests(cfg, [text])[0])
    enc = backend.tokenizer(rendered, add_special_tokens=False, return_offsets_mapping=True)
    ids = enc["input_ids"]
    limit = backend.max_prompt_tokens or max(1, backend.context - cfg.max_new_tokens)  # as TransformersBackend.generate
    fitted, cut = fit_prompt(ids, limit, "truncate")
    if not cut:
        return len(text)
    head = next((i for i, (a, b) in enumerate(zip(ids, fitted)) if a != b), len(fitted))  # tokens of the kept head
    at = rendered.rfind(text)
    read = max(0, enc["offset_mapping"][head - 1][1] - at) if head else 0
    if read >= len(text):
        return len(text)
    return text.rfind(" ", 0, read + 1) if " " in text[: read + 1] else 0


def part_rows(doc: dict, facts_per_part: int) -> list[dict]:
    """CHUNKS rows of the document cut at its gold sentence ends, `facts_per_part` fact
    sentences a part (a distractor sentence goes with the fact sentence after it)."""
    text = doc["text"]
    ends = sorted({f["end"] for f in doc["facts"]})
    cuts = ends[facts_per_part - 1 :: facts_per_part]
    rows, start = [], 0
    for cut in [*cuts, len(text)]:
        if cut > start:
            rows.append(_row(doc["id"], len(rows), text, start, cut))
            start = cut + len(text[cut:]) - len(text[cut:].lstrip())
    return rows


def _row(doc_id: str, i: int, text: str, start: int, end: int) -> dict:
    return {"doc_id": doc_id, "chunk_id": f"{doc_id}#{i}", "chunk_index": i, "start": start, "end": end,
            "text": text[start:end]}  # fmt: skip


def recall(mentions: pa.Table, docs: list[dict]) -> dict[str, Any]:
    """Gold mentions (and distinct document entities) of `docs` that `mentions` found."""
    got = set(zip(*(mentions.column(c).to_pylist() for c in ("doc_id", "start", "end", "type"))))
    gold = [(d["id"], m["start"], m["end"], m["type"], m["gold_id"]) for d in docs for m in d["mentions"]]
    hit = [g for g in gold if g[:4] in got]
    entities = {(g[0], g[4]) for g in gold}
    found = {(g[0], g[4]) for g in hit}
    return {"mention_recall": _r(len(hit) / len(gold)) if gold else None,
            "entity_recall": _r(len(found) / len(entities)) if entities else None,
            "mentions": mentions.num_rows, "gold_mentions": len(gold), "gold_entities": len(entities)}  # fmt: skip


def _r(v: Any) -> Any:
    return round(v, 4) if isinstance(v, float) else v
