"""The transformers backend: a local model on CPU or GPU, batched generation with left
padding, JSON-schema constrained decoding through xgrammar (vLLM's default structured
output backend, so a schema constrains the same way on both paths)."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
import transformers
import xgrammar as xgr
from transformers import AutoModelForCausalLM, AutoTokenizer

from t2g.llm.base import Request, Result, Sampling, failed, fit_prompt


class SchemaLogitsProcessor(transformers.LogitsProcessor):
    """xgrammar's HF processor (xgrammar.contrib.hf.LogitsProcessor) generalised to a batch
    where each row has its own grammar, or none (free text). One instance per generate
    call: matchers hold the state of that call's sequences."""

    def __init__(self, grammars: list[xgr.CompiledGrammar | None], vocab_size: int):
        self.matchers = [xgr.GrammarMatcher(g) if g is not None else None for g in grammars]
        self.bitmask = xgr.allocate_token_bitmask(len(grammars), vocab_size)
        self.started = False

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        rows = []
        for i, matcher in enumerate(self.matchers):
            if matcher is None or matcher.is_terminated():
                continue  # free row, or finished (HF pads it from now on)
            if self.started:
                # The token sampled last step; a grammar rejects nothing it allowed.
                matcher.accept_token(int(input_ids[i, -1]))
                if matcher.is_terminated():
                    continue
            matcher.fill_next_token_bitmask(self.bitmask, i)
            rows.append(i)
        self.started = True
        if rows:
            on_cpu = scores.device.type != "cuda"
            target = scores.to("cpu") if on_cpu else scores
            xgr.apply_token_bitmask_inplace(target, self.bitmask.to(target.device), indices=rows)
            scores = target.to(scores.device) if on_cpu else target
        return scores


_THREADS: dict[str, ThreadPoolExecutor] = {}
_THREADS_GUARD = threading.Lock()


def device_thread(device: str) -> ThreadPoolExecutor:
    """The one thread that runs every generation on `device` in this process.

    Why: the shards of an LLM stage are threads that share one backend (t2g.llm.get_backend)
    and take turns. One at a time is not enough: torch's CPU kernels ran ~30% slower when
    the thread calling them kept changing (extract on the tiny profile, 2 cores: 119 s of
    batches in three shard threads against 89 s in one, the same 66 batches, none
    overlapping; 90 s with every batch on this thread)."""
    with _THREADS_GUARD:
        if device not in _THREADS:
            _THREADS[device] = ThreadPoolExecutor(1, thread_name_prefix=f"t2g-generate-{device}")
        return _THREADS[device]


class TransformersBackend:
    name = "transformers"

    def __init__(
        self,
        model: str,
        trust_remote_code: bool = False,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 8,
        too_long: str = "truncate",
        max_prompt_tokens: int | None = None,
        revision: str | None = None,  # a hub model's pinned revision (evaluate's base)
    ):
        self.model = model
        self.batch_size = batch_size
        self.too_long = too_long
        self.max_prompt_tokens = max_prompt_tokens
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code, revision=revision)
        self.tokenizer.padding_side = "left"  # decoder-only batches pad on the left
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
        self.lm = AutoModelForCausalLM.from_pretrained(
            model, trust_remote_code=trust_remote_code, revision=revision, dtype=torch_dtype
        )
        self.lm.to(self.device).eval()
        self.context = int(getattr(self.lm.config, "max_position_embeddings", 0) or 4096)
        # The model's vocabulary can be padded beyond the tokenizer's: masks cover the logits.
        self.vocab_size = int(self.lm.config.vocab_size)
        info = xgr.TokenizerInfo.from_huggingface(self.tokenizer, vocab_size=self.vocab_size)
        self.compiler = xgr.GrammarCompiler(info)
        self._grammars: dict[str, xgr.CompiledGrammar] = {}

    def _grammar(self, schema: dict[str, Any]) -> xgr.CompiledGrammar:
        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            # No free whitespace: a weak model otherwise pads JSON with blanks until it
            # runs out of tokens (vLLM's xgrammar backend offers the same switch).
            self._grammars[key] = self.compiler.compile_json_schema(key, any_whitespace=False, strict_mode=True)
        return self._grammars[key]

    def render(self, request: Request) -> str:
        if request.messages is not None:
            return self.tokenizer.apply_chat_template(request.messages, add_generation_prompt=True, tokenize=False)
        return request.prompt or ""

    def generate(self, requests: Sequence[Request]) -> list[Result]:
        results: list[Result | None] = [None] * len(requests)
        ready: list[tuple[int, list[int], bool, xgr.CompiledGrammar | None]] = []
        for i, request in enumerate(requests):
            ids = self.tokenizer(self.render(request), add_special_tokens=False)["input_ids"]
            limit = self.max_prompt_tokens or max(1, self.context - request.sampling.max_new_tokens)
            fitted, truncated = fit_prompt(ids, limit, self.too_long)
            if fitted is None:
                results[i] = failed(f"prompt too long: {len(ids)} tokens > {limit}", "skipped", len(ids))
                continue
            try:
                grammar = self._grammar(request.schema) if request.schema is not None else None
            except (RuntimeError, ValueError) as exc:  # xgrammar rejects the schema: this request's fault only
                results[i] = failed(f"schema does not compile: {exc}", "error", len(fitted))
                continue
            ready.append((i, fitted, truncated, grammar))
        # One batch shares its sampling settings; similar lengths together waste less padding.
        groups: dict[Sampling, list] = {}
        for item in ready:
            groups.setdefault(requests[item[0]].sampling, []).append(item)
        device_thread(self.device).submit(self._run, groups, results).result()
        return results  # type: ignore[return-value]

    def _run(self, groups: dict[Sampling, list], results: list[Result | None]) -> None:
        for sampling, items in groups.items():
            items.sort(key=lambda item: len(item[1]))
            for start in range(0, len(items), self.batch_size):
                batch = items[start : start + self.batch_size]
                for item, result in zip(batch, self._batch(batch, sampling)):
                    results[item[0]] = result

    @torch.inference_mode()
    def _batch(self, batch: list[tuple[int, list[int], bool, Any]], s: Sampling) -> list[Result]:
        pad = self.tokenizer.pad_token_id
        width = max(len(ids) for _, ids, _, _ in batch)
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for _, ids, _, _ in batch], device=self.device)
        attention = torch.tensor(
            [[0] * (width - len(ids)) + [1] * len(ids) for _, ids, _, _ in batch], device=self.device
        )
        grammars = [g for _, _, _, g in batch]
        processors = [SchemaLogitsProcessor(grammars, self.vocab_size)] if any(g is not None for g in grammars) else []
        if s.seed is not None:
            torch.manual_seed(s.seed)
        sample = s.temperature > 0
        out = self.lm.generate(
            input_ids=input_ids,
            attention_mask=attention,
            max_new_tokens=s.max_new_tokens,
            do_sample=sample,
            temperature=s.temperature if sample else None,
            top_p=s.top_p if sample else None,
            top_k=None,
            logits_processor=processors,
            pad_token_id=pad,
            eos_token_id=self.tokenizer.eos_token_id,
        )
        new = out[:, width:].tolist()
        eos = self.tokenizer.eos_token_id
        results = []
        for (_, ids, truncated, _), tokens in zip(batch, new):
            stopped = eos in tokens
            tokens = tokens[: tokens.index(eos)] if stopped else tokens
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            results.append(
                Result(
                    text=text,
                    finish_reason="stop" if stopped else "length",
                    prompt_tokens=len(ids),
                    completion_tokens=len(tokens) + (1 if stopped else 0),
                    truncated=truncated,
                )
            )
        return results
