"""SFT throughput: t2g's SFT against a seed-style SFT, same model, data and batch size.

- t2g: prompt-completion examples, loss on the completion only, each batch padded to its
  own longest example (t2g.training.sft_args, what the sft stage runs).
- seed-style (open-r1-text2graph): the whole chat as one text, every example padded to
  `max_length`, loss on every token, prompt included.

Both train the same tiny model (t2g.tiny defaults, ~1.3M parameters; bench.gpu_real passes
its real-size student instead) on the same toy-world examples for the same number of
steps; the figure is training examples per second (trl's train_samples_per_second) and the
ratio, and `steady_*` the same over steps 2..N (the first pays start-up).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_utils import SaveStrategy

from t2g import toyworld
from t2g.config import SftConfig
from t2g.graph import Graph
from t2g.training import build_tiny_base, has_cuda, load_model, load_tokenizer, sft_args, sft_example

N = 256
STEPS = 12
BATCH = 8
MAX_LENGTH = 1024  # the seed pads to 4,096; 1,024 is kinder to a CPU and still fair
# Smoke: a check that both trainers still run, not a figure.
SMOKE = {"n": 16, "steps": 2, "batch": 4, "max_length": 512}  # 512: no example truncated to nothing


def toy_examples(n: int) -> list[dict]:
    out = []
    for doc in toyworld.generate(n, seed=3):
        graph = Graph.model_validate({"entities": doc["entities"], "relations": doc["relations"]}).to_json()
        out.append(sft_example(doc["text"], doc["entity_types"], doc["relation_types"], graph))
    return out


class StepClock(TrainerCallback):
    """When each optimizer step ended (GPU work finished), from the start of training: a
    steady-state rate leaves out the first step, which pays CUDA start-up, kernel
    selection and the trainer's own set-up."""

    def __init__(self):
        self.ends: list[float] = []

    def on_train_begin(self, args, state, control, **kwargs):
        self.ends = [sync_now()]

    def on_step_end(self, args, state, control, **kwargs):
        self.ends.append(sync_now())

    def steps(self) -> list[float]:
        """Seconds each step took."""
        return [b - a for a, b in zip(self.ends, self.ends[1:])]


def sync_now() -> float:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter()


def timed_train(model_dir: Path, dataset: list[dict], args, steps: int, batch: int) -> dict[str, Any]:
    from datasets import Dataset
    from trl import SFTTrainer

    clock = StepClock()
    args.save_strategy = SaveStrategy.NO  # the checkpoint trl writes at the last step is disk time, not training
    trainer = SFTTrainer(model=load_model(model_dir), args=args, train_dataset=Dataset.from_list(dataset),
                         processing_class=load_tokenizer(model_dir), callbacks=[clock])  # fmt: skip
    started = time.perf_counter()
    metrics = trainer.train().metrics
    out = {"examples_per_s": round(steps * batch / (time.perf_counter() - started), 2),
           "trl_samples_per_s": metrics.get("train_samples_per_second"),
           "param_dtype": str(next(trainer.model.parameters()).dtype).removeprefix("torch.")}  # fmt: skip
    later = clock.steps()[1:]
    if later:  # steps 2..N: what a long run settles at
        out["steady_examples_per_s"] = round(len(later) * batch / sum(later), 2)
    return out


def run(steps: int = STEPS, batch: int = BATCH, smoke: bool = False, model_dir: Path | None = None,
        n: int = N, max_length: int = MAX_LENGTH, warmup_steps: int = 5) -> dict[str, Any]:  # fmt: skip
    """`make bench` runs the defaults on the tiny model built here; bench.gpu_train runs
    more steps, which a GPU needs before its start-up cost stops dominating the figure;
    bench.gpu_real passes its real-size student as `model_dir`."""
    if smoke:
        n, steps, batch, max_length = SMOKE["n"], SMOKE["steps"], SMOKE["batch"], SMOKE["max_length"]
    exs = toy_examples(n)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cfg = SftConfig(max_steps=steps, batch_size=batch, learning_rate=1e-3, save_steps=10_000,
                        logging_steps=steps, max_length=max_length, work_dir=str(tmp))  # fmt: skip
        if model_dir is None:
            corpus = (m["content"] for ex in exs for m in ex["prompt"] + ex["completion"])
            model_dir = build_tiny_base(tmp / "base", corpus, cfg.tiny)

        if has_cuda() and warmup_steps:  # the first trainer pays CUDA's start-up (context, kernels): not throughput
            warm = cfg.model_copy(update={"max_steps": warmup_steps, "logging_steps": warmup_steps})
            timed_train(model_dir, exs, sft_args(warm, tmp / "warm"), warmup_steps, batch)
        ours = timed_train(model_dir, exs, sft_args(cfg, tmp / "ours"), steps, batch)

        tokenizer = load_tokenizer(model_dir)
        texts = [{"text": tokenizer.apply_chat_template(ex["prompt"] + ex["completion"], tokenize=False)} for ex in exs]
        seed_args = sft_args(cfg, tmp / "seed")
        seed_args.completion_only_loss = False  # loss on all tokens
        seed_args.pad_to_multiple_of = max_length  # every example padded to max_length
        seed = timed_train(model_dir, texts, seed_args, steps, batch)
        lengths = [len(tokenizer(t["text"], add_special_tokens=False)["input_ids"]) for t in texts]
    figs = {
        "examples": n,
        "steps": steps,
        "batch_size": batch,
        "max_length": max_length,
        "mean_tokens_per_example": round(sum(lengths) / len(lengths), 1),
        "t2g": ours,
        "seed_style": seed,
        "speedup": round(ours["examples_per_s"] / seed["examples_per_s"], 2),
    }
    if "steady_examples_per_s" in ours and "steady_examples_per_s" in seed:
        figs["steady_speedup"] = round(ours["steady_examples_per_s"] / seed["steady_examples_per_s"], 2)
    return figs
