"""A real-size student on a GPU: Qwen2.5-0.5B's architecture (24 layers, hidden 896, ~358M
parameters outside the embeddings) with random weights and the tiny tokenizer trained on
toy-world text, so nothing is downloaded. The tiny model (~1M parameters) leaves a GPU idle
and measures launch overhead; this one makes the GPU work as a real student would.

Driven by bench/gpu_real.sh, one process per part (each has its own time limit); every
part adds its figures under `gpu_real` in bench/results.json (T2G_BENCH_RESULTS: another
file). Not in bench/__main__.BENCHMARKS: CI has no GPU.

    python -m bench.gpu_real build DIR [--small]   # tokenizer + random model, save_pretrained
    python -m bench.gpu_real sft DIR [--small]     # examples/s, t2g vs seed-style SFT
    python -m bench.gpu_real grpo DIR [--small]    # seconds per GRPO step (t2g's grpo stage args)
    python -m bench.gpu_real teacher DIR [--small] # tokens/s, t2g's transformers backend vs seed-style

`--small`: a 2-layer, hidden-64 model and a few steps, to check the wiring on a CPU.
With random weights every completion is noise: fine for timing. Each part records the
completion lengths (and how many ran to the token limit), since tokens/s from generations
that stop early is not comparable with tokens/s from ones that run to the limit.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from bench.__main__ import RESULTS, load_results
from bench.lockfile import installed_against
from bench.sft import StepClock, sync_now, toy_examples
from bench.sft import run as run_sft
from t2g import toyworld
from t2g.graph import Graph, json_schema, parse_completion
from t2g.prompts import messages

KEY = "gpu_real"
SEED = 0

# Qwen2.5-0.5B's config.json, less the vocabulary (the tiny tokenizer's instead).
SHAPE_05B = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, max_position_embeddings=32768, rope_theta=1e6, rms_norm_eps=1e-6)  # fmt: skip
SHAPE_SMALL = {**SHAPE_05B, "hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 2,
               "num_attention_heads": 2, "num_key_value_heads": 1}  # fmt: skip

# Per part: the H200 settings (sized to the budgets in gpu_real.sh) and the CPU smoke's.
SETTINGS = {
    "sft": {"full": dict(n=256, steps=30, batch=8, max_length=1024, warmup_steps=5),
            "small": dict(n=16, steps=3, batch=4, max_length=512, warmup_steps=0)},
    # 8 prompts x 8 generations: one generation batch per optimizer step, as the grpo
    # stage runs it (batch_size counts completions); step 1 is the untimed warm-up.
    "grpo": {"full": dict(prompts=8, num_generations=8, max_completion_length=200, steps=6),
             "small": dict(prompts=2, num_generations=4, max_completion_length=24, steps=3)},
    # batch_size and max_new_tokens as configs/tiny.yaml's extract section.
    "teacher": {"full": dict(n=64, max_new_tokens=192, batch_size=32, seed_batch=8),
                "small": dict(n=8, max_new_tokens=24, batch_size=4, seed_batch=2)},
}  # fmt: skip


def results_path() -> Path:
    return Path(os.environ.get("T2G_BENCH_RESULTS") or RESULTS)


def save(part: str, figs: dict[str, Any], fresh: bool = False) -> None:
    """Merge `figs` under gpu_real.<part> (other keys kept; `fresh`: drop the section's
    figures from an earlier run, so one run's parts are never mixed with another's)."""
    import transformers
    import trl

    path = results_path()
    results = load_results(path)
    section = {} if fresh else results.get(KEY, {})
    section[part] = figs
    section.update(torch=torch.__version__, transformers=transformers.__version__, trl=trl.__version__,
                   cuda=torch.cuda.is_available(), device=_device_name(), **installed_against())  # fmt: skip
    results[KEY] = section
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    print(json.dumps({part: figs}, indent=2), flush=True)


def _device_name() -> str:
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def _dtype() -> torch.dtype:
    """bf16 on a GPU (Qwen2.5-0.5B's checkpoint is bf16, so t2g loads a real one so too);
    fp32 on a CPU, where bf16 buys nothing."""
    return torch.bfloat16 if torch.cuda.is_available() else torch.float32


# --- the student ---------------------------------------------------------------------


def student_config(vocab_size: int, pad_id: int, eos_id: int, small: bool = False):
    from transformers import Qwen2Config

    return Qwen2Config(vocab_size=vocab_size, tie_word_embeddings=True, use_sliding_window=False,
                       pad_token_id=pad_id, eos_token_id=eos_id, bos_token_id=None,
                       **(SHAPE_SMALL if small else SHAPE_05B))  # fmt: skip


def parameters(model: torch.nn.Module) -> dict[str, int]:
    from t2g.tiny import parameter_count

    total = parameter_count(model)
    return {"parameters": total, "non_embedding_parameters": total - model.get_input_embeddings().weight.numel()}


def build(out: Path, small: bool) -> dict[str, Any]:
    """The tiny tokenizer, trained as the sft stage trains a tiny base's (on its examples'
    prompts and answers), and a random Qwen2 of the 0.5B shape sized to it; saved like a
    hub checkpoint so t2g's loaders read it by path."""
    from transformers import GenerationConfig, Qwen2ForCausalLM

    from t2g.config import TinyModelConfig
    from t2g.stages.sft import tokenizer_corpus
    from t2g.tiny import build_tokenizer

    tokenizer = build_tokenizer(tokenizer_corpus(toy_examples(512)), vocab_size=TinyModelConfig().vocab_size)
    config = student_config(len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id, small)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.random.fork_rng(devices=[]), torch.device(device):  # initialised on the GPU: seconds, not a minute
        torch.manual_seed(SEED)
        model = Qwen2ForCausalLM(config).to(_dtype())
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {"shape": "small" if small else "qwen2.5-0.5b", **(SHAPE_SMALL if small else SHAPE_05B), "vocab_size": len(tokenizer),
            "dtype": str(_dtype()).removeprefix("torch."), **parameters(model)}  # fmt: skip


def _model_info(model_dir: Path) -> dict[str, Any]:
    cfg = json.loads((model_dir / "config.json").read_text())
    return {k: cfg.get(k) for k in ("hidden_size", "num_hidden_layers", "vocab_size")}


# --- a. SFT --------------------------------------------------------------------------


def sft(model_dir: Path, small: bool) -> dict[str, Any]:
    s = SETTINGS["sft"]["small" if small else "full"]
    figs = run_sft(model_dir=model_dir, **s)
    return {**figs, "warmup_steps": s["warmup_steps"], "model": _model_info(model_dir),
            "note": "t2g: prompt-completion, loss on the completion, per-batch padding (t2g.training.sft_args); "
                    "seed-style: whole chat as text, padded to max_length, loss on all tokens. "
                    "steady_*: steps 2..N; trainer bf16 = t2g's default on the hardware"}  # fmt: skip


def sft_why(model_dir: Path, small: bool) -> dict[str, Any]:
    """Where t2g's SFT loses to the padded seed-style on a GPU: t2g's own args with one
    field changed at a time, each timed as `sft` times both sides (after a warm-up)."""
    from bench.sft import timed_train
    from t2g.config import SftConfig
    from t2g.training import load_tokenizer, sft_args

    s = SETTINGS["sft"]["small" if small else "full"]
    exs = toy_examples(s["n"])
    tokenizer = load_tokenizer(model_dir)
    texts = [{"text": tokenizer.apply_chat_template(ex["prompt"] + ex["completion"], tokenize=False)} for ex in exs]
    variants = {
        "t2g": ({}, exs),
        "pad_to_64": ({"pad_to_multiple_of": 64}, exs),
        "pad_to_max_length": ({"pad_to_multiple_of": s["max_length"]}, exs),
        "loss_on_all_tokens": ({"completion_only_loss": False}, exs),
        "text_dynamic_padding": ({"completion_only_loss": False}, texts),  # the seed's data, t2g's padding
        "seed_style": ({"completion_only_loss": False, "pad_to_multiple_of": s["max_length"]}, texts),
    }
    out: dict[str, Any] = {"steps": s["steps"], "batch_size": s["batch"], "max_length": s["max_length"]}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = SftConfig(max_steps=s["steps"], batch_size=s["batch"], learning_rate=1e-3, save_steps=10_000,
                        logging_steps=s["steps"], max_length=s["max_length"], work_dir=tmp)  # fmt: skip
        if s["warmup_steps"]:
            warm = cfg.model_copy(update={"max_steps": s["warmup_steps"], "logging_steps": s["warmup_steps"]})
            timed_train(model_dir, exs, sft_args(warm, Path(tmp) / "warm"), s["warmup_steps"], s["batch"])
        for name, (fields, data) in variants.items():
            args = sft_args(cfg, Path(tmp) / name)
            for k, v in fields.items():
                setattr(args, k, v)
            out[name] = timed_train(model_dir, data, args, s["steps"], s["batch"])
            print(name, out[name], flush=True)
    return out


# --- b. GRPO -------------------------------------------------------------------------


def grpo(model_dir: Path, small: bool) -> dict[str, Any]:
    """GRPO steps built as the grpo stage builds its trainer (grpo_args, reward_funcs,
    grpo_rows, t2g's loaders), with a step clock and a generation timer added."""
    import pyarrow as pa
    from datasets import Dataset
    from transformers.trainer_utils import SaveStrategy
    from trl import GRPOTrainer

    from t2g.config import GrpoConfig
    from t2g.rewards import reward_funcs
    from t2g.stages.grpo import grpo_args, grpo_rows
    from t2g.training import load_model, load_tokenizer

    s = SETTINGS["grpo"]["small" if small else "full"]
    docs = toyworld.generate(s["prompts"] * s["steps"], seed=5)
    table = pa.Table.from_pylist([{"text": d["text"], "entity_types": d["entity_types"], "relation_types": d["relation_types"],
                                   "graph": Graph.model_validate({"entities": d["entities"], "relations": d["relations"]}).to_json()}
                                  for d in docs])  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        cfg = GrpoConfig(max_steps=s["steps"], batch_size=s["prompts"] * s["num_generations"], num_generations=s["num_generations"],
                         max_completion_length=s["max_completion_length"], logging_steps=1, save_steps=10_000, work_dir=tmp)  # fmt: skip
        args = grpo_args(cfg, Path(tmp) / "checkpoints")
        args.save_strategy = SaveStrategy.NO  # a 2 GB checkpoint at the last step: disk time, not GRPO
        clock = StepClock()
        trainer = GRPOTrainer(model=load_model(model_dir), reward_funcs=reward_funcs(cfg.rewards), args=args,
                              train_dataset=Dataset.from_list(grpo_rows(table)), processing_class=load_tokenizer(model_dir),
                              callbacks=[clock])  # fmt: skip
        generations = _time_generation(trainer)
        trainer.train()
    steps = clock.steps()
    timed = steps[1:]  # step 1 is the warm-up: CUDA start-up, first kernels, the trainer's set-up
    gen = [g for g in generations if g["step"] >= 1]
    logged = [e for e in trainer.state.log_history if "completions/mean_length" in e]
    figs: dict[str, Any] = {
        **s,
        "completions_per_step": s["prompts"] * s["num_generations"],
        "timed_steps": len(timed),
        "seconds_per_step": round(sum(timed) / len(timed), 3) if timed else None,
        "step_seconds": [round(t, 3) for t in steps],
        "param_dtype": str(next(trainer.model.parameters()).dtype).removeprefix("torch."),
        "bf16": trainer.args.bf16,
        "rewards": cfg.rewards,
        "temperature": cfg.temperature,
        "loss_type": cfg.loss_type,
        "model": _model_info(model_dir),
    }
    if gen:  # the generation timer found trl's generation method
        tokens, seconds = sum(g["tokens"] for g in gen), sum(g["seconds"] for g in gen)
        figs.update(generation_tokens_per_s=round(tokens / seconds, 1), generation_seconds_per_step=round(seconds / len(gen), 3),
                    generation_share=round(seconds / sum(timed), 3) if timed else None,
                    mean_completion_tokens=round(tokens / sum(g["completions"] for g in gen), 1))  # fmt: skip
    if logged:  # trl's own: completion length (EOS included) and the share cut at max_completion_length
        figs["trl_mean_length"] = round(sum(e["completions/mean_length"] for e in logged) / len(logged), 1)
        figs["trl_clipped_ratio"] = round(sum(e.get("completions/clipped_ratio", 0.0) for e in logged) / len(logged), 3)
    return figs


def _time_generation(trainer) -> list[dict[str, Any]]:
    """Wrap trl's generation (GRPOTrainer._generate_single_turn in trl 1.x: completion ids
    per prompt) to time it and count its tokens. Without that method, no figures."""
    records: list[dict[str, Any]] = []
    inner = getattr(trainer, "_generate_single_turn", None)
    if inner is None:
        return records

    def timed(*args, **kwargs):
        started = sync_now()
        out = inner(*args, **kwargs)
        ids = out[0]
        records.append({"step": trainer.state.global_step, "seconds": sync_now() - started,
                        "tokens": sum(len(c) for c in ids), "completions": len(ids)})  # fmt: skip
        return out

    trainer._generate_single_turn = timed
    return records


# --- c. teacher ----------------------------------------------------------------------


def teacher(model_dir: Path, small: bool) -> dict[str, Any]:
    """The extract stage's call (t2g.llm.cache.generate: the transformers backend, batches
    sorted by length, JSON schema through xgrammar), greedy, against a seed-style loop:
    model.generate on batches of 8 in document order, one after another, unconstrained.
    Each side is saved as soon as it is measured."""
    from t2g import llm
    from t2g.config import ExtractConfig
    from t2g.llm import cache as llm_cache

    s = SETTINGS["teacher"]["small" if small else "full"]
    dtype = str(_dtype()).removeprefix("torch.")
    docs = toyworld.generate(s["n"], seed=11)
    sampling = llm.Sampling(max_new_tokens=s["max_new_tokens"], temperature=0.0)
    requests = [llm.Request(messages=messages(d["text"], d["entity_types"], d["relation_types"]),
                            schema=json_schema(d["entity_types"], d["relation_types"]), sampling=sampling)
                for d in docs]  # fmt: skip
    cfg = ExtractConfig(backend="transformers", model=str(model_dir), max_new_tokens=s["max_new_tokens"],
                        batch_size=s["batch_size"], dtype=dtype, temperature=0.0)  # fmt: skip
    figs: dict[str, Any] = {**s, "dtype": dtype, "model": _model_info(model_dir),
                            "note": "t2g: schema-constrained (xgrammar), batch_size prompts per generate call sorted by length; "
                                    "seed_style: unconstrained model.generate, seed_batch prompts per call in order; "
                                    "t2g_unconstrained: t2g's backend without the schema; all greedy"}  # fmt: skip

    def t2g_side(reqs: list) -> dict[str, Any]:
        # Untimed warm-up, every request for one token: model load, CUDA start-up, xgrammar's
        # GPU kernel, and each distinct schema's grammar, compiled once per process (a long
        # run pays that once per set of requested types).
        one = llm.Sampling(max_new_tokens=1, temperature=0.0)
        started = sync_now()
        llm_cache.generate(cfg, str(model_dir), [dataclasses.replace(r, sampling=one) for r in reqs])
        warmup = sync_now() - started
        started = sync_now()
        results, _ = llm_cache.generate(cfg, str(model_dir), reqs)
        seconds = sync_now() - started
        return {**_figures([r.text for r in results], [r.completion_tokens for r in results], seconds,
                           [r.error for r in results if r.error]),
                "warmup_s": round(warmup, 2), "finish_length": sum(r.finish_reason == "length" for r in results)}  # fmt: skip

    try:
        figs["t2g"] = t2g_side(requests)
    except Exception as exc:  # e.g. xgrammar's GPU kernel cannot build here: keep the other sides
        figs["t2g"] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    save("teacher", figs)
    llm.clear_cache()  # the backend's model goes before the baseline's loads

    figs["seed_style"] = _seed_style(model_dir, [r.messages for r in requests], s["max_new_tokens"], s["seed_batch"])
    if "tokens_per_s" in figs["t2g"]:  # t2g over seed-style
        figs["tokens_per_s_ratio"] = round(figs["t2g"]["tokens_per_s"] / figs["seed_style"]["tokens_per_s"], 2)
        figs["docs_per_s_ratio"] = round(figs["t2g"]["docs_per_s"] / figs["seed_style"]["docs_per_s"], 2)
    save("teacher", figs)

    # What the grammar costs: the same backend and batches without the schema.
    figs["t2g_unconstrained"] = t2g_side([dataclasses.replace(r, schema=None) for r in requests])
    llm.clear_cache()
    return figs


def _seed_style(model_dir: Path, chats: list, max_new_tokens: int, batch: int) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM

    from t2g.training import load_tokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = load_tokenizer(model_dir)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=_dtype()).to(device).eval()
    prompts = [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in chats]
    eos = tokenizer.eos_token_id

    @torch.inference_mode()
    def generate(texts: list[str], new: int) -> list[list[int]]:
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        out = model.generate(
            **enc, max_new_tokens=new, do_sample=False, pad_token_id=tokenizer.pad_token_id, eos_token_id=eos
        )
        return out[:, enc["input_ids"].shape[1] :].tolist()

    generate(prompts[:batch], 8)  # untimed warm-up
    texts, counts, cut = [], [], 0
    started = sync_now()
    for i in range(0, len(prompts), batch):
        for tokens in generate(prompts[i : i + batch], max_new_tokens):
            stopped = eos in tokens
            cut += not stopped
            tokens = tokens[: tokens.index(eos)] if stopped else tokens
            texts.append(tokenizer.decode(tokens, skip_special_tokens=True))
            counts.append(len(tokens) + stopped)  # counted as the backend counts: EOS included
    return {**_figures(texts, counts, sync_now() - started, []), "finish_length": cut}


def _figures(texts: list[str], tokens: list[int], seconds: float, errors: list[str]) -> dict[str, Any]:
    total = sum(tokens)
    return {
        "docs": len(texts),
        "seconds": round(seconds, 2),
        "completion_tokens": total,
        "mean_completion_tokens": round(total / max(len(texts), 1), 1),
        "tokens_per_s": round(total / seconds, 1),
        "docs_per_s": round(len(texts) / seconds, 2),
        "valid_json_rate": round(sum(parse_completion(t).graph is not None for t in texts) / max(len(texts), 1), 3),
        "errors": errors[:3],
    }


# --- entry point ---------------------------------------------------------------------

PARTS = {"sft": sft, "sft_why": sft_why, "grpo": grpo, "teacher": teacher}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_real")
    parser.add_argument("part", choices=["build", *PARTS])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--small", action="store_true", help="a 2-layer, hidden-64 model and a few steps (CPU smoke)")
    args = parser.parse_args(argv)
    started = time.time()
    if args.part == "build":
        figs = build(args.model_dir, args.small)
        figs["seconds"] = round(time.time() - started, 1)
        save("model", figs, fresh=True)
        return 0
    figs = PARTS[args.part](args.model_dir, args.small)
    figs["seconds"] = round(time.time() - started, 1)
    save(args.part, figs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
