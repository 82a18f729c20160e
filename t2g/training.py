"""What the training stages share: datasets built from rows, model loading (with
`trust_remote_code` passed explicitly), the device and bf16 choice, the tiny base model,
checkpoint folders that survive a crash (t2g/checkpoints.py), and the training log as a
table.

Plain Python over transformers/trl; the stages (t2g/stages/teacher.py, sft.py, grpo.py)
compose these helpers.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from t2g.checkpoints import checkpoint_step, mirror_callbacks, resume_from
from t2g.config import LoraSettings, SupervisedSection, TinyModelConfig, TrainSection
from t2g.graph import Graph, graph_from_obj
from t2g.progress import trainer_callback
from t2g.prompts import messages
from t2g.stage import code_version, import_closure

# Written next to a trained model: what its base was, so evaluation can score the base
# too (a "tiny" base is rebuilt from the saved tokenizer and the seed: no copy needed).
BASE_FILE = "t2g_base.json"
BASE_WEIGHTS = "t2g_base.safetensors"
TINY = "tiny"


class TrainingError(ValueError):
    """The recipe or data cannot train (not transient): the message says what to change."""


# --- device --------------------------------------------------------------------------


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def use_bf16(choice: bool | None) -> bool:
    """The recipe's choice, or (null) bf16 exactly where the hardware has it."""
    import torch

    if choice is not None:
        if choice and not (torch.cuda.is_available() and torch.cuda.is_bf16_supported()):
            raise TrainingError("bf16: true needs a GPU with bf16 support; set bf16: null or false")
        return choice
    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


# --- models --------------------------------------------------------------------------


def check_model(name: str, what: str) -> None:
    """Fail before any training when a local model path does not exist. Hub names
    (`org/name`) are left to the loader."""
    path = Path(name).expanduser()
    looks_local = name.startswith(("/", "./", "../", "~")) or path.exists()
    if looks_local and not (path / "config.json").is_file():
        reason = "does not exist" if not path.exists() else "has no config.json (not a saved model)"
        raise TrainingError(f'{what}: model path {name!r} {reason}; give a saved model folder, a hub name or "tiny"')


def load_model(name: str | Path, trust_remote_code: bool = False, revision: str | None = None):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(name), trust_remote_code=trust_remote_code, revision=revision)


def load_tokenizer(name: str | Path, trust_remote_code: bool = False, revision: str | None = None):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(name), trust_remote_code=trust_remote_code, revision=revision)
    if tokenizer.pad_token is None:  # many base models ship without one
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def build_tiny_base(out: Path, corpus: Iterable[str], tiny: TinyModelConfig, texts: Sequence[str] = ()) -> Path:
    """A tiny model whose tokenizer is trained on `corpus`, warmed up on `texts` when
    `tiny.pretrain_steps` says so; deterministic for a corpus."""
    from t2g import tiny as tiny_mod

    if (out / "config.json").is_file():
        return out  # built by an earlier (crashed) attempt: same corpus, same model
    # One folder per process: the ranks of a launched stage (t2g/launch.py) build side by
    # side, and the first to finish wins.
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tiny_mod.build_tiny(tmp, corpus, vocab_size=tiny.vocab_size, hidden_size=tiny.hidden_size,
                        layers=tiny.layers, heads=tiny.heads, seed=tiny.seed, pretrain_texts=texts,
                        pretrain_steps=tiny.pretrain_steps, pretrain_lr=tiny.pretrain_lr)  # fmt: skip
    try:
        tmp.rename(out)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (out / "config.json").is_file():
            raise
    return out


def rebuild_tiny(model_dir: Path, base: dict[str, Any]):
    """The untrained tiny base of a trained tiny model: same tokenizer, same seed, and the
    warmed-up weights when the base was warmed up (kept as BASE_WEIGHTS beside the model)."""
    from safetensors.torch import load_model as load_weights

    from t2g import tiny as tiny_mod

    sizes = base["tiny"]
    tokenizer = load_tokenizer(model_dir)
    model = tiny_mod.build_model(tokenizer, hidden_size=sizes["hidden_size"], layers=sizes["layers"],
                                 heads=sizes["heads"], seed=sizes["seed"])  # fmt: skip
    weights = Path(model_dir) / BASE_WEIGHTS
    if weights.is_file():
        load_weights(model, str(weights))
    elif sizes.get("pretrain_steps"):
        raise TrainingError(f"{model_dir} has a warmed-up tiny base but no {BASE_WEIGHTS}: retrain it")
    return model, tokenizer


def warm_base_weights(base_dir: Path, tiny: TinyModelConfig) -> Path | None:
    """What a model trained from a tiny base must carry to rebuild that base: the weights
    of a warmed-up one (evaluation scores the base too, and a warm-up is not cheap to
    redo). A model trained from such a model passes its copy on."""
    if (Path(base_dir) / BASE_WEIGHTS).is_file():
        return Path(base_dir) / BASE_WEIGHTS
    return Path(base_dir) / "model.safetensors" if tiny.pretrain_steps else None


def save_model(model, tokenizer, out: Path, base: dict[str, Any], state_dict: dict | None = None,
               base_weights: Path | None = None) -> Path:  # fmt: skip
    """A flat folder: weights, config, tokenizer, BASE_FILE and, for a warmed-up tiny base,
    BASE_WEIGHTS (no pickles). `state_dict`: whole weights gathered from sharded processes
    (t2g.distributed.save_final)."""
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, state_dict=state_dict)
    tokenizer.save_pretrained(out)
    (out / BASE_FILE).write_text(json.dumps(base, indent=1))
    if base_weights is not None:
        shutil.copyfile(base_weights, out / BASE_WEIGHTS)
    return out


def read_base(model_dir: Path) -> dict[str, Any] | None:
    path = Path(model_dir) / BASE_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def trained_to_think(model_dir: Path | None) -> bool:
    """Whether the model was trained to reason in <think>…</think> first (the SFT stage
    records it beside the base; GRPO carries the record on): it is then prompted so."""
    return model_dir is not None and bool((read_base(Path(model_dir)) or {}).get("thinking"))


def with_lora(model, lora: LoraSettings):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=lora.target_modules, task_type="CAUSAL_LM")  # fmt: skip
    return get_peft_model(model, config)


# --- datasets ------------------------------------------------------------------------


def require_columns(table: pa.Table, columns: Sequence[str], stage: str) -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise TrainingError(
            f"{stage}: the input has no column(s) {missing} (it has {table.column_names}); "
            "feed it the reason stage's output"
        )


def require_rows(n: int, stage: str, what: str) -> None:
    if n == 0:
        raise TrainingError(
            f"{stage}: no {what} to train on; loosen the filter section, add documents to collect, "
            "or check the split name"
        )


def sft_example(text: str, etypes: Sequence[str], rtypes: Sequence[str], target: str, thinking: bool = False) -> dict:
    """One prompt-completion conversational example (trl computes the loss on the completion)."""
    return {
        "prompt": messages(text, list(etypes), list(rtypes), thinking),
        "completion": [{"role": "assistant", "content": target}],
    }


def gold_target(gold: str, etypes: Sequence[str], rtypes: Sequence[str]) -> str:
    """The gold graph restricted to the requested types, as the canonical training JSON."""
    return graph_from_obj(json.loads(gold)).restricted(etypes, rtypes).to_json()


def fingerprint(*parts: Any) -> str:
    """A digest of configs and tables: names the work folder of one training run, so a
    rerun after a crash finds its checkpoints and a different run never does."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, pa.Table):
            sink = pa.BufferOutputStream()
            table = part.replace_schema_metadata(None).combine_chunks()
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            h.update(sink.getvalue().to_pybytes())
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def model_fingerprint(model_dir: Path) -> Any:
    """What identifies a model folder cheaply: the store manifest's file digests when it
    came from the store, else each file's name, size and modification time."""
    manifest = Path(model_dir) / "_manifest.json"
    if manifest.is_file():
        return json.loads(manifest.read_text()).get("files", {})
    return sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in Path(model_dir).iterdir() if p.is_file())


def work_dir(cfg: TrainSection, stage: str, module: str, *parts: Any) -> Path:
    """The checkpoint folder of one training run: named by the section, the data and the
    stage's code (that of `module`, the stage's, and all it imports: its code version), so
    a rerun after a crash resumes there, while after a code change (a new tokenizer, a new
    loss) the run starts afresh instead of resuming stale checkpoints."""
    code = code_version(*import_closure(module))
    return work_root(cfg.work_dir) / stage / fingerprint(stage, cfg.model_dump(mode="json"), code, *parts)


# Tests set this to a temporary folder (tests/conftest.py) so a run of the suite never leaves
# checkpoints in the checkout's .t2g/work, where a later `make demo` would resume them.
WORK_ROOT_ENV = "T2G_WORK_ROOT"


def work_root(work_dir: str) -> Path:
    """Where a section's `work_dir` lies: a relative one (the default `.t2g/work`) is taken
    from $T2G_WORK_ROOT when set, else from the current folder. Only the place moves: the
    folder's name still digests the section as written, so keys and names stay put."""
    path = Path(work_dir).expanduser()
    root = os.environ.get(WORK_ROOT_ENV)
    return Path(root) / path if root and not path.is_absolute() else path


# --- trainer arguments -----------------------------------------------------------------


def common_args(cfg: TrainSection, output_dir: Path) -> dict[str, Any]:
    """TrainingArguments every trl trainer here shares."""
    return dict(
        output_dir=str(output_dir),
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        warmup_steps=cfg.warmup_steps,
        lr_scheduler_type=cfg.lr_scheduler_type,
        weight_decay=cfg.weight_decay,
        gradient_checkpointing=cfg.gradient_checkpointing,
        bf16=use_bf16(cfg.bf16),
        use_cpu=not has_cuda(),
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        logging_steps=cfg.logging_steps,
        report_to="none",
        seed=cfg.seed,
        data_seed=cfg.seed,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )


def pad_multiple(cfg: SupervisedSection) -> int | None:
    """The recipe's choice; else 64 on a GPU, where every new batch length pays kernel
    selection (a 0.5B student trained at 30 examples/s with per-batch lengths, 76 with
    lengths rounded up to 64, on an H200), and none on a CPU, where padding is only work.
    A padding-free batch is one sequence: nothing to pad."""
    if cfg.padding_free:
        return None
    if cfg.pad_to_multiple_of is not None:
        return cfg.pad_to_multiple_of
    return 64 if has_cuda() else None


def sft_args(cfg: SupervisedSection, output_dir: Path):
    from trl import SFTConfig

    return SFTConfig(
        **common_args(cfg, output_dir),
        max_length=cfg.max_length,
        padding_free=cfg.padding_free,
        pad_to_multiple_of=pad_multiple(cfg),
        completion_only_loss=True,  # the prompt is given, only the answer is learnt
        dataset_num_proc=None,
        **cfg.trainer,  # any other SFTConfig field the recipe names (checked at load)
    )


def train_sft(cfg: SupervisedSection, examples: list[dict], base_dir: Path, work: Path,
              trust_remote_code: bool = False, lora: LoraSettings | None = None):  # fmt: skip
    """SFT `examples` (prompt-completion) from `base_dir`, checkpointing into `work` (and
    into the store inside `checkpoint_store`); resumes from the newest checkpoint of
    either. Returns (model, tokenizer, trainer, resumed_step)."""
    from datasets import Dataset
    from trl import SFTTrainer

    # The hub revision the recipe pins (sft.model_revision): the one its key names.
    revision = getattr(cfg, "model_revision", None)
    model = load_model(base_dir, trust_remote_code, revision)
    tokenizer = load_tokenizer(base_dir, trust_remote_code, revision)
    if lora is not None:
        model = with_lora(model, lora)
    trainer = SFTTrainer(
        model=model,
        args=sft_args(cfg, work / "checkpoints"),
        train_dataset=Dataset.from_list(examples),
        processing_class=tokenizer,
        callbacks=[
            *mirror_callbacks(work / "checkpoints", cfg.save_total_limit),
            trainer_callback(f"{work.parent.name} training"),
        ],
    )
    resume = resume_from(work / "checkpoints")
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    model = trainer.model
    if lora is not None and lora.merge:
        model = model.merge_and_unload()
    return model, tokenizer, trainer, checkpoint_step(resume)


# --- logs ----------------------------------------------------------------------------

LOG_SCHEMA = pa.schema([pa.field("step", pa.int64()), pa.field("epoch", pa.float64()),
                        pa.field("name", pa.string()), pa.field("value", pa.float64())])  # fmt: skip


def log_table(history: list[dict[str, Any]]) -> pa.Table:
    """trainer.state.log_history in long form (step, epoch, name, value): one schema
    whatever the trainer logs."""
    rows = []
    for entry in history:
        step, epoch = int(entry.get("step", 0)), float(entry.get("epoch", 0.0) or 0.0)
        for name, value in entry.items():
            if name in ("step", "epoch") or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            rows.append({"step": step, "epoch": epoch, "name": name, "value": float(value)})
    return pa.Table.from_pylist(rows, schema=LOG_SCHEMA)


def final_metrics(history: list[dict[str, Any]]) -> dict[str, float]:
    """The last logged value of the usual metrics, for the run summary."""
    out: dict[str, float] = {}
    for entry in history:
        for name in ("loss", "train_loss", "reward", "train_runtime", "train_samples_per_second"):
            value = entry.get(name)
            if isinstance(value, (int, float)) and not math.isnan(value):
                out[name] = round(float(value), 4)
    return out


def graph_json(value: str) -> str:
    """A gold graph string as canonical JSON (validates it)."""
    return Graph.model_validate(json.loads(value)).to_json()
