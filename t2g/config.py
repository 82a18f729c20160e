"""The recipe: one validated YAML file per run, one section per stage.

Every model forbids unknown keys, so a typo fails before anything runs, and the error
names the field (`filter.max_entities: Input should be ...`). `--set a.b=value` overrides
parse their value as YAML and are validated exactly like the file.
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, ClassVar, Literal, Union
from urllib.parse import urlparse

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_serializer, model_validator

from t2g.llm.registry import LabelBackend, LLMBackend, LocalBackend  # the registered LLM backends, read at validation
# Re-exported: t2g.config stays the one place recipes come from.
from t2g.recipe_input import (  # noqa: F401
    MAX_DEPTH,
    MAX_NODES,
    MAX_OVERRIDE_KEYS,
    MAX_RECIPE_BYTES,
    RecipeError,
    check_deployment_overrides,
    check_recipe_path,
    load_yaml,
    parse_override,
    read_recipe_text,
    shown,
    yaml_error,
)

TEACHER = "@teacher"  # extract.model and sft.model: the recipe's own tiny teacher (its `teacher` section)
REASONER = "@reasoner"  # reason.model: the recipe's own tiny reasoner (its `reasoner` section)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- collect -------------------------------------------------------------------------


class _Source(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)
    split: str = Field("train", pattern=r"^[A-Za-z0-9_-]+$", description="tag carried by every document")
    limit: int | None = Field(None, ge=1, description="read at most this many rows")


class FileSource(_Source):
    path: str
    text_field: str = "text"
    id_field: str | None = Field(None, description="keep the source's own id in metadata")


class JsonlSource(FileSource):
    kind: Literal["jsonl"]


class ParquetSource(FileSource):
    kind: Literal["parquet"]


class TextSource(_Source):
    """A plain-text file (one document a line) or a folder of .txt files (one each)."""

    kind: Literal["text"]
    path: str
    follow_symlinks: bool = Field(False, description="a folder's symlinks are read, if they lead inside the folder")


class HFSource(_Source):
    kind: Literal["hf"]
    dataset: str = Field(description="hub name or local path, as datasets.load_dataset takes it")
    subset: str | None = None
    hf_split: str = "train"
    text_field: str = "text"
    id_field: str | None = None
    streaming: bool = False
    data_files: list[str] | None = None
    revision: str | None = Field(None, description="hub dataset commit, tag or branch; null: unpinned, never cached")


class AnnotatedSource(_Source):
    """Interchange JSONL: text plus gold graph (and optionally requested types)."""

    kind: Literal["annotated"]
    path: str


class ToyworldSource(_Source):
    kind: Literal["toyworld"]
    n: int = Field(100, ge=0)
    seed: int = 0
    # The shape of documents (t2g.toyworld.World); the cast of names is the same whatever
    # these say, so sources with different shapes still share one world.
    max_facts: int = Field(2, ge=1, description="fact sentences per document, at most")
    distractor_rate: float = Field(0.5, ge=0, le=1, description="chance of a sentence with nothing to extract")


Source = Annotated[
    Union[JsonlSource, ParquetSource, TextSource, HFSource, AnnotatedSource, ToyworldSource],
    Field(discriminator="kind"),
]


class CollectConfig(Section):
    sources: list[Source] = Field(min_length=1)
    max_chars: int = Field(100_000, ge=1, description="longer documents are quarantined")
    near_duplicate_threshold: float | None = Field(
        0.9, gt=0, le=1, description="MinHash Jaccard estimate at or above which a document is a near-duplicate; null disables"
    )
    num_perm: int = Field(128, ge=16, le=1024)
    shingle_words: int = Field(3, ge=1, le=16)

    @model_validator(mode="after")
    def _unique_names(self) -> "CollectConfig":
        names = [s.name for s in self.sources]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"source names must be unique, repeated: {dup}")
        return self


# --- extract -------------------------------------------------------------------------


class Price(Section):
    """What a backend charges, per million tokens (any currency: the report uses the same)."""

    prompt_per_million: float = Field(0.0, ge=0)
    completion_per_million: float = Field(0.0, ge=0)


class LLMSection(Section):
    """How a stage that prompts an LLM reaches it (t2g.llm): the model, the backend's
    settings and the sampling. Shared by extract (the teacher) and reason (the reasoner)."""

    model: str | None = Field(None, description='model path or hub name (openai: the served name); extract also takes "@teacher"')
    model_revision: str | None = Field(None, description="hub commit, tag or branch of `model`; null: unpinned, never cached")
    # Accounting only (the run report's estimated cost): left out of every dump like
    # `launch`, so a new price moves no artifact key.
    price: Price | None = Field(None, exclude=True, description="per million prompt/completion tokens, for the cost estimate")
    trust_remote_code: bool = False
    max_new_tokens: int = Field(512, ge=1)
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    too_long: Literal["truncate", "skip"] = Field("truncate", description="prompts past the context: cut or skip (counted)")
    max_prompt_tokens: int | None = Field(None, ge=1, description="null: the model's context minus max_new_tokens")
    # transformers
    batch_size: int = Field(8, ge=1, description="transformers: prompts per generate call")
    device: str = Field("auto", description="transformers: auto, cpu, cuda, cuda:1, ...")
    dtype: str = Field("auto", description="transformers/vllm: auto, bfloat16, float16, float32")
    # vllm
    tensor_parallel_size: int = Field(1, ge=1)
    quantization: str | None = None
    max_model_len: int | None = Field(None, ge=16)
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    # openai-compatible servers
    base_url: str | None = None
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="environment variable holding the key: NAME_API_KEY, not a store's, cloud's or orchestrator's"
    )
    api_key_block: str | None = Field(None, description="Prefect Secret block holding the key (wins over api_key_env)")
    max_in_flight: int = Field(32, ge=1)
    timeout_s: float = Field(300.0, gt=0, description="per request")
    max_retries: int = Field(6, ge=0, description="on 429/5xx/connection errors/timeouts; a 400 is never retried")
    backoff_s: float = Field(1.0, ge=0, description="first delay, doubling, with full jitter")

    @field_validator("api_key_env")
    @classmethod
    def _a_model_server_key(cls, name: str) -> str:
        return check_api_key_env(name)


# The variable `api_key_env` names is sent, as `Authorization: Bearer <value>`, to
# `base_url`, which the recipe also names: it must be a variable exported for a model
# server and nothing else. So it has the shape NAME_API_KEY (OPENAI_API_KEY,
# TEACHER_API_KEY, VLLM_API_KEY), and is not in the namespace of a credential the worker
# holds for something else: the store (AWS_, S3_, MINIO_), the orchestrator (PREFECT_ —
# PREFECT_API_KEY is Prefect Cloud's —, POSTGRES_, PG, DASK_, RAY_), t2g itself (T2G_),
# a cloud (AZURE_, GOOGLE_, GCP_, GCLOUD_), a code host (GITHUB_, GH_) or the model hub
# (HF_, HUGGING_FACE_: HF_TOKEN also downloads gated models and can push; give a hosted
# teacher an inference-only token in its own variable, e.g. TEACHER_API_KEY).
API_KEY_ENV_PATTERN = re.compile(r"[A-Z][A-Z0-9_]*_API_KEY")
CREDENTIAL_PREFIXES = (
    "AWS_", "S3_", "MINIO_", "PREFECT_", "POSTGRES_", "PG", "DASK_", "RAY_", "T2G_",
    "AZURE_", "GOOGLE_", "GCP_", "GCLOUD_", "GITHUB_", "GH_", "HF_", "HUGGING_FACE_",
)  # fmt: skip


def check_api_key_env(name: str) -> str:
    """`name` when it may name a model server's key (see API_KEY_ENV_PATTERN); else a
    ValueError saying what to name instead."""
    denied = next((p for p in CREDENTIAL_PREFIXES if name.startswith(p)), None)
    if denied:
        raise ValueError(
            f"{shown(name)}: {denied}* variables hold the store's, the orchestrator's, a cloud's or a hub's credentials, "
            "never sent to a model server; export the model server's key as e.g. TEACHER_API_KEY"
        )
    if not API_KEY_ENV_PATTERN.fullmatch(name):
        raise ValueError(
            f"{shown(name)} is not a model server's key variable: name one like TEACHER_API_KEY "
            "(capitals, digits and _, ending in _API_KEY), exported for the model server alone"
        )
    return name


class ExtractConfig(LLMSection):
    backend: LabelBackend = "gold"
    # Types requested from documents that bring none: sampled per document from these.
    entity_types: list[str] = []
    relation_types: list[str] = []
    absent_types: int = Field(1, ge=0, description="extra types sampled per document beyond those drawn")
    seed: int = 0
    shard_size: int = Field(256, ge=1)
    splits: list[str] | None = Field(None, description="label only documents of these splits; null: all")


# --- filter --------------------------------------------------------------------------


class AugmentConfig(Section):
    variants: int = Field(1, ge=0, description="extra type-subset variants per kept example")
    keep_types: float = Field(0.6, gt=0, le=1, description="share of present types kept in a variant")
    negative_types: int = Field(1, ge=0, description="absent types added to a variant's request")
    seed: int = 0


class FilterConfig(Section):
    min_chars: int = Field(20, ge=0)
    max_chars: int = Field(20_000, ge=1)
    min_entities: int = Field(1, ge=0)
    max_entities: int = Field(50, ge=0)
    min_relations: int = Field(0, ge=0)
    max_relations: int = Field(50, ge=0)
    # What an ungrounded teacher entity (its text not in the document) costs: the whole
    # document ("drop"), or only that entity and the relations naming it ("repair"; the
    # document is kept if the rest passes every other check, counted as repaired).
    ungrounded: Literal["drop", "repair"] = "drop"
    augment: AugmentConfig = AugmentConfig()

    @model_validator(mode="after")
    def _bounds(self) -> "FilterConfig":
        for low, high in (("min_chars", "max_chars"), ("min_entities", "max_entities"), ("min_relations", "max_relations")):
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"{low} ({getattr(self, low)}) is above {high} ({getattr(self, high)})")
        return self


# --- reason --------------------------------------------------------------------------


class ReasonConfig(LLMSection):
    thinking: bool = False
    backend: LLMBackend = "transformers"
    shard_size: int = Field(64, ge=1)
    max_think_chars: int = Field(8000, ge=1, description="longer reasoning is dropped")
    max_new_tokens: int = Field(2048, ge=1)
    temperature: float = Field(0.6, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    seed: int = 0


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
    def _flags_only(self) -> "LaunchSettings":
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
        raise ValueError(f"trainer: {owned} are set by t2g from this section's own fields (or must be); set those instead")
    for name, value in fields.items():
        default = known[name].default
        if value is not None and default not in (None, dataclasses.MISSING) and not _same_kind(value, default):
            raise ValueError(f"trainer.{name}: {value!r} is not a {type(default).__name__} like trl's default {default!r}")


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
        TEACHER, description='"@teacher": continue the tiny teacher (it already copies names); "tiny": a fresh tiny base'
    )
    tiny: TinyModelConfig = TinyModelConfig()
    variants: int = Field(1, ge=0, description="sampled requests per document besides its own")
    learning_rate: float = Field(3e-3, gt=0)
    epochs: float = Field(6.0, gt=0)
    batch_size: int = Field(16, ge=1)


class SftConfig(SupervisedSection):
    model: str = Field(
        "tiny", description='a local folder or hub name, "tiny" (built from the training texts) or "@teacher" (the tiny teacher)'
    )
    model_revision: str | None = Field(None, description="hub commit, tag or branch of `model`; null: unpinned, never cached")
    trust_remote_code: bool = False
    tiny: TinyModelConfig = TinyModelConfig()
    lora: LoraSettings | None = None
    # Only a later round's SFT (`rounds`) has a model before it. Left out of the dump at
    # its default, so the keys of recipes without rounds do not move.
    start: Literal["base", "previous"] = Field(
        "base", description="a later round: train from `model` as R1 did (base), or continue the round before's GRPO model"
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
    def _weights(self) -> "GrpoConfig":
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


class SampleConfig(LLMSection):
    """Rejection sampling (t2g.stages.sample): `k` answers per labelled document from the
    round before's model, scored with the registered rewards against the teacher's label
    and checked like the filter checks labels; the best one is kept when it reaches
    `min_reward`. Runs in later rounds only (`rounds`); this section is their default."""

    model: Literal["grpo", "sft"] = Field("grpo", description="which model of the round before answers")
    backend: LocalBackend = "transformers"
    k: int = Field(4, ge=1, le=64, description="answers sampled per document")
    max_new_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.8, ge=0)
    seed: int = 0
    constrained: bool = Field(False, description="JSON-schema constrained sampling (never with thinking rows)")
    splits: list[str] | None = Field(None, description="sample documents of these splits; null: every labelled split")
    limit: int | None = Field(None, ge=1, description="sample at most this many documents (a fixed pseudo-random subset)")
    dropped: bool = Field(False, description="also sample the documents the filter dropped (filter-dropped)")
    rewards: list[str] = ["f1_entities", "f1_relations"]
    reward_weights: list[float] | None = Field(None, description="one per reward; null: all 1")
    min_reward: float = Field(0.8, ge=0, le=1, description="the weighted mean reward the best answer must reach")
    consensus: float | None = Field(
        None, gt=0, le=1, description="documents without a usable teacher label: keep the answer agreeing best "
        "with the other samples (mean reward against them) when it reaches this; null: reject them"
    )
    checks: FilterConfig | None = Field(None, description="the label checks answers must pass; null: the recipe's filter section")

    @model_validator(mode="after")
    def _sampling(self) -> "SampleConfig":
        if self.k > 1 and self.temperature == 0:
            raise ValueError(f"k={self.k} answers at temperature 0 are {self.k} copies of one: raise temperature or set k: 1")
        if self.reward_weights is not None and len(self.reward_weights) != len(self.rewards):
            raise ValueError(f"reward_weights has {len(self.reward_weights)} values for {len(self.rewards)} rewards {self.rewards}")
        if self.reward_weights is not None and sum(self.reward_weights) <= 0:
            raise ValueError("reward_weights must have a positive sum")
        return self


class RoundConfig(Section):
    """One round after the first: overrides of the round before's sections (the recipe's
    own for round 2), merged key by key like `extends`. `{}` repeats the round before."""

    sample: dict[str, Any] = {}
    sft: dict[str, Any] = {}
    grpo: dict[str, Any] = {}


MAX_ROUNDS = 16  # rounds after the first


def section_fields(model: BaseModel) -> dict[str, Any]:
    """A section's field values as plain data, every field included (also those left out
    of dumps, such as `launch`), so overrides merge into it and validate back."""

    def plain(value: Any) -> Any:
        if isinstance(value, BaseModel):
            return section_fields(value)
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return {name: plain(getattr(model, name)) for name in type(model).model_fields}


def merged_round(base: Section, overrides: dict[str, Any]) -> Section:
    """`base` with a round's `overrides` merged over it, validated as `base`'s class."""
    return base if not overrides else type(base).model_validate(merge_sections(section_fields(base), overrides))


class EvaluateConfig(Section):
    split: str = "test"
    limit: int | None = Field(None, ge=1, description="evaluate at most this many documents")
    constrained: bool = Field(False, description="JSON-schema constrained decoding (valid-JSON rate is then ~1)")
    max_new_tokens: int = Field(256, ge=1)
    batch_size: int = Field(16, ge=1)
    models: list[Literal["base", "sft", "grpo"]] = ["base", "sft", "grpo"]
    benchmarks: list[str] = Field([], description="interchange JSONL files also scored (skipped when missing)")


# --- orchestration -------------------------------------------------------------------


class RetryConfig(Section):
    attempts: int = Field(3, ge=0, description="retries after the first try, transient errors only")
    backoff_s: float = Field(2.0, ge=0, description="first delay; doubles each retry, with jitter")


class WorkPools(Section):
    """Prefect work pools (deployments/prefect.yaml, `t2g stack up`): CPU stages run on
    `cpu`, GPU stages on `gpu`. The embedded stack uses one process pool for both."""

    cpu: str = Field("t2g-local", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    gpu: str = Field("t2g-local", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class OrchestrationConfig(Section):
    """How stages are mapped onto Prefect: task runner for sharded CPU stages, pools, GPU slots."""

    task_runner: Literal["threads", "dask", "ray"] = Field(
        "threads", description="runs the shards of sharded CPU stages: threads, or a Dask/Ray cluster (extras)"
    )
    max_workers: int = Field(2, ge=1, description="threads, or local Dask/Ray workers when no address is given")
    address: str | None = Field(None, description="an existing Dask scheduler or Ray cluster; null: start a local one")
    filter_shard_size: int | None = Field(
        None, ge=1, description="rows per filter shard, mapped over the task runner; null: filter runs as one task"
    )
    gpu_stages: list[str] = Field(
        [], description="stages that hold a slot of the global concurrency limit `gpu_limit` while they run (strict)"
    )
    gpu_limit: str = Field("gpu", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="global concurrency limit name")
    gpu_slots: int = Field(1, ge=1, description="slots of that limit `t2g stack up` creates (GPUs on the host)")
    pools: WorkPools = WorkPools()


class Recipe(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)
    description: str = ""
    store: str = "file://.t2g/store"
    # The LLM response cache (t2g.llm.cache): a store URI whose `_llm_cache/` holds it;
    # null: the recipe's own store. Recipes that name one store share one cache.
    llm_cache: str | None = Field(None, description="store URI of the LLM response cache; null: the recipe's store")
    collect: CollectConfig
    extract: ExtractConfig = ExtractConfig()
    filter: FilterConfig = FilterConfig()
    reason: ReasonConfig = ReasonConfig()
    teacher: TeacherConfig | None = None
    reasoner: ReasonerConfig | None = None
    sft: SftConfig = SftConfig()
    grpo: GrpoConfig = GrpoConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    # Rejection sampling and further rounds (t2g.rounds): `sample` is every later round's
    # default; each entry of `rounds` is one more round (sample, sft, grpo) after the first.
    sample: SampleConfig = SampleConfig()
    rounds: list[RoundConfig] = Field([], max_length=MAX_ROUNDS, description="rounds after the first, each overriding the one before")
    retries: RetryConfig = RetryConfig()
    orchestration: OrchestrationConfig = OrchestrationConfig()

    def round_section(self, name: str, round: int) -> Section:
        """Section `name` (sample, sft or grpo) as round `round` (2, 3, …) runs it: the
        round before's (round 1: the recipe's own) with this round's overrides merged over
        it. A sample section without `checks` takes the recipe's filter section."""
        if not 2 <= round <= len(self.rounds) + 1:
            raise ValueError(f"round {round}: this recipe has rounds 1 to {len(self.rounds) + 1}")
        base = getattr(self, name) if round == 2 else self.round_section(name, round - 1)
        merged = merged_round(base, getattr(self.rounds[round - 2], name))
        if isinstance(merged, SampleConfig) and merged.checks is None:
            merged = merged.model_copy(update={"checks": self.filter})
        return merged

    @field_validator("store")
    @classmethod
    def _store_inside_its_root(cls, store: str) -> str:
        return check_store_uri(store)

    @field_validator("llm_cache")
    @classmethod
    def _cache_inside_its_root(cls, uri: str | None) -> str | None:
        return None if uri is None else check_store_uri(uri)

    @model_validator(mode="after")
    def _rounds_valid(self) -> "Recipe":
        if self.sft.start != "base":
            raise ValueError('sft.start: "previous" means the round before\'s model; set it in a later round (rounds[i].sft)')
        for r in range(2, len(self.rounds) + 2):
            for name in RoundConfig.model_fields:
                try:
                    self.round_section(name, r)
                except ValidationError as exc:
                    err = exc.errors()[0]
                    where = ".".join(str(p) for p in err["loc"])
                    raise ValueError(f"rounds.{r - 2}.{name}{'.' + where if where else ''}: {err['msg']} (round {r})") from None
        return self

    @model_validator(mode="after")
    def _evaluate_split_held_out(self) -> "Recipe":
        # Whatever extract labels flows into SFT and GRPO; labelling the evaluate split
        # would train the student on its own test documents and inflate every score.
        held_out = self.evaluate.split
        labelled = self.extract.splits
        if any(s.split == held_out for s in self.collect.sources) and (labelled is None or held_out in labelled):
            others = sorted({s.split for s in self.collect.sources} - {held_out})
            raise ValueError(
                f"extract.splits {'labels every split' if labelled is None else labelled}, so the student would "
                f"train on the evaluate split {held_out!r}: set extract.splits to the training splits"
                + (f" (e.g. {others})" if others else "")
            )
        if self.teacher is None and TEACHER in (self.extract.model, self.sft.model):
            which = "extract.model" if self.extract.model == TEACHER else "sft.model"
            raise ValueError(f'{which} is "{TEACHER}" but the recipe has no teacher section: add one (see configs/tiny.yaml)')
        if self.reasoner is not None and self.reasoner.model == TEACHER and self.teacher is None:
            raise ValueError(f'reasoner.model is "{TEACHER}" but the recipe has no teacher section: add one, or set reasoner.model: tiny')
        if self.reason.thinking and self.reason.model == REASONER and self.reasoner is None:
            raise ValueError(f'reason.model is "{REASONER}" but the recipe has no reasoner section: add one (see configs/tiny-think.yaml)')
        for which, section in (("teacher", self.teacher), ("reasoner", self.reasoner)):
            if section is not None and section.split == held_out:
                raise ValueError(
                    f"{which}.split is the evaluate split {held_out!r}: the {which} would learn the test documents' "
                    f"gold; give the {which} its own split (e.g. seed)"
                )
        return self


MAX_EXTENDS = 16  # files in one extends chain


def load_recipe(
    path: str | Path, overrides: list[str] | None = None, store: str | None = None, now: datetime.datetime | None = None
) -> Recipe:
    """Read, override and validate a recipe. Raises RecipeError naming file and field."""
    return validate_recipe(read_recipe(path, overrides, store, now), source=str(path))


def read_recipe(
    path: str | Path, overrides: list[str] | None = None, store: str | None = None, now: datetime.datetime | None = None
) -> dict[str, Any]:
    """The recipe's raw mapping: `extends` merged, `--set` overrides and the store applied,
    not yet validated (t2g.kg.config validates it as a graph recipe when it has one)."""
    data = _read_recipe(Path(path), ())
    for item in overrides or []:
        apply_override(data, item)
    if store:
        data["store"] = store
    if isinstance(data.get("store"), str):
        # Before validation, so the store check sees the URI the run will use.
        data["store"] = dated_store(data["store"], now)
    return data


def _read_recipe(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    """The raw mapping of a recipe file, with `extends: OTHER.yaml` (a path relative to
    the file) resolved: the file's sections are merged over OTHER's, so a variant recipe
    states only what differs."""
    name = f"recipe {path}" + (f" (extended by {chain[-1]})" if chain else "")
    if len(chain) >= MAX_EXTENDS:
        raise RecipeError(f"{name}: more than {MAX_EXTENDS} files in one extends chain; extend a file nearer the base")
    try:
        data = load_yaml(read_recipe_text(path, name))
    except yaml.YAMLError as exc:
        raise yaml_error(name, exc) from None
    if not isinstance(data, dict):
        raise RecipeError(f"{name} must be a mapping of sections, got {type(data).__name__}")
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str) or not parent.strip():
        # The type only: the value is that file's text, and the file may not be a recipe.
        raise RecipeError(f"{name}: extends must be the path of another recipe file, got a {type(parent).__name__}")
    parent_path = path.parent / parent
    if parent_path.resolve() in {p.resolve() for p in (*chain, path)}:
        raise RecipeError(f"{name}: extends {parent} leads back to itself")
    return merge_sections(_read_recipe(parent_path, (*chain, path)), data)


def merge_sections(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` merged into `base`: mappings merge key by key, anything else (a list, a
    scalar, null) replaces. Neither input is modified."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_sections(out[key], value)
        else:
            out[key] = value
    return out


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def dated_store(store: str, now: datetime.datetime | None = None) -> str:
    """`{date}` in a store URI becomes today's UTC date (YYYY-MM-DD): the nightly
    regeneration deployment writes each night under a fresh prefix. A run reads the
    clock once, when its recipe is resolved, so a run across midnight stays in one prefix."""
    if "{date}" not in store:
        return store
    return store.replace("{date}", (now or utc_now()).strftime("%Y-%m-%d"))


# Lines of a validation error: a file with thousands of unknown keys gets the first few.
MAX_ERRORS_SHOWN = 10


def validate_recipe(data: dict[str, Any], source: str = "recipe", model: type[Recipe] | None = None) -> Recipe:
    """The Recipe (or `model`, a subclass) of `data`; a RecipeError names each wrong field,
    in a bounded excerpt (a key or a value quoted in it is cut to a few dozen characters)."""
    try:
        return (model or Recipe).model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        lines = []
        for err in errors[:MAX_ERRORS_SHOWN]:
            where = shown(".".join(str(p) for p in err["loc"])) or "(top level)"
            lines.append(f"  {where}: {shown(err['msg'], 200)}")
        if len(errors) > MAX_ERRORS_SHOWN:
            lines.append(f"  … and {len(errors) - MAX_ERRORS_SHOWN} more")
        raise RecipeError(f"{source} is not a valid recipe:\n" + "\n".join(lines)) from None


def check_store_uri(store: str) -> str:
    """`store` when t2g.store.Store can open it without leaving the root it names:
    file://DIR (or a bare path) or s3://bucket/prefix, with no `..` segment (nor `.` in an
    S3 prefix, which Store refuses too). Checked at load, so `t2g run` fails before Prefect
    starts. Raises ValueError saying what to change."""
    parsed = urlparse(store)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"store {store!r} names no bucket: use s3://bucket/prefix")
        if any(seg in (".", "..") for seg in parsed.path.split("/")):
            raise ValueError(f"store {store!r}: an S3 prefix may not contain '.' or '..' segments")
    elif parsed.scheme in ("file", ""):
        if parsed.scheme == "file" and not store.startswith("file://"):
            raise ValueError(f"store {store!r}: write file://DIR")
        path = store.removeprefix("file://")
        if not path:
            raise ValueError(f"store {store!r} names no folder: use file://DIR")
        if ".." in PurePosixPath(path).parts:
            raise ValueError(f"store {store!r}: a '..' segment leaves the folder it names; give the folder itself")
    else:
        raise ValueError(f"store {store!r}: unknown scheme {parsed.scheme!r}; use file://DIR or s3://bucket/prefix")
    return store


def apply_override(data: dict[str, Any], item: str) -> None:
    """Apply `section.key=value` (value parsed as YAML) to a raw recipe mapping. Raises
    only RecipeError, naming the field and not echoing the value (it may be huge)."""
    keys, value = parse_override(item)
    field = _shown(".".join(keys))
    node: Any = data
    for i, key in enumerate(keys[:-1]):
        if isinstance(node, list):
            node = node[_index(node, key, keys[: i + 1])]
            continue
        if not isinstance(node, dict):
            raise RecipeError(f"override {field}: {_shown('.'.join(keys[:i]))} is not a section")
        node = node.setdefault(key, {})
    last = keys[-1]
    if isinstance(node, list):
        node[_index(node, last, keys)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise RecipeError(f"override {field}: {_shown('.'.join(keys[:-1]))} is not a section")


_shown = shown


def _index(node: list, key: str, keys: list[str]) -> int:
    # ASCII digits only: str.isdigit() also accepts "²", which int() then refuses.
    if not re.fullmatch(r"-?[0-9]+", key) or not -len(node) <= int(key) < len(node):
        raise RecipeError(f"override {_shown('.'.join(keys))}: not an index of a {len(node)}-item list")
    return int(key)

