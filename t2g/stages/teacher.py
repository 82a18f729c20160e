"""Teacher bootstrap: a tiny model SFT'd on the gold documents of one split.

The stand-in for a 70B teacher that no laptop can run: the recipe's `teacher` section
builds a tiny model (t2g.tiny; tokenizer trained on the documents and their gold graphs)
and trains it on the `split` documents that carry gold, with the same prompt the student
will see. The extract stage then labels the unlabelled documents with it.
"""

from __future__ import annotations

import json
import time

import pyarrow as pa

from t2g.config import TeacherConfig
from t2g.distributed import save_final
from t2g.stage import StageResult
from t2g.stages.sft import tokenizer_corpus
from t2g.training import (
    TINY,
    build_tiny_base,
    final_metrics,
    gold_target,
    log_table,
    require_columns,
    require_rows,
    sft_example,
    train_sft,
    warm_base_weights,
    work_dir,
)


def teacher_examples(docs: pa.Table, split: str) -> list[dict]:
    """Prompt-completion examples from the gold documents of `split`: the completion is
    the gold graph restricted to the document's requested types."""
    out = []
    for row in docs.to_pylist():
        if row.get("split") != split or not row.get("gold"):
            continue
        etypes, rtypes = _types(row)
        out.append(sft_example(row["text"], etypes, rtypes, gold_target(row["gold"], etypes, rtypes)))
    return out


def _types(row: dict) -> tuple[list[str], list[str]]:
    """The document's own request, or every type its gold uses."""
    if row.get("entity_types") is not None and row.get("relation_types") is not None:
        return list(row["entity_types"]), list(row["relation_types"])
    gold = json.loads(row["gold"])
    return (sorted({e["type"] for e in gold.get("entities", [])}),
            sorted({r["type"] for r in gold.get("relations", [])}))  # fmt: skip


def teacher(cfg: TeacherConfig, docs: pa.Table) -> StageResult:
    started = time.time()
    require_columns(docs, ("text", "split", "gold"), "teacher")
    exs = teacher_examples(docs, cfg.split)
    require_rows(len(exs), "teacher", f"gold documents in split {cfg.split!r}")
    work = work_dir(cfg, "teacher", __name__, docs)
    # Warm-up on the split's own texts only: never on the documents it will label or on the test split.
    texts = [
        t for t, split in zip(docs.column("text").to_pylist(), docs.column("split").to_pylist()) if split == cfg.split
    ]
    base_dir = build_tiny_base(work / "base", tokenizer_corpus(exs), cfg.tiny, texts)
    model, tokenizer, trainer, resumed = train_sft(cfg, exs, base_dir, work)
    base = {"model": TINY, "tiny": cfg.tiny.model_dump()}
    out = save_final(trainer, model, tokenizer, work / "final", base, warm_base_weights(base_dir, cfg.tiny))
    summary = {
        "rows_in": docs.num_rows,
        "examples": len(exs),
        "split": cfg.split,
        "steps": trainer.state.global_step,
        "resumed_from_step": resumed,
        **final_metrics(trainer.state.log_history),
        "seconds": round(time.time() - started, 1),
    }
    return StageResult(main=log_table(trainer.state.log_history), summary=summary, model_dir=out)
