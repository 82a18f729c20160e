"""The vllm backend, and the r1-70b recipe that uses it.

vLLM tests run only where a CUDA GPU and vllm are present (marked gpu); the recipe test
runs everywhere (validating it loads no model)."""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from t2g.config import load_recipe
from t2g.llm import Request, Sampling
from t2g.llm.vllm_backend import VllmBackend

REPO = Path(__file__).resolve().parents[3]


def test_r1_70b_recipe_loads():
    recipe = load_recipe(REPO / "configs" / "r1-70b.yaml")
    assert recipe.extract.backend == "vllm" and recipe.extract.model == "meta-llama/Llama-3.3-70B-Instruct"
    assert recipe.reason.thinking and recipe.reason.model == "deepseek-ai/DeepSeek-R1-Distill-Llama-70B"
    assert recipe.extract.tensor_parallel_size == recipe.reason.tensor_parallel_size == 8
    assert recipe.sft.model == "Qwen/Qwen2.5-0.5B-Instruct"
    assert not recipe.extract.trust_remote_code and not recipe.reason.trust_remote_code


def _gpu_and_vllm() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available() and importlib.util.find_spec("vllm") is not None


@pytest.mark.gpu
@pytest.mark.skipif(not _gpu_and_vllm(), reason="needs a CUDA GPU and vllm")
def test_vllm_constrained_json(tiny_model_dir):
    import jsonschema

    from t2g import toyworld
    from t2g.graph import json_schema
    from t2g.llm import Request, Sampling, clear_cache, get_backend
    from t2g.prompts import messages

    settings = dict(
        model=str(tiny_model_dir),
        trust_remote_code=False,
        dtype="auto",
        tensor_parallel_size=1,
        quantization=None,
        max_model_len=None,
        gpu_memory_utilization=0.3,
        too_long="truncate",
        max_prompt_tokens=None,
    )
    backend = get_backend("vllm", settings)
    docs = toyworld.generate(50, seed=7)
    reqs = [
        Request(
            messages=messages(d["text"], d["entity_types"], d["relation_types"]),
            schema=json_schema(d["entity_types"], d["relation_types"]),
            sampling=Sampling(max_new_tokens=256),
        )
        for d in docs
    ]
    results = backend.generate(reqs)
    assert len(results) == 50
    stopped = [(q, r) for q, r in zip(reqs, results) if r.finish_reason == "stop"]
    assert stopped
    for q, r in stopped:
        jsonschema.validate(json.loads(r.text), q.schema)
    clear_cache()


# --- the request/answer mapping, on a stand-in engine (no GPU) ----------------------------
#
# `StandInLLM` keeps `vllm.LLM.generate`'s contract (one RequestOutput per prompt, in input
# order; each with `prompt_token_ids` and a list of CompletionOutputs carrying `text`,
# `token_ids`, `finish_reason`) and misbehaves the ways the real engine can: a request it
# aborts comes back with an empty `outputs` list, an answer cut at `max_tokens` ends with
# finish_reason "length". Its answer names the `[tag]` it read in the prompt tokens, so a
# result handed to the wrong request shows. The tokenizer is the tiny model's real one.


_TAG = re.compile(r"\[(doc\d+)\]")
LIMIT = 48  # max_prompt_tokens of the backends below


@dataclass
class CompletionOutput:  # vllm.outputs.CompletionOutput's fields
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None = None
    logprobs: list | None = None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


@dataclass
class RequestOutput:  # vllm.outputs.RequestOutput's fields that a caller reads
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput] = field(default_factory=list)
    finished: bool = True


def answer_for(tag: str) -> str:
    return f'{{"doc": "{tag}", "entities": [], "relations": []}}'


class StandInLLM:
    def __init__(self, tokenizer, max_model_len: int = 4096, abort: frozenset[str] = frozenset()):
        self.tokenizer = tokenizer
        self.model_config = SimpleNamespace(max_model_len=max_model_len)
        self.abort = abort
        self.seen: list[str] = []  # tags in the order the engine got them

    def get_tokenizer(self):
        return self.tokenizer

    def generate(self, prompts, sampling_params, use_tqdm=True):
        assert isinstance(sampling_params, list) and len(sampling_params) == len(prompts)
        outs = []
        for n, (prompt, params) in enumerate(zip(prompts, sampling_params)):
            ids = list(prompt["prompt_token_ids"])
            tag = _TAG.search(self.tokenizer.decode(ids)).group(1)
            self.seen.append(tag)
            assert params["tag"] == tag, "each prompt goes with its own request's sampling params"
            if tag in self.abort:
                outs.append(RequestOutput(str(n), None, ids, outputs=[]))
                continue
            tokens = self.tokenizer.encode(answer_for(tag), add_special_tokens=False)
            reason = "length" if len(tokens) > params["max_tokens"] else "stop"
            tokens = tokens[: params["max_tokens"]]
            outs.append(
                RequestOutput(
                    str(n),
                    None,
                    ids,
                    [CompletionOutput(0, self.tokenizer.decode(tokens), tokens, finish_reason=reason)],
                )
            )
        return outs


def params_for(request: Request) -> dict:
    text = request.prompt if request.prompt is not None else request.messages[-1]["content"]
    return {"max_tokens": request.sampling.max_new_tokens, "tag": _TAG.search(text).group(1)}


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir, trust_remote_code=False)


def _request(i: int, words: int, max_new: int, chat: bool) -> Request:
    text = f"[doc{i}] " + " ".join(["Alice works for Acme in Paris."] * words)
    sampling = Sampling(max_new_tokens=max_new)
    return (
        Request(messages=[{"role": "user", "content": text}], sampling=sampling)
        if chat
        else Request(prompt=text, sampling=sampling)
    )


def _prompt_ids(tokenizer, request: Request) -> list[int]:
    if request.messages is not None:
        text = tokenizer.apply_chat_template(request.messages, add_generation_prompt=True, tokenize=False)
    else:
        text = request.prompt
    return list(tokenizer.encode(text, add_special_tokens=False))


def test_each_request_gets_its_own_answer_skips_and_aborts_reported(tokenizer):
    # doc0 fits; doc1 too long (skipped); doc2 cut at 5 tokens; doc3 aborted; doc4 chat, fits.
    requests = [
        _request(0, 1, 64, False),
        _request(1, 20, 64, False),
        _request(2, 1, 5, False),
        _request(3, 1, 64, False),
        _request(4, 1, 64, True),
    ]
    engine = StandInLLM(tokenizer, abort=frozenset({"doc3"}))
    results = VllmBackend.on_engine(engine, params_for, too_long="skip", max_prompt_tokens=LIMIT).generate(requests)

    assert len(results) == 5 and engine.seen == ["doc0", "doc2", "doc3", "doc4"]  # the skipped one never reached vLLM
    full = tokenizer.encode(answer_for("doc0"), add_special_tokens=False)
    assert results[0].ok and results[0].text == answer_for("doc0") and results[0].finish_reason == "stop"
    assert results[0].prompt_tokens == len(_prompt_ids(tokenizer, requests[0])) and results[0].completion_tokens == len(
        full
    )
    assert results[1].finish_reason == "skipped" and results[1].error.startswith("prompt too long")
    assert results[1].prompt_tokens == len(_prompt_ids(tokenizer, requests[1])) > LIMIT
    assert results[2].ok and results[2].finish_reason == "length" and results[2].completion_tokens == 5
    assert answer_for("doc2").startswith(results[2].text)
    assert not results[3].ok and results[3].finish_reason == "error" and "aborted" in results[3].error
    assert results[4].ok and results[4].text == answer_for("doc4")
    assert results[4].prompt_tokens == len(_prompt_ids(tokenizer, requests[4]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    shape=st.lists(
        st.tuples(st.integers(1, 12), st.integers(1, 40), st.booleans(), st.booleans()), min_size=1, max_size=12
    ),
    too_long=st.sampled_from(["skip", "truncate"]),
)
def test_mapping_holds_for_any_mix(tokenizer, shape, too_long):
    requests = [_request(i, words, max_new, chat) for i, (words, max_new, chat, _) in enumerate(shape)]
    aborted = frozenset(f"doc{i}" for i, (*_, abort) in enumerate(shape) if abort)
    engine = StandInLLM(tokenizer, abort=aborted)
    results = VllmBackend.on_engine(engine, params_for, too_long=too_long, max_prompt_tokens=LIMIT).generate(requests)

    assert len(results) == len(requests)
    sent = [
        f"doc{i}" for i, q in enumerate(requests) if too_long == "truncate" or len(_prompt_ids(tokenizer, q)) <= LIMIT
    ]
    assert engine.seen == sent  # input order kept, skipped ones left out
    for i, (q, res) in enumerate(zip(requests, results)):
        tag, n_prompt = f"doc{i}", len(_prompt_ids(tokenizer, q))
        if tag not in sent:
            assert res.finish_reason == "skipped" and res.prompt_tokens == n_prompt and not res.ok
        elif tag in aborted:
            assert res.finish_reason == "error" and not res.ok
        else:
            answer = tokenizer.encode(answer_for(tag), add_special_tokens=False)
            assert res.ok and answer_for(tag).startswith(res.text) and res.text  # its own answer, nobody else's
            assert res.completion_tokens == min(len(answer), q.sampling.max_new_tokens)
            assert res.finish_reason == ("length" if len(answer) > q.sampling.max_new_tokens else "stop")
            assert res.prompt_tokens == min(n_prompt, LIMIT) and res.truncated == (n_prompt > LIMIT)
