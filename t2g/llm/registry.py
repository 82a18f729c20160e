"""The LLM backend registry: for each backend name, the class that answers requests
(t2g.llm.base.Backend), the recipe fields that shape its engine, whether it holds a model
in this process (local) or talks to a server (served), and what names the model behind
it: the identity the response cache (t2g.llm.cache) and the stage keys
(t2g.fingerprint.llm_inputs) both take from here.

Adding a backend is one module with its class plus one `register(...)` entry at the end
of this file: the recipe's `backend` fields accept exactly the registered names (the
`LLMBackend`, `LocalBackend` and `LabelBackend` types below, read at validation time),
t2g.llm builds it, and the cache and the keys identify its model.
tests/t2g/llm/test_llm_registry.py registers a fake backend in a test registry with no other edit.

t2g.config reads the names, so this module imports nothing of t2g beyond
t2g.recipe_input; the classes and identity functions are "module:attr" strings imported
on use (vllm only when chosen), as in the stage registry (t2g.stages).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

from pydantic import AfterValidator

from t2g.recipe_input import shown


@dataclass(frozen=True)
class BackendSpec:
    name: str
    # "module:attr" of the Backend class; created with the engine settings as keyword
    # arguments, plus `api_key` for a served backend.
    cls: str
    # The recipe fields (t2g.config.LLMSection) that shape the engine it builds: the
    # process-wide backend is reused for equal settings (t2g.llm.get_backend). Sampling
    # settings travel with each request and are not here. `model` is always one.
    engine_fields: tuple[str, ...]
    # Local: holds a model in this process's (GPU) memory, one at a time (the teacher's
    # engine goes before the reasoner's loads); the only kind that can sample a model
    # folder the recipe trained (sample.backend). Served: a server answers; it gets the
    # API key, and the model is named by what the server says it serves.
    local: bool
    # "module:attr": (model, revision) -> what names the model's weights, or None when
    # nothing does (an unpinned hub name: no response cache, never a cache hit).
    identity: str

    def create(self, settings: dict[str, Any], api_key: str | None = None) -> Any:
        cls = _attr(self.cls)
        return cls(**settings) if self.local else cls(**settings, api_key=api_key or "EMPTY")

    def model_identity(self, model: str, revision: str | None) -> str | None:
        return _attr(self.identity)(model, revision)

    @property
    def input_name(self) -> str:
        """How the stage key's external inputs name the model (t2g.fingerprint.llm_inputs)."""
        return "model" if self.local else "served model"


def served_identity(model: str, revision: str | None) -> str:
    """A served model: its served name plus the optional revision. Whoever serves it vouches
    for the name (set or change `model_revision` when the weights behind it change)."""
    return f"served:{model}@{revision or ''}"


def _attr(ref: str) -> Any:
    module, attr = ref.split(":")
    return getattr(importlib.import_module(module), attr)


BACKENDS: dict[str, BackendSpec] = {}


def register(spec: BackendSpec, registry: dict[str, BackendSpec] | None = None) -> BackendSpec:
    """Add `spec` to `registry` (the real one by default); a name is registered once."""
    registry = BACKENDS if registry is None else registry
    if spec.name in registry:
        raise ValueError(f"LLM backend {spec.name!r} is registered already")
    if "model" not in spec.engine_fields:
        raise ValueError(f"LLM backend {spec.name!r}: engine_fields must include 'model'")
    registry[spec.name] = spec
    return spec


def names(local: bool | None = None) -> list[str]:
    """The registered backend names, in registration order (local only / served only)."""
    return [n for n, s in BACKENDS.items() if local is None or s.local == local]


def _choices(options: list[str]) -> str:
    return options[0] if len(options) == 1 else ", ".join(options[:-1]) + " or " + options[-1]


def lookup(name: str) -> BackendSpec:
    """The registry entry of `name`; a ValueError listing the registered names otherwise."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown LLM backend {shown(str(name))!r}; choose {_choices(names())}") from None


def check_backend(name: str, also: tuple[str, ...] = (), local_only: bool = False) -> str:
    """`name` when a recipe's `backend` field may take it: a registered backend (a local
    one with `local_only`) or one of `also` (extract's `gold`); else a ValueError listing
    the choices, read at validation time, so a backend registered later is accepted."""
    allowed = [*also, *names(local=True if local_only else None)]
    if name in allowed:
        return name
    if local_only and name in BACKENDS:
        raise ValueError(
            f"{name!r} is a served backend; this stage runs a model folder in process: choose {_choices(allowed)}"
        )
    raise ValueError(f"unknown backend {shown(str(name))!r}: choose {_choices(allowed)}")


def backend_field(also: tuple[str, ...] = (), local_only: bool = False) -> Any:
    """The type of a recipe's `backend` field: a string `check_backend` accepts."""
    return Annotated[str, AfterValidator(partial(check_backend, also=also, local_only=local_only))]


LLMBackend = backend_field()  # any registered backend
LocalBackend = backend_field(local_only=True)  # a registered local backend (sample: a model folder of the round before)
LabelBackend = backend_field(also=("gold",))  # extract: also `gold`, the labels the documents carry


# --- the registered backends ---------------------------------------------------------

LOCAL_MODEL = "t2g.fingerprint:model_identity"  # a local folder by content, a hub name by pinned revision
SERVED_MODEL = "t2g.llm.registry:served_identity"

register(BackendSpec(
    "transformers", "t2g.llm.hf:TransformersBackend",
    ("model", "trust_remote_code", "device", "dtype", "batch_size", "too_long", "max_prompt_tokens"),
    local=True, identity=LOCAL_MODEL,
))  # fmt: skip
register(BackendSpec(
    "vllm", "t2g.llm.vllm_backend:VllmBackend",
    ("model", "trust_remote_code", "dtype", "tensor_parallel_size", "quantization", "max_model_len",
     "gpu_memory_utilization", "too_long", "max_prompt_tokens"),
    local=True, identity=LOCAL_MODEL,
))  # fmt: skip
register(BackendSpec(
    "openai", "t2g.llm.openai_backend:OpenAIBackend",
    ("model", "base_url", "max_in_flight", "timeout_s", "max_retries", "backoff_s"),
    local=False, identity=SERVED_MODEL,
))  # fmt: skip
