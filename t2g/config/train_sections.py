"""The training sections (the tiny teacher and reasoner, sft, grpo; LoRA, launch, trl's
own fields) and evaluate's."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_serializer, model_validator

from t2g.config.section import TEACHER, Section

# --- training: teacher bootstrap, sft, grpo; evaluate --------------------------------


class TinyModelConfig(Section):
    """A model built from nothing by t2g.tiny: a BPE trained on the training texts and a
    randomly initialised Qwen2 decoder (the CPU stand-in for a real checkpoint)."""

    vocab_size: int = Field(2048, ge=300)
    hidden_size: int = Field(128, ge=8)
    layers: int = Field(4, ge=1)
    heads: int = Field(2, ge=1)
    seed: int = 0
    pretrain_steps: int = Field(
        0, ge=0, description="warm-up steps copying the training texts (t2g.tiny.pretrain), before any SFT"
    )
    pretrain_lr: float = Field(3e-3, gt=0)


class LoraSettings(Section):
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    merge: bool = Field(True, description="merge the adapter into the base weights before saving")


class LaunchSettings(Section):
    """Train under `accelerate launch` (t2g/launch.py) instead of in the task's process:
    one process per GPU, on one machine or several; every process runs the stage and the
    main one writes the artifact."""

    accelerate_config: str | None = Field(
        None,
        description="an accelerate config file, e.g. configs/accelerate/zero3.yaml (relative to the "
        "working directory); null: accelerate's own default",
    )
    num_processes: int | None = Field(
        None, ge=1, description="processes on all machines together (GPUs x nodes); null: the config file's"
    )
    extra_args: list[str] = Field(
        [], description="more `accelerate launch` flags, e.g. [--num_machines, '2', --machine_rank, '0', ...]"
    )

    @model_validator(mode="after")
    def _flags_only(self) -> LaunchSettings:
        # The runner appends `-m t2g.rank ...`; a script or module here would run instead.
        taken = {"-m", "--module", "--no_python", "--config_file", "--num_processes"} & set(self.extra_args)
        if taken:
            raise ValueError(
                f"extra_args may not contain {sorted(taken)}: the runner sets them (use accelerate_config, num_processes)"
            )
        return self


# What t2g sets itself from its own fields, or must own (where checkpoints go, logging).
_TRL_OWNED = frozenset({
    "output_dir", "learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
    "gradient_accumulation_steps", "warmup_steps", "lr_scheduler_type", "weight_decay",
    "gradient_checkpointing", "bf16", "use_cpu", "save_strategy", "save_steps", "save_total_limit",
    "logging_steps", "report_to", "seed", "data_seed", "max_length", "padding_free", "pad_to_multiple_of", "completion_only_loss",
    "num_generations", "generation_batch_size", "max_completion_length", "temperature", "top_k", "loss_type",
    "beta", "epsilon", "num_iterations", "scale_rewards", "mask_truncated_completions", "reward_weights",
    "use_vllm", "vllm_mode", "vllm_gpu_memory_utilization", "resume_from_checkpoint",
})  # fmt: skip


def check_trl_fields(fields: dict[str, Any], config: str) -> None:
    """`fields` are settable fields of trl's `config` dataclass, with values of its types.
    trl is imported only when a recipe sets some (it takes seconds)."""
    import dataclasses

    import trl

    known = {f.name: f for f in dataclasses.fields(getattr(trl, config)) if f.init}
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise ValueError(f"trainer: {unknown} are not fields of trl's {config}")
    owned = sorted(set(fields) & _TRL_OWNED)
    if owned:
        raise ValueError(
            f"trainer: {owned} are set by t2g from this section's own fields (or must be); set those instead"
        )
    for name, value in fields.items():
        default = known[name].default
        if value is not None and default not in (None, dataclasses.MISSING) and not _same_kind(value, default):
            raise ValueError(
                f"trainer.{name}: {value!r} is not a {type(default).__name__} like trl's default {default!r}"
            )


def _same_kind(value: Any, default: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) == isinstance(default, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, (int, float))
    if isinstance(default, str):
        return isinstance(value, str)
    return True  # lists, dicts, enums: trl validates them when the trainer starts


class TrainSection(Section):
    """Hyperparameters every trl trainer here takes (names as in transformers/trl)."""

    learning_rate: float = Field(2e-5, gt=0)
    epochs: float = Field(1.0, gt=0)
    max_steps: int = Field(-1, description="> 0 overrides epochs")
    batch_size: int = Field(8, ge=1, description="per device")
    gradient_accumulation_steps: int = Field(1, ge=1)
    warmup_steps: int = Field(0, ge=0)
    lr_scheduler_type: str = "linear"
    weight_decay: float = Field(0.0, ge=0)
    gradient_checkpointing: bool = False
    bf16: bool | None = Field(None, description="null: bf16 where the hardware has it")
    save_steps: int = Field(100, ge=1, description="checkpoint every N steps (resume after a crash)")
    save_total_limit: int = Field(2, ge=1)
    logging_steps: int = Field(10, ge=1)
    work_dir: str = Field(".t2g/work", description="where checkpoints live while training")
    seed: int = 0
    # How the stage runs, not what it produces: left out of every dump (exclude=True), so
    # out of the cache key, the manifest's config and the checkpoint folder's name. The
    # same run launched on other machines (new IPs, after a crash) finds the same
    # artifact and resumes the same checkpoints; existing keys do not move.
    launch: LaunchSettings | None = Field(None, exclude=True, description="null: train in the task's own process")
    # Any other field of trl's SFTConfig / GRPOConfig (e.g. vllm_server_host, max_grad_norm),
    # passed through as open-r1 does; names and types are checked against trl's own
    # dataclass when the recipe loads. A field set above cannot be set here too.
    trainer: dict[str, Any] = Field({}, description="more trl SFTConfig/GRPOConfig fields, by trl's names")

    trl_config: ClassVar[str] = "SFTConfig"  # which trl dataclass `trainer` is checked against

    @field_validator("trainer")
    @classmethod
    def _trainer_fields(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value:
            check_trl_fields(value, cls.trl_config)
        return value


class SupervisedSection(TrainSection):
    max_length: int = Field(2048, ge=16, description="longer examples are truncated (no padding to it)")
    padding_free: bool = Field(False, description="flatten each batch into one sequence (flash attention only)")
    # On an H200 each new batch length costs a step ~2.5x its time (kernel selection; docs/log.md,
    # 2026-11-30): padding each batch up to a multiple of 64 leaves ~16 lengths, seen once each.
    pad_to_multiple_of: int | None = Field(
        None, ge=1, description="pad each batch's length up to a multiple of this; null: 64 on a GPU, none on a CPU"
    )


class TeacherConfig(SupervisedSection):
    """Bootstrap a tiny teacher on the gold documents of one split: the stand-in for a big
    teacher LLM on a machine that cannot run one."""

    split: str = "seed"
    tiny: TinyModelConfig = TinyModelConfig()
    learning_rate: float = Field(3e-3, gt=0)
    epochs: float = Field(6.0, gt=0)
    batch_size: int = Field(16, ge=1)


class ReasonerConfig(SupervisedSection):
    """Bootstrap a tiny reasoner: the stand-in for an R1 reasoner, trained on the toy
    world's rationales (t2g.rationales) of the gold documents of one split, for their own
    request and `variants` sampled ones (as the filter's augmentation varies them)."""

    split: str = "seed"
    model: Literal["@teacher", "tiny"] = Field(
        TEACHER,
        description='"@teacher": continue the tiny teacher (it already copies names); "tiny": a fresh tiny base',
    )
    tiny: TinyModelConfig = TinyModelConfig()
    variants: int = Field(1, ge=0, description="sampled requests per document besides its own")
    learning_rate: float = Field(3e-3, gt=0)
    epochs: float = Field(6.0, gt=0)
    batch_size: int = Field(16, ge=1)


class SftConfig(SupervisedSection):
    model: str = Field(
        "tiny",
        description='a local folder or hub name, "tiny" (built from the training texts) or "@teacher" (the tiny teacher)',
    )
    model_revision: str | None = Field(
        None, description="hub commit, tag or branch of `model`; null: unpinned, never cached"
    )
    trust_remote_code: bool = False
    tiny: TinyModelConfig = TinyModelConfig()
    lora: LoraSettings | None = None
    # Only a later round's SFT (`rounds`) has a model before it. Left out of the dump at
    # its default, so the keys of recipes without rounds do not move.
    start: Literal["base", "previous"] = Field(
        "base",
        description="a later round: train from `model` as R1 did (base), or continue the round before's GRPO model",
    )

    @model_serializer(mode="wrap")
    def _start_only_when_set(self, handler: Any) -> dict[str, Any]:
        out = handler(self)
        if self.start == "base":
            out.pop("start", None)
        return out


class GrpoConfig(TrainSection):
    trl_config: ClassVar[str] = "GRPOConfig"
    rewards: list[str] = ["format", "json", "f1_entities", "f1_relations", "types"]
    reward_weights: list[float] | None = Field(None, description="one per reward; null: all 1")
    num_generations: int = Field(8, ge=2)
    generation_batch_size: int | None = Field(None, ge=1, description="null: batch_size (x processes)")
    max_completion_length: int = Field(256, ge=1)
    temperature: float = Field(1.0, gt=0)
    top_k: int | None = None
    loss_type: Literal["grpo", "dapo", "dr_grpo", "bnpo", "cispo", "sapo"] = "dapo"
    beta: float = Field(0.0, ge=0)
    epsilon: float = Field(0.2, gt=0)
    num_iterations: int = Field(1, ge=1)
    scale_rewards: Literal["group", "batch", "none"] = "group"
    mask_truncated_completions: bool = False
    use_vllm: bool = False
    vllm_mode: Literal["colocate", "server"] = "colocate"
    vllm_gpu_memory_utilization: float = Field(0.3, gt=0, le=1)
    limit: int | None = Field(None, ge=1, description="train on at most this many examples")
    min_relations: int = Field(0, ge=0, description="train only on examples whose gold has this many relations")
    learning_rate: float = Field(1e-6, gt=0)
    save_steps: int = Field(50, ge=1)

    @model_validator(mode="after")
    def _weights(self) -> GrpoConfig:
        if self.reward_weights is not None and len(self.reward_weights) != len(self.rewards):
            raise ValueError(
                f"reward_weights has {len(self.reward_weights)} values for {len(self.rewards)} rewards {self.rewards}"
            )
        batch = self.generation_batch_size or self.batch_size * self.gradient_accumulation_steps
        if batch % self.num_generations:
            raise ValueError(
                f"num_generations ({self.num_generations}) must divide the generation batch ({batch} = "
                "generation_batch_size, or batch_size x gradient_accumulation_steps): change one of them"
            )
        return self


class EvaluateConfig(Section):
    split: str = "test"
    limit: int | None = Field(None, ge=1, description="evaluate at most this many documents")
    constrained: bool = Field(False, description="JSON-schema constrained decoding (valid-JSON rate is then ~1)")
    max_new_tokens: int = Field(256, ge=1)
    batch_size: int = Field(16, ge=1)
    models: list[Literal["base", "sft", "grpo"]] = ["base", "sft", "grpo"]
    benchmarks: list[str] = Field([], description="interchange JSONL files also scored (skipped when missing)")
