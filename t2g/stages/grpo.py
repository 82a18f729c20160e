"""GRPO: reinforce the SFT student with the registered rewards (format, JSON, entity and
relation F1, type conformity), weighted by the recipe.

Inputs: the reason stage's examples (their `graph` column is the gold the rewards read,
as `solution`) and the SFT model folder. Every knob of trl's GRPOTrainer that matters
here comes from the recipe; `use_vllm` with `vllm_mode` colocate or server is for GPU
runs. The per-step mean of each reward is kept as a table and drawn as rewards.png.

`min_relations` keeps only examples with that many gold relations. Type-subset augmentation
leaves many examples with an empty gold relation list; on those, any relation costs the
whole relation reward, a far stronger signal than the rare correct relation earns, so a
small student learns to answer no relations at all (docs/log.md, "GRPO on the tiny profile").
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from t2g import reporting
from t2g.checkpoints import checkpoint_step, mirror_callbacks, resume_from
from t2g.config import GrpoConfig
from t2g.distributed import save_final
from t2g.plots import png_figure
from t2g.progress import trainer_callback
from t2g.prompts import messages
from t2g.rewards import reward_funcs
from t2g.stage import StageResult
from t2g.training import (
    BASE_WEIGHTS,
    TrainingError,
    check_model,
    common_args,
    final_metrics,
    load_model,
    load_tokenizer,
    log_table,
    model_fingerprint,
    read_base,
    require_columns,
    require_rows,
    work_dir,
)

# The gold graph travels in `graph` (the reason stage's name) and becomes `solution`,
# the column the rewards read.
COLUMNS = ("text", "entity_types", "relation_types", "graph")
CURVE_SCHEMA = pa.schema(
    [pa.field("step", pa.int64()), pa.field("reward", pa.string()), pa.field("mean", pa.float64())]
)


PLOT = "rewards.png"  # the per-step reward means, drawn


def run_report(summary: dict[str, Any], node: reporting.ReportNode, kind: reporting.Kind) -> dict[str, list[str]]:
    """The registry's report hook (t2g.reporting): where the reward plot is, after the
    evaluation in the closing text (the run report links every plot already)."""
    if kind != "text":
        return {}
    return {"links": [f"reward plot: {node.uri}/{PLOT}" + (f" ({node.name})" if node.round > 1 else "")]}


def relation_count(graph: str | None) -> int:
    """How many relations a gold graph (JSON text) holds; 0 when it is not a readable graph."""
    try:
        rels = json.loads(graph).get("relations") if graph else None
    except (ValueError, AttributeError, RecursionError):
        return 0
    return len(rels) if isinstance(rels, list) else 0


def grpo_rows(table: pa.Table, limit: int | None = None, min_relations: int = 0) -> list[dict]:
    think = table.column("think").to_pylist() if "think" in table.column_names else [None] * table.num_rows
    rows = []
    for i, row in enumerate(table.select(list(COLUMNS)).to_pylist()):
        if len(rows) == limit:
            break
        if min_relations and relation_count(row["graph"]) < min_relations:
            continue
        etypes, rtypes = row["entity_types"] or [], row["relation_types"] or []
        rows.append(
            {
                "prompt": messages(row["text"], etypes, rtypes, thinking=think[i] is not None),
                "solution": row["graph"],
                "entity_types": etypes,
                "relation_types": rtypes,
            }
        )
    return rows


def check(cfg: GrpoConfig, table: pa.Table, model_dir: Path) -> None:
    """Everything that can be wrong before a model loads, with what to change."""
    if "graph" not in table.column_names:
        raise TrainingError(
            f"grpo: the dataset has no gold column 'graph' (columns: {table.column_names}); the rewards "
            "score against it: feed grpo the reason stage's output"
        )
    require_columns(table, COLUMNS, "grpo")
    require_rows(table.num_rows, "grpo", "examples")
    check_model(str(model_dir), "grpo (the sft model)")


def grpo_args(cfg: GrpoConfig, output_dir: Path):
    from trl import GRPOConfig

    vllm = dict(use_vllm=cfg.use_vllm)
    if cfg.use_vllm:
        vllm.update(vllm_mode=cfg.vllm_mode, vllm_gpu_memory_utilization=cfg.vllm_gpu_memory_utilization)
    return GRPOConfig(
        **common_args(cfg, output_dir),
        num_generations=cfg.num_generations,
        generation_batch_size=cfg.generation_batch_size,
        max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature,
        top_k=cfg.top_k,
        loss_type=cfg.loss_type,
        beta=cfg.beta,
        epsilon=cfg.epsilon,
        num_iterations=cfg.num_iterations,
        scale_rewards=cfg.scale_rewards,
        mask_truncated_completions=cfg.mask_truncated_completions,
        reward_weights=cfg.reward_weights,
        **vllm,
        **cfg.trainer,  # any other GRPOConfig field, e.g. vllm_server_host/port (checked at load)
    )


def reward_curves(history: list[dict], names: list[str]) -> pa.Table:
    """Per logged step, the mean of each reward (trl logs rewards/<name>/mean)."""
    rows = []
    for entry in history:
        for name in [*names, "total"]:
            key = "reward" if name == "total" else f"rewards/{name}/mean"
            value = entry.get(key)
            if isinstance(value, (int, float)) and not math.isnan(value):
                rows.append({"step": int(entry.get("step", 0)), "reward": name, "mean": float(value)})
    return pa.Table.from_pylist(rows, schema=CURVE_SCHEMA)


def plot_curves(curves: pa.Table) -> bytes:
    out: list[bytes] = []
    with png_figure(out) as (fig, ax):
        data = curves.to_pylist()
        for name in dict.fromkeys(r["reward"] for r in data):
            points = [(r["step"], r["mean"]) for r in data if r["reward"] == name]
            ax.plot(*zip(*points), marker="o", markersize=3, label=name, linewidth=2.5 if name == "total" else 1.2)
        ax.set_xlabel("step")
        ax.set_ylabel("mean reward")
        ax.set_title("GRPO rewards")
        ax.grid(alpha=0.3)
        if data:
            ax.legend(fontsize=8)
    return out[0]


def grpo(cfg: GrpoConfig, reasoned: pa.Table, sft_model: Path) -> StageResult:
    from datasets import Dataset
    from trl import GRPOTrainer

    started = time.time()
    check(cfg, reasoned, sft_model)
    rows = grpo_rows(reasoned, cfg.limit, cfg.min_relations)
    if not rows:
        raise TrainingError(
            f"grpo: no example has {cfg.min_relations} or more gold relations; lower grpo.min_relations"
        )
    base = read_base(sft_model) or {"model": str(sft_model)}
    trust = bool(base.get("trust_remote_code", False))
    work = work_dir(cfg, "grpo", __name__, reasoned, model_fingerprint(sft_model))
    trainer = GRPOTrainer(
        model=load_model(sft_model, trust),
        reward_funcs=reward_funcs(cfg.rewards),
        args=grpo_args(cfg, work / "checkpoints"),
        train_dataset=Dataset.from_list(rows),
        processing_class=load_tokenizer(sft_model, trust),
        callbacks=[*mirror_callbacks(work / "checkpoints", cfg.save_total_limit), trainer_callback("grpo training")],
    )
    resume = resume_from(work / "checkpoints")
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    carried = sft_model / BASE_WEIGHTS  # the warmed-up tiny base, passed on for evaluation
    out = save_final(trainer, trainer.model, trainer.processing_class, work / "final", base,
                     carried if carried.is_file() else None)  # fmt: skip
    history = trainer.state.log_history
    curves = reward_curves(history, cfg.rewards)
    summary = {
        "rows_in": reasoned.num_rows,
        "examples": len(rows),
        "min_relations": cfg.min_relations,
        "steps": trainer.state.global_step,
        "resumed_from_step": checkpoint_step(resume),
        "rewards": dict(zip(cfg.rewards, cfg.reward_weights or [1.0] * len(cfg.rewards))),
        **final_metrics(history),
        "seconds": round(time.time() - started, 1),
    }
    files = {PLOT: plot_curves(curves)}
    return StageResult(main=log_table(history), side={"rewards": curves}, summary=summary, files=files, model_dir=out)
