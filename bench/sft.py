"""SFT throughput: t2g's SFT against a seed-style SFT, same model, data and batch size.

- t2g: prompt-completion examples, loss on the completion only, each batch padded to its
  own longest example (t2g.training.sft_args, what the sft stage runs).
- seed-style (open-r1-text2graph): the whole chat as one text, every example padded to
  `max_length`, loss on every token, prompt included.

Both train the same tiny model (t2g.tiny defaults, ~1.3M parameters) on the same
toy-world examples for the same number of steps; the figure is training examples per
second (trl's train_samples_per_second) and the ratio.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

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


def _examples(n: int) -> list[dict]:
    out = []
    for doc in toyworld.generate(n, seed=3):
        graph = Graph.model_validate({"entities": doc["entities"], "relations": doc["relations"]}).to_json()
        out.append(sft_example(doc["text"], doc["entity_types"], doc["relation_types"], graph))
    return out


def _train(model_dir: Path, dataset: list[dict], args, steps: int, batch: int) -> dict[str, float]:
    from datasets import Dataset
    from trl import SFTTrainer

    trainer = SFTTrainer(model=load_model(model_dir), args=args, train_dataset=Dataset.from_list(dataset),
                         processing_class=load_tokenizer(model_dir))  # fmt: skip
    started = time.perf_counter()
    metrics = trainer.train().metrics
    return {"examples_per_s": round(steps * batch / (time.perf_counter() - started), 2),
            "trl_samples_per_s": metrics.get("train_samples_per_second")}  # fmt: skip


def run(steps: int = STEPS, batch: int = BATCH, smoke: bool = False) -> dict[str, Any]:
    """`make bench` runs the defaults; bench.gpu_train runs more steps, which a GPU needs
    before its start-up cost stops dominating the figure."""
    n, max_length = N, MAX_LENGTH
    if smoke:
        n, steps, batch, max_length = SMOKE["n"], SMOKE["steps"], SMOKE["batch"], SMOKE["max_length"]
    exs = _examples(n)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cfg = SftConfig(max_steps=steps, batch_size=batch, learning_rate=1e-3, save_steps=10_000,
                        logging_steps=steps, max_length=max_length, work_dir=str(tmp))  # fmt: skip
        corpus = (m["content"] for ex in exs for m in ex["prompt"] + ex["completion"])
        model_dir = build_tiny_base(tmp / "base", corpus, cfg.tiny)

        if has_cuda():  # the first trainer pays CUDA's start-up (context, kernels): not throughput
            warm = cfg.model_copy(update={"max_steps": 5, "logging_steps": 5})
            _train(model_dir, exs, sft_args(warm, tmp / "warm"), 5, batch)
        ours = _train(model_dir, exs, sft_args(cfg, tmp / "ours"), steps, batch)

        tokenizer = load_tokenizer(model_dir)
        texts = [{"text": tokenizer.apply_chat_template(ex["prompt"] + ex["completion"], tokenize=False)} for ex in exs]
        seed_args = sft_args(cfg, tmp / "seed")
        seed_args.completion_only_loss = False  # loss on all tokens
        seed_args.pad_to_multiple_of = max_length  # every example padded to max_length
        seed = _train(model_dir, texts, seed_args, steps, batch)
        lengths = [len(tokenizer(t["text"], add_special_tokens=False)["input_ids"]) for t in texts]
    return {
        "examples": n,
        "steps": steps,
        "batch_size": batch,
        "max_length": max_length,
        "mean_tokens_per_example": round(sum(lengths) / len(lengths), 1),
        "t2g": ours,
        "seed_style": seed,
        "speedup": round(ours["examples_per_s"] / seed["examples_per_s"], 2),
    }
