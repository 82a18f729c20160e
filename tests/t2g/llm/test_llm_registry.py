"""The LLM backend registry (t2g/llm/registry.py): a backend is one module plus one
registry entry. The recipe accepts exactly the registered names (with an error listing
them), t2g.llm builds a registered backend, and the entry's identity names its model in
the response cache's keys and in the stage keys. The identities of the built-in backends
are the same bytes as before the registry (the golden strings were computed by the code
before it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from t2g.config import ExtractConfig, ReasonConfig, RecipeError, load_recipe
from t2g.fingerprint import llm_inputs
from t2g.kg.config import GraphConfig
from t2g.llm import cache as llm_cache
from t2g.llm import clear_cache, engine_settings, get_backend
from t2g.llm.cache import ResponseCache, identity, request_key, use_cache
from t2g.llm.registry import BACKENDS, BackendSpec, register
from t2g.runner import execute
from t2g.store import Store
from tests.support.flowrun import SMALL, TINY


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
        "cache vllm pinned": identity(
            "vllm",
            ExtractConfig(backend="vllm", model_revision="abc123", dtype="bfloat16", max_model_len=4096),
            "org/m",
        ),
        "cache vllm unpinned": identity("vllm", ExtractConfig(backend="vllm"), "org/m"),
        "cache openai": identity("openai", ExtractConfig(backend="openai", model="served"), "served"),
        "cache openai revision": identity(
            "openai", ReasonConfig(backend="openai", model_revision="v2", too_long="skip"), "served"
        ),
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
BEFORE = {
    "cache openai": '{"backend": "openai", "model": "served:served@", "settings": {"dtype": "auto", "max_model_len": null, '
    '"max_prompt_tokens": null, "quantization": null, "too_long": "truncate"}}',
    "cache openai revision": '{"backend": "openai", "model": "served:served@v2", "settings": {"dtype": "auto", "max_model_len": '
    'null, "max_prompt_tokens": null, "quantization": null, "too_long": "skip"}}',
    "cache transformers folder": '{"backend": "transformers", "model": '
    '"dir:4ae4111dea9c1d6a496fcffc531cc6d5ed7eae71e4d11d9a6270af447ae714d4", "settings": {"dtype": '
    '"auto", "max_model_len": null, "max_prompt_tokens": null, "quantization": null, "too_long": '
    '"truncate"}}',
    "cache vllm pinned": '{"backend": "vllm", "model": "hub:org/m@abc123", "settings": {"dtype": "bfloat16", "max_model_len": '
    '4096, "max_prompt_tokens": null, "quantization": null, "too_long": "truncate"}}',
    "cache vllm unpinned": None,
    "engine openai": {
        "backoff_s": 1.0,
        "base_url": None,
        "max_in_flight": 32,
        "max_retries": 6,
        "model": "resolved",
        "timeout_s": 300.0,
    },
    "engine transformers": {
        "batch_size": 8,
        "device": "auto",
        "dtype": "auto",
        "max_prompt_tokens": None,
        "model": "resolved",
        "too_long": "truncate",
        "trust_remote_code": False,
    },
    "engine vllm": {
        "dtype": "auto",
        "gpu_memory_utilization": 0.9,
        "max_model_len": None,
        "max_prompt_tokens": None,
        "model": "resolved",
        "quantization": None,
        "tensor_parallel_size": 1,
        "too_long": "truncate",
        "trust_remote_code": False,
    },
    "key gold": {},
    "key graph served": {"served model served": "served:served@"},
    "key openai": {"served model served": "served:served@"},
    "key openai revision": {"served model served": "served:served@v2"},
    "key reason folder": {"model <folder>": "dir:4ae4111dea9c1d6a496fcffc531cc6d5ed7eae71e4d11d9a6270af447ae714d4"},
    "key reason not thinking": {},
    "key vllm pinned": {"model org/m": "hub:org/m@abc123"},
    "key vllm unpinned": {"model org/m": None},
}


def test_built_in_identities_are_the_bytes_of_before(tmp_path):
    assert _identities(_folder(tmp_path)) == BEFORE


# --- a backend t2g does not have: one module (tests/support/fake_backend.py) plus one entry -----


@pytest.fixture
def echo(monkeypatch):
    """A test registry: the real one plus `echo` (tests/support/fake_backend.py), a served backend."""
    from tests.support import fake_backend

    spec = BackendSpec("echo", "tests.support.fake_backend:EchoBackend", ("model", "base_url"), local=False,
                       identity="tests.support.fake_backend:identity")  # fmt: skip
    monkeypatch.setitem(BACKENDS, "echo", spec)
    fake_backend.CALLS.clear()
    clear_cache()
    yield fake_backend
    clear_cache()


ECHO = [*SMALL, "extract.backend=echo", "extract.model=echo-1", "extract.base_url=http://echo.invalid/v1"]


def test_an_unregistered_backend_is_refused_naming_the_registered_ones():
    with pytest.raises(
        RecipeError, match=r"extract.backend: .*unknown backend 'echo': choose gold, transformers, vllm or openai"
    ):
        load_recipe(TINY, overrides=ECHO)
    with pytest.raises(RecipeError, match=r"reason.backend: .*choose transformers, vllm or openai"):
        load_recipe(TINY, overrides=["reason.backend=llama"])
    with pytest.raises(
        RecipeError, match=r"sample.backend: .*'openai' is a served backend.*choose transformers or vllm"
    ):
        load_recipe(TINY, overrides=["sample.backend=openai"])
    with pytest.raises(ValueError, match=r"unknown LLM backend 'echo'; choose transformers, vllm or openai"):
        get_backend("echo", {"model": "m"})
    with pytest.raises(ValueError, match="registered already"):
        register(BACKENDS["vllm"])


def test_a_registered_backend_is_validated_built_and_keyed(tmp_path, echo, monkeypatch):
    recipe = load_recipe(TINY, overrides=[*ECHO, "extract.model_revision=r7"])
    cfg = recipe.extract
    assert cfg.backend == "echo" and llm_inputs(cfg) == {
        "served model echo-1": "echo:echo-1@r7"
    }  # the stage key's input
    with pytest.raises(RecipeError, match=r"choose gold, transformers, vllm, openai or echo"):
        load_recipe(TINY, overrides=["extract.backend=ech0"])
    with pytest.raises(RecipeError, match=r"'echo' is a served backend"):
        load_recipe(TINY, overrides=["sample.backend=echo"])

    store = Store(f"file://{tmp_path}/store")
    cache = ResponseCache(Store(f"file://{tmp_path}/cache"))
    docs = execute("collect", recipe.collect, {}, store)
    with use_cache(cache):
        first = execute("extract", cfg, {"docs": docs.ref}, store)
    assert first.ref.rows > 0 and echo.CALLS == [first.ref.rows]  # built through t2g.llm and asked once
    assert first.summary["llm"]["cache_misses"] == first.ref.rows
    built = get_backend("echo", engine_settings(cfg, "echo-1"))
    assert (
        isinstance(built, echo.EchoBackend) and built.base_url == "http://echo.invalid/v1" and built.api_key == "EMPTY"
    )

    # Its identity is what the response cache keys every request with: a second run (a
    # fresh artifact store, the same cache) asks the backend nothing; another revision,
    # another identity, asks again.
    ident = identity("echo", cfg, "echo-1")
    assert json.loads(ident)["model"] == "echo:echo-1@r7" and json.loads(ident)["backend"] == "echo"
    seen = []
    monkeypatch.setattr(llm_cache, "request_key", lambda i, r, n=0: seen.append(i) or request_key(i, r, n))
    other = cfg.model_copy(update={"model_revision": "r8"})
    with use_cache(cache):
        again, moved = (execute("extract", c, {"docs": execute("collect", recipe.collect, {}, s).ref}, s)
                        for c, s in ((cfg, Store(f"file://{tmp_path}/again")), (other, Store(f"file://{tmp_path}/moved"))))  # fmt: skip
    assert set(seen) == {ident, identity("echo", other, "echo-1")} and len(seen) == 2 * first.ref.rows
    assert again.summary["llm"]["cache_hits"] == first.ref.rows and echo.CALLS == [first.ref.rows] * 2
    assert moved.summary["llm"]["cache_misses"] == first.ref.rows
    assert again.ref.key == first.ref.key != moved.ref.key  # the revision is in the stage key too
