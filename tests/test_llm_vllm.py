"""The vllm backend, and the r1-70b recipe that uses it.

vLLM tests run only where a CUDA GPU and vllm are present (marked gpu); the recipe test
runs everywhere (validating it loads no model)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from t2g.config import load_recipe

REPO = Path(__file__).resolve().parents[1]


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
        model=str(tiny_model_dir), trust_remote_code=False, dtype="auto", tensor_parallel_size=1, quantization=None,
        max_model_len=None, gpu_memory_utilization=0.3, too_long="truncate", max_prompt_tokens=None,
    )
    backend = get_backend("vllm", settings)
    docs = toyworld.generate(50, seed=7)
    reqs = [
        Request(messages=messages(d["text"], d["entity_types"], d["relation_types"]), schema=json_schema(d["entity_types"], d["relation_types"]), sampling=Sampling(max_new_tokens=256))
        for d in docs
    ]
    results = backend.generate(reqs)
    assert len(results) == 50
    stopped = [(q, r) for q, r in zip(reqs, results) if r.finish_reason == "stop"]
    assert stopped
    for q, r in stopped:
        jsonschema.validate(json.loads(r.text), q.schema)
    clear_cache()
