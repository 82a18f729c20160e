"""LLM generation for the teacher and the reasoner: one protocol (t2g.llm.base), the
backends chosen by the recipe (transformers, vllm, openai: t2g.llm.registry says how each
is built and what names its model).

A backend holds a loaded model (or a client configuration), so it is created once per
worker process and reused by every shard that process runs: `get_backend` caches it by
the settings that shape the engine. vllm is imported only when chosen (the CPU install
has none). API keys: a section's `api_key_block` names a Prefect Secret block, which only
the orchestration can read: tasks/ wraps each stage in `use_secrets(reader)`, so any LLM
section a stage uses (extract's, graph's, resolve's judge) gets its key the same way; t2g
itself reads at most the environment variable the recipe names.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from t2g.llm import registry
from t2g.llm.base import Backend, Request, Result, Sampling, failed

__all__ = [
    "Backend",
    "Request",
    "Result",
    "Sampling",
    "failed",
    "get_backend",
    "engine_settings",
    "resolve_api_key",
    "use_secrets",
]

_CACHE: dict[tuple, Backend] = {}
_LOCK = threading.Lock()


def engine_settings(cfg: Any, model: str) -> dict[str, Any]:
    """The engine settings of a recipe section (ExtractConfig/ReasonConfig), with the
    model resolved (e.g. "@teacher" replaced by a local folder)."""
    settings = {name: getattr(cfg, name) for name in registry.lookup(cfg.backend).engine_fields}
    settings["model"] = model
    return settings


_secrets: ContextVar[Callable[[str], str] | None] = ContextVar("t2g_secret_reader", default=None)


@contextmanager
def use_secrets(reader: Callable[[str], str] | None) -> Iterator[None]:
    """Within: a section's `api_key_block` is read with `reader(name)` (tasks/: a Prefect
    Secret block's value)."""
    token = _secrets.set(reader)
    try:
        yield
    finally:
        _secrets.reset(token)


def resolve_api_key(cfg: Any, api_key: str | None = None) -> str:
    """The key for an openai-compatible server: handed in, else the Secret block the
    section names (read by the current `use_secrets` reader), else the environment
    variable it names, else a placeholder (local servers such as `vllm serve` accept any key)."""
    if api_key:
        return api_key
    block = getattr(cfg, "api_key_block", None)
    if block:
        reader = _secrets.get()
        if reader is None:
            raise ValueError(
                f"api_key_block={block!r} is a Prefect Secret block, read only when the stage runs in a "
                "flow (t2g run); outside a flow set the environment variable named by api_key_env instead"
            )
        return reader(block)
    return os.environ.get(cfg.api_key_env) or "EMPTY"


def get_backend(backend: str, settings: dict[str, Any], api_key: str | None = None) -> Backend:
    """The process-wide backend for these settings, created on first use (a ValueError
    naming the registered backends for an unknown one)."""
    spec = registry.lookup(backend)
    digest = hashlib.sha256((api_key or "").encode()).hexdigest()[:16]  # the key itself is never kept in the cache key
    key = (backend, tuple(sorted((k, repr(v)) for k, v in settings.items())), digest)
    with _LOCK:
        if key not in _CACHE:
            if spec.local:
                _evict_local()
            _CACHE[key] = spec.create(settings, api_key)
        return _CACHE[key]


def _evict_local() -> None:
    """One local model per process: the teacher's engine goes before the reasoner's
    loads (two 70B engines do not fit one node). Best effort for vLLM, whose workers
    release the GPUs once the engine is garbage-collected."""
    stale = [k for k in _CACHE if getattr(registry.BACKENDS.get(k[0]), "local", True)]  # unregistered since: gone too
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


def clear_cache() -> None:
    """Forget every backend (tests; freeing a GPU between stages)."""
    with _LOCK:
        _CACHE.clear()
