"""The LLM backend registry (t2g/llm/registry.py): a backend is one module plus one
registry entry. The recipe accepts exactly the registered names (with an error listing
them), t2g.llm builds a registered backend, and the entry's identity names its model in
the response cache's keys and in the stage keys. The identities of the built-in backends
are the same bytes as before the registry (the golden strings were computed by the code
before it)."""

from __future__ import annotations

import json
from pathlib import Path

from t2g.config import ExtractConfig, ReasonConfig
from t2g.fingerprint import llm_inputs
from t2g.kg.config import GraphConfig
from t2g.llm import engine_settings
from t2g.llm.cache import identity


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "tiny"}')
    (folder / "tokenizer.json").write_text("{}")
    return folder


def _identities(folder: Path) -> dict[str, object]:
    """Every identity string the registry now builds, for the built-in backends."""
    here = str(folder)
    out = {
        "cache transformers folder": identity("transformers", ExtractConfig(backend="transformers"), here),
        "cache vllm pinned": identity("vllm", ExtractConfig(backend="vllm", model_revision="abc123", dtype="bfloat16", max_model_len=4096), "org/m"),
        "cache vllm unpinned": identity("vllm", ExtractConfig(backend="vllm"), "org/m"),
        "cache openai": identity("openai", ExtractConfig(backend="openai", model="served"), "served"),
        "cache openai revision": identity("openai", ReasonConfig(backend="openai", model_revision="v2", too_long="skip"), "served"),
        "key openai": llm_inputs(ExtractConfig(backend="openai", model="served")),
        "key openai revision": llm_inputs(ExtractConfig(backend="openai", model="served", model_revision="v2")),
        "key vllm pinned": llm_inputs(ExtractConfig(backend="vllm", model="org/m", model_revision="abc123")),
        "key vllm unpinned": llm_inputs(ExtractConfig(backend="vllm", model="org/m")),
        "key reason folder": llm_inputs(ReasonConfig(thinking=True, backend="transformers", model=here)),
        "key reason not thinking": llm_inputs(ReasonConfig(backend="transformers", model=here)),
        "key gold": llm_inputs(ExtractConfig(model="anything")),
        "key graph served": llm_inputs(GraphConfig(backend="openai", model="served", entity_types=["person"])),
    }
    for backend in ("transformers", "vllm", "openai"):
        out[f"engine {backend}"] = engine_settings(ExtractConfig(backend=backend, model="x"), "resolved")
    return json.loads(json.dumps(out, sort_keys=True).replace(here, "<folder>"))


# Computed by the code before the registry (commit 00d6b0a), with the same calls.
BEFORE = {'cache openai': '{"backend": "openai", "model": "served:served@", "settings": {"dtype": "auto", "max_model_len": null, '
                 '"max_prompt_tokens": null, "quantization": null, "too_long": "truncate"}}',
 'cache openai revision': '{"backend": "openai", "model": "served:served@v2", "settings": {"dtype": "auto", "max_model_len": '
                          'null, "max_prompt_tokens": null, "quantization": null, "too_long": "skip"}}',
 'cache transformers folder': '{"backend": "transformers", "model": '
                              '"dir:4ae4111dea9c1d6a496fcffc531cc6d5ed7eae71e4d11d9a6270af447ae714d4", "settings": {"dtype": '
                              '"auto", "max_model_len": null, "max_prompt_tokens": null, "quantization": null, "too_long": '
                              '"truncate"}}',
 'cache vllm pinned': '{"backend": "vllm", "model": "hub:org/m@abc123", "settings": {"dtype": "bfloat16", "max_model_len": '
                      '4096, "max_prompt_tokens": null, "quantization": null, "too_long": "truncate"}}',
 'cache vllm unpinned': None,
 'engine openai': {'backoff_s': 1.0,
                   'base_url': None,
                   'max_in_flight': 32,
                   'max_retries': 6,
                   'model': 'resolved',
                   'timeout_s': 300.0},
 'engine transformers': {'batch_size': 8,
                         'device': 'auto',
                         'dtype': 'auto',
                         'max_prompt_tokens': None,
                         'model': 'resolved',
                         'too_long': 'truncate',
                         'trust_remote_code': False},
 'engine vllm': {'dtype': 'auto',
                 'gpu_memory_utilization': 0.9,
                 'max_model_len': None,
                 'max_prompt_tokens': None,
                 'model': 'resolved',
                 'quantization': None,
                 'tensor_parallel_size': 1,
                 'too_long': 'truncate',
                 'trust_remote_code': False},
 'key gold': {},
 'key graph served': {'served model served': 'served:served@'},
 'key openai': {'served model served': 'served:served@'},
 'key openai revision': {'served model served': 'served:served@v2'},
 'key reason folder': {'model <folder>': 'dir:4ae4111dea9c1d6a496fcffc531cc6d5ed7eae71e4d11d9a6270af447ae714d4'},
 'key reason not thinking': {},
 'key vllm pinned': {'model org/m': 'hub:org/m@abc123'},
 'key vllm unpinned': {'model org/m': None}}


def test_built_in_identities_are_the_bytes_of_before(tmp_path):
    assert _identities(_folder(tmp_path)) == BEFORE
