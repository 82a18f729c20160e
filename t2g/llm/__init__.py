"""LLM generation for the teacher and the reasoner: one protocol (t2g.llm.base), three
backends chosen by the recipe (transformers, vllm, openai).

A backend holds a loaded model (or a client configuration), so it is created once per
worker process and reused by every shard that process runs: `get_backend` caches it by
the settings that shape the engine. vllm is imported only when chosen (the CPU install
has none). API keys never come from here: tasks/ resolves a Prefect Secret block and
hands the key in; t2g reads at most the environment variable the recipe names.
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Any

from t2g.llm.base import Backend, Request, Result, Sampling, failed

__all__ = ["Backend", "Request", "Result", "Sampling", "failed", "get_backend", "engine_settings", "resolve_api_key"]

_CACHE: dict[tuple, Backend] = {}
_LOCK = threading.Lock()

# The settings that shape a loaded engine; sampling and per-request settings are not here.
_ENGINE_FIELDS = {
    "transformers": ("model", "trust_remote_code", "device", "dtype", "batch_size", "too_long", "max_prompt_tokens"),
    "vllm": (
        "model",
        "trust_remote_code",
        "dtype",
        "tensor_parallel_size",
        "quantization",
        "max_model_len",
        "gpu_memory_utilization",
        "too_long",
        "max_prompt_tokens",
    ),
    "openai": ("model", "base_url", "max_in_flight", "timeout_s", "max_retries", "backoff_s"),
}


def engine_settings(cfg: Any, model: str) -> dict[str, Any]:
    """The engine settings of a recipe section (ExtractConfig/ReasonConfig), with the
    model resolved (e.g. "@teacher" replaced by a local folder)."""
    settings = {name: getattr(cfg, name) for name in _ENGINE_FIELDS[cfg.backend]}
    settings["model"] = model
    return settings


def resolve_api_key(cfg: Any, api_key: str | None = None) -> str:
    """The key for an openai-compatible server: handed in (tasks/ resolved a Prefect
    Secret block), else the environment variable the recipe names, else a placeholder
    (local servers such as `vllm serve` accept any key)."""
    if api_key:
        return api_key
    if getattr(cfg, "api_key_block", None):
        raise ValueError(
            f"api_key_block={cfg.api_key_block!r} is resolved by the Prefect task (tasks.shards); "
            "outside a flow set the environment variable named by api_key_env instead"
        )
    return os.environ.get(cfg.api_key_env) or "EMPTY"


def get_backend(backend: str, settings: dict[str, Any], api_key: str | None = None) -> Backend:
    """The process-wide backend for these settings, created on first use."""
    digest = hashlib.sha256((api_key or "").encode()).hexdigest()[:16]  # the key itself is never kept in the cache key
    key = (backend, tuple(sorted((k, repr(v)) for k, v in settings.items())), digest)
    with _LOCK:
        if key not in _CACHE:
            if backend in LOCAL:
                _evict_local()
            _CACHE[key] = _create(backend, settings, api_key)
        return _CACHE[key]


LOCAL = ("transformers", "vllm")  # backends that hold a model in this process's (GPU) memory


def _evict_local() -> None:
    """One local model per process: the teacher's engine goes before the reasoner's
    loads (two 70B engines do not fit one node). Best effort for vLLM, whose workers
    release the GPUs once the engine is garbage-collected."""
    stale = [k for k in _CACHE if k[0] in LOCAL]
    if not stale:
        return
    for k in stale:
        del _CACHE[k]
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


def _create(backend: str, settings: dict[str, Any], api_key: str | None) -> Backend:
    if backend == "transformers":
        from t2g.llm.hf import TransformersBackend

        return TransformersBackend(**settings)
    if backend == "vllm":
        from t2g.llm.vllm_backend import VllmBackend

        return VllmBackend(**settings)
    if backend == "openai":
        from t2g.llm.openai_backend import OpenAIBackend

        return OpenAIBackend(**settings, api_key=api_key or "EMPTY")
    raise ValueError(f"unknown LLM backend {backend!r}; choose transformers, vllm or openai")


def clear_cache() -> None:
    """Forget every backend (tests; freeing a GPU between stages)."""
    with _LOCK:
        _CACHE.clear()
