"""Reasoner bootstrap: a tiny model that writes the chain of thought from text + graph.

The stand-in for an R1 reasoner (DeepSeek-R1-Distill-Llama-70B) that no laptop can run,
as the tiny teacher stands in for a 70B teacher: the recipe's `reasoner` section trains a
tiny model on the gold documents of one split, shown exactly what the reason stage shows
a reasoner (the reasoner prompt: text, requested types and the answer graph), to write
the toy world's rationale for that answer (t2g.rationales) inside <think>…</think>. Each
document is seen with its own request and `variants` sampled ones, since the filter's
augmentation asks the reasoner about such requests. `reason.model: "@reasoner"` then runs
it through the real reason stage, with that stage's checks and drop table.

`model: "@teacher"` continues the tiny teacher: it already copies names from its context,
which a fresh tiny base needs a costly warm-up to learn, and the student (continued from
the same teacher) shares its tokenizer.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pyarrow as pa

from t2g.config import TEACHER, AugmentConfig, ReasonerConfig
from t2g.distributed import save_final
from t2g.graph import THINK_CLOSE, THINK_OPEN
from t2g.prompts import reasoner_messages
from t2g.rationales import NotToyWorld, rationale
from t2g.stage import StageResult
from t2g.stages.filter import sample_request
from t2g.stages.sft import teacher_base, tokenizer_corpus
from t2g.training import (
    TINY,
    build_tiny_base,
    final_metrics,
    gold_target,
    log_table,
    model_fingerprint,
    require_columns,
    require_rows,
    train_sft,
    warm_base_weights,
    work_dir,
)


def reasoner_examples(docs: pa.Table, cfg: ReasonerConfig) -> tuple[list[dict], int]:
    """Prompt-completion examples from the gold documents of `cfg.split`, and how many
    such documents the toy world did not write (they have no rationale to learn)."""
    out: list[dict] = []
    skipped = 0
    variants = AugmentConfig(variants=cfg.variants, seed=cfg.seed)
    for row in docs.to_pylist():
        if row.get("split") != cfg.split or not row.get("gold"):
            continue
        gold = json.loads(row["gold"])
        present_e = sorted({e["type"] for e in gold.get("entities", [])})
        present_r = sorted({r["type"] for r in gold.get("relations", [])})
        own = (row.get("entity_types") or present_e, row.get("relation_types") or present_r)
        rng = random.Random(f"reasoner/{cfg.seed}/{row['id']}")
        requests = [own] + [
            (sample_request(rng, own[0], present_e, variants), sample_request(rng, own[1], present_r, variants))
            for _ in range(cfg.variants)
        ]
        try:
            for etypes, rtypes in dict.fromkeys((tuple(e), tuple(r)) for e, r in requests):
                answer = gold_target(row["gold"], etypes, rtypes)
                think = rationale(row["text"], etypes, rtypes, answer, seed=cfg.seed)
                out.append({
                    "prompt": reasoner_messages(row["text"], etypes, rtypes, answer),
                    "completion": [{"role": "assistant", "content": f"{THINK_OPEN}\n{think}\n{THINK_CLOSE}"}],
                })  # fmt: skip
        except NotToyWorld:
            skipped += 1
    return out, skipped


def reasoner(cfg: ReasonerConfig, docs: pa.Table, teacher: Path | None = None) -> StageResult:
    started = time.time()
    require_columns(docs, ("id", "text", "split", "gold"), "reasoner")
    exs, skipped = reasoner_examples(docs, cfg)
    require_rows(len(exs), "reasoner", f"toy-world gold documents in split {cfg.split!r}")
    if cfg.model == TEACHER:
        base = teacher_base(teacher)
        work = work_dir(cfg, "reasoner", __name__, docs, model_fingerprint(teacher))
        base_dir, weights = Path(teacher), Path(teacher) / "model.safetensors"
    else:
        work = work_dir(cfg, "reasoner", __name__, docs)
        texts = [t for t, s in zip(docs.column("text").to_pylist(), docs.column("split").to_pylist()) if s == cfg.split]
        base_dir = build_tiny_base(work / "base", tokenizer_corpus(exs), cfg.tiny, texts)
        base, weights = {"model": TINY, "tiny": cfg.tiny.model_dump()}, warm_base_weights(base_dir, cfg.tiny)
    model, tokenizer, trainer, resumed = train_sft(cfg, exs, base_dir, work)
    out = save_final(trainer, model, tokenizer, work / "final", base, weights)
    summary = {
        "rows_in": docs.num_rows,
        "examples": len(exs),
        "not_toy_world": skipped,
        "split": cfg.split,
        "base": cfg.model,
        "steps": trainer.state.global_step,
        "resumed_from_step": resumed,
        **final_metrics(trainer.state.log_history),
        "seconds": round(time.time() - started, 1),
    }
    return StageResult(main=log_table(trainer.state.log_history), summary=summary, model_dir=out)
