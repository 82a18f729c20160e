"""SFT: teach the student the task and the answer format on the reasoning stage's targets.

trl's SFTTrainer on a prompt-completion conversational dataset (system + user prompt with
the text and the requested types; the assistant's answer is the target), loss on the
completion only, batches padded dynamically to their longest example (or padding-free),
optional LoRA merged before saving. Checkpoints go to a work folder named by a digest
of the section and the data, so a rerun after a crash resumes from the last one.

`model: "@teacher"` starts the student from the recipe's tiny teacher (the stage's second
input): on a CPU profile, a student trained from a fresh base on the few hundred
documents the filter keeps of the teacher's labels never leaves the SFT plateau, while
one continued from the teacher learns from them (docs/log.md).

In a later round (`rounds`), `samples` are the round's accepted rejection samples
(t2g.stages.sample), trained on together with the teacher's data, and with `start:
previous` the student continues the round before's GRPO model (`start`) instead of
starting again from `model` as R1 did.
"""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa

from t2g.config import TEACHER, SftConfig
from t2g.distributed import save_final
from t2g.stage import StageResult
from t2g.training import (
    BASE_FILE,
    BASE_WEIGHTS,
    TINY,
    TrainingError,
    build_tiny_base,
    check_model,
    final_metrics,
    log_table,
    model_fingerprint,
    read_base,
    require_columns,
    require_rows,
    sft_example,
    train_sft,
    warm_base_weights,
    work_dir,
)

COLUMNS = ("text", "entity_types", "relation_types", "target")


def examples_from(table: pa.Table) -> list[dict]:
    """Prompt-completion examples from reason rows; a row with reasoning (`think` set)
    gets the thinking prompt."""
    think = table.column("think").to_pylist() if "think" in table.column_names else [None] * table.num_rows
    cols = {c: table.column(c).to_pylist() for c in COLUMNS}
    return [
        sft_example(
            cols["text"][i],
            cols["entity_types"][i] or [],
            cols["relation_types"][i] or [],
            cols["target"][i],
            thinking=think[i] is not None,
        )  # fmt: skip
        for i in range(table.num_rows)
    ]


def tokenizer_corpus(exs: list[dict]):
    """What a tiny model reads and writes: prompts and answers, so names and JSON
    punctuation become single tokens."""
    for ex in exs:
        for message in ex["prompt"] + ex["completion"]:
            yield message["content"]


def teacher_base(teacher: Path | None) -> dict:
    """The base record of a student continued from the tiny teacher: evaluation rebuilds
    the teacher from it (and the teacher's weights, carried beside the student)."""
    if teacher is None:
        raise TrainingError(
            f'sft.model is "{TEACHER}" but sft got no teacher model: add a teacher section to the recipe'
        )
    base = read_base(teacher)
    if not base or base.get("model") != TINY:
        raise TrainingError(f'sft.model "{TEACHER}": {teacher} is not a tiny teacher (its {BASE_FILE} says {base})')
    return {"model": TINY, "tiny": base["tiny"], "from": TEACHER}


def with_samples(reasoned: pa.Table, samples: pa.Table | None) -> pa.Table:
    """The teacher's data plus a round's accepted samples (their columns in common)."""
    if samples is None:
        return reasoned
    require_columns(samples, COLUMNS, "sft (samples)")
    columns = [c for c in reasoned.column_names if c in samples.column_names]
    return pa.concat_tables([reasoned.select(columns), samples.select(columns).cast(reasoned.select(columns).schema)])


def sft(cfg: SftConfig, reasoned: pa.Table, teacher: Path | None = None, samples: pa.Table | None = None,
        start: Path | None = None) -> StageResult:  # fmt: skip
    started = time.time()
    require_columns(reasoned, COLUMNS, "sft")
    rows_in = reasoned.num_rows
    reasoned = with_samples(reasoned, samples)
    require_rows(reasoned.num_rows, "sft", "examples")
    if cfg.model not in (TINY, TEACHER) and start is None:
        check_model(cfg.model, "sft.model")
    base = teacher_base(teacher) if cfg.model == TEACHER and start is None else None
    exs = examples_from(reasoned)
    # A student continued from a teacher (or a model before it) resumes only that model's checkpoints.
    before = start if start is not None else teacher if cfg.model == TEACHER else None
    work = work_dir(cfg, "sft", __name__, reasoned, *([model_fingerprint(before)] if before is not None else []))
    if start is not None:
        check_model(str(start), "sft (the round before's model)")
        base_dir = Path(start)
        base = read_base(start) or {"model": str(start)}  # the first round's base: evaluation scores it
        carried = base_dir / BASE_WEIGHTS
        weights = carried if carried.is_file() else None
    elif cfg.model == TEACHER:
        base_dir = Path(teacher)
        weights = base_dir / "model.safetensors"  # the trained teacher is this student's base
    elif cfg.model == TINY:
        base_dir = build_tiny_base(work / "base", tokenizer_corpus(exs), cfg.tiny, reasoned.column("text").to_pylist())
        base = {"model": TINY, "tiny": cfg.tiny.model_dump()}
        weights = warm_base_weights(base_dir, cfg.tiny)
    else:
        base_dir = Path(cfg.model)
        base = {"model": cfg.model, "trust_remote_code": cfg.trust_remote_code, "revision": cfg.model_revision}
        weights = None
    model, tokenizer, trainer, resumed = train_sft(cfg, exs, base_dir, work, cfg.trust_remote_code, cfg.lora)
    thinks = "think" in reasoned.column_names and reasoned.column("think").null_count < reasoned.num_rows
    if thinks:  # evaluation and GRPO prompt it as it was taught (t2g.training.trained_to_think)
        base = {**base, "thinking": True}
    out = save_final(trainer, model, tokenizer, work / "final", base, weights)
    history = trainer.state.log_history
    summary = {
        "rows_in": reasoned.num_rows,
        "examples": len(exs),
        **({"samples": samples.num_rows, "teacher_rows": rows_in} if samples is not None else {}),
        "steps": trainer.state.global_step,
        "resumed_from_step": resumed,
        "base": cfg.model if start is None else "the round before's model",
        "lora": cfg.lora is not None,
        "thinking": thinks,
        **final_metrics(history),
        "seconds": round(time.time() - started, 1),
    }
    return StageResult(main=log_table(history), summary=summary, model_dir=out)
