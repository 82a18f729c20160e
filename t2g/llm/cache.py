"""The LLM response cache: every request extract and reason send is looked up by its
content before it reaches a backend, so a rerun over a grown or reordered corpus pays the
teacher only for what is new.

A key is the sha256 of the model's identity, the generation settings that change an
answer, the messages (or prompt), the JSON schema, every sampling setting (seed
included) and the request's sample index. An entry is one immutable JSON object in a
store, `_llm_cache/<k[:2]>/<k>.json`, written with the store's atomic put as soon as its
result arrives (a kill loses only the requests in flight); only results without an error
are written. Two writers of one key write the same answer (or, sampling without a seed,
an equally valid one): the last wins, whole. A lookup is one GET (a stage's lookups go
in batches of LOOKUP_BATCH, Store.get_many; a served model gets each batch's misses while the
next batch is read); nothing lists.

Identity (`identity`), as the backend's registry entry (t2g.llm.registry) names its
model: for a local backend, a model folder (an "@teacher" artifact, a checkpoint) by its
content digest (t2g.fingerprint); a hub name only with `model_revision` pinned, since an
unpinned name can change its weights under the cache: such a model gets no cache
(`identity` returns None, and the stage says so in its summary). A served backend
(openai-compatible) by its served name plus the optional `model_revision`: whoever serves
it vouches for the name (set or change `model_revision` when the weights behind it change).

Which cache: the orchestration opens it from the recipe (`open_cache`: the store named
by `llm_cache`, default the recipe's own store) and wraps the stage in `use_cache(...)`,
a context variable, so the stage functions' signatures and artifact keys stay as they
are. Outside it (a stage called directly, the unit tests) nothing is cached.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any

from t2g.llm import engine_settings, get_backend, registry, resolve_api_key
from t2g.llm.base import Backend, Numbered, Request, Result, StreamingBackend, failed
from t2g.store import Store

PREFIX = "_llm_cache"
FORMAT = 1  # bump when an entry's layout or the key's recipe changes
CHUNK = 256  # requests per generate call for a backend that cannot report results one by one
# Keys per lookup batch: a streaming backend asks a batch's misses while the next is read,
# so the first requests leave after one batch's reads, not all of a shard's.
LOOKUP_BATCH = 64

# Engine settings that change what a model answers (the prompt a backend cuts to fit,
# the numerics): part of the identity. Throughput settings (batch size, in-flight
# requests, timeouts, devices) are not.
_ANSWER_SETTINGS = ("dtype", "quantization", "max_model_len", "too_long", "max_prompt_tokens")

log = logging.getLogger(__name__)


# --- keys ---------------------------------------------------------------------------


def identity(backend: str, cfg: Any, model: str) -> str | None:
    """What names the model behind a stage's requests, with the engine settings that
    change its answers; None: not cacheable (an unpinned hub model)."""
    who = registry.lookup(backend).model_identity(model, getattr(cfg, "model_revision", None))
    if who is None:
        return None
    settings = {name: getattr(cfg, name, None) for name in _ANSWER_SETTINGS}
    return json.dumps({"backend": backend, "model": who, "settings": settings}, sort_keys=True)


def request_key(identity: str, request: Request, sample: int = 0) -> str:
    """The entry's key; `sample`: which of several samples of one request (n>1)."""
    payload = {
        "format": FORMAT,
        "identity": identity,
        "messages": request.messages,
        "prompt": request.prompt,
        "schema": request.schema,
        "sampling": asdict(request.sampling),
        "sample": sample,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def entry_path(key: str, prefix: str = PREFIX) -> str:
    return f"{prefix}/{key[:2]}/{key}.json"


# --- the cache ----------------------------------------------------------------------


class ResponseCache:
    """Entries under `prefix` of a store. Safe to share between processes and stores."""

    def __init__(self, store: Store, prefix: str = PREFIX):
        self.store, self.prefix = store, prefix

    def __repr__(self) -> str:
        return f"ResponseCache({self.store.loose_uri(self.prefix)})"

    def get(self, key: str) -> Result | None:
        """The cached result, or None (absent, or unreadable: then it is asked again and rewritten)."""
        return self.get_many([key])[0]

    def get_many(self, keys: Sequence[str]) -> list[Result | None]:
        """`get` for each key, in one batch of reads (Store.get_many)."""
        raws = self.store.get_many([entry_path(key, self.prefix) for key in keys])
        return [self._parse(key, raw) if raw is not None else None for key, raw in zip(keys, raws)]

    def _parse(self, key: str, raw: bytes) -> Result | None:
        try:
            entry = json.loads(raw)
            if not isinstance(entry, dict):
                raise ValueError(f"not a JSON object but a {type(entry).__name__}")
            if entry.get("key") != key:
                raise ValueError(f"holds key {str(entry.get('key'))[:12]}")
            return _checked_result(entry["result"])
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            log.warning("LLM cache entry %s is unreadable (%s); asking again", key[:12], exc)
            return None

    def put(self, key: str, result: Result) -> None:
        if not result.ok:
            return  # an error may not recur: never cached
        entry = {"key": key, "format": FORMAT, "result": asdict(result), "created": datetime.now(UTC).isoformat()}
        self.store.put_bytes(entry_path(key, self.prefix), json.dumps(entry, sort_keys=True).encode())

    def stats(self) -> dict[str, Any]:
        """Entries, bytes, oldest and newest (one listing: for the CLI, never per request)."""
        files = self._files()
        times = [t for _, _, t in files]
        return {
            "uri": self.store.loose_uri(self.prefix),
            "entries": len(files),
            "bytes": sum(size for _, size, _ in files),
            "oldest": _iso(min(times)) if times else None,
            "newest": _iso(max(times)) if times else None,
        }

    def prune(self, older_than_s: float | None = None) -> int:
        """Delete entries written more than `older_than_s` ago (None: all); how many."""
        now = time.time()
        gone = 0
        for name, _, mtime in self._files():
            if older_than_s is None or now - mtime > older_than_s:
                self.store.delete_bytes(f"{self.prefix}/{name}")
                gone += 1
        return gone

    def _files(self) -> list[tuple[str, int, float]]:
        return [(n, s, t) for n, s, t in self.store.list_tree_stats(self.prefix) if n.endswith(".json")]


# The type of each Result field as `put` writes it: an entry whose fields differ (edited, or
# planted by whoever can write the cache's store) would fail later, in a stage's
# accounting or parsing, or pass an error off as an answer. A Result field of a type not
# below fails here, at import, not as every entry a silent miss.
_JSON_TYPES = {"str": str, "str | None": (str, type(None)), "int": int, "bool": bool}
_RESULT_TYPES = {f.name: _JSON_TYPES[f.type] for f in fields(Result)}


def _checked_result(value: Any) -> Result:
    """The Result an entry holds, or a ValueError: only what `put` writes, an answer
    without an error with each field of its type."""
    if not isinstance(value, dict):
        raise ValueError(f"result is a {type(value).__name__}, not an object")
    for name, got in value.items():
        want = _RESULT_TYPES.get(name)
        if want is None or not isinstance(got, want) or (want is int and isinstance(got, bool)):
            raise ValueError(f"result field {str(name)[:32]!r} is a {type(got).__name__}")
    result = Result(**value)
    if not result.ok:
        raise ValueError("holds an error, which is never cached")
    return result


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def open_cache(store: str, llm_cache: str | None = None, **s3_kwargs: Any) -> ResponseCache:
    """The cache a recipe names: `llm_cache` (a store URI, shared by as many stores as
    name it), else the recipe's own store; entries live under its `_llm_cache/`."""
    return ResponseCache(Store(llm_cache or store, **s3_kwargs))


_current: ContextVar[ResponseCache | None] = ContextVar("t2g_llm_cache", default=None)


@contextmanager
def use_cache(cache: ResponseCache | None) -> Iterator[ResponseCache | None]:
    """LLM stages run inside look their requests up in `cache` (None: no cache)."""
    token = _current.set(cache)
    try:
        yield cache
    finally:
        _current.reset(token)


def current_cache() -> ResponseCache | None:
    return _current.get()


# --- the wrapper --------------------------------------------------------------------


@dataclass
class Accounting:
    """What a stage's requests cost: sums, so shard summaries add up (t2g.shards)."""

    requests: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    prompt_tokens_generated: int = 0
    completion_tokens_generated: int = 0
    prompt_tokens_saved: int = 0
    completion_tokens_saved: int = 0
    wall_s: float = 0.0
    cache_write_errors: int = 0

    def add(self, result: Result, hit: bool) -> None:
        self.requests += 1
        if hit:
            self.cache_hits += 1
            self.prompt_tokens_saved += result.prompt_tokens
            self.completion_tokens_saved += result.completion_tokens
        else:
            self.cache_misses += 1
            self.prompt_tokens_generated += result.prompt_tokens
            self.completion_tokens_generated += result.completion_tokens

    def summary(self, price: Any = None, cache: str = "on") -> dict[str, Any]:
        out: dict[str, Any] = {**asdict(self), "wall_s": round(self.wall_s, 3)}
        if cache != "on":
            out["cache_off"] = cache
        if price is not None:
            # Millionths of the price's currency, as integers: shard summaries add up exactly.
            out["cost_millionths"] = _cost(price, self.prompt_tokens_generated, self.completion_tokens_generated)
            out["saved_millionths"] = _cost(price, self.prompt_tokens_saved, self.completion_tokens_saved)
        return out


def _cost(price: Any, prompt: int, completion: int) -> int:
    return round(prompt * price.prompt_per_million + completion * price.completion_per_million)


class CachedBackend:
    """A Backend that answers from the cache what it can and asks `backend` the rest,
    writing each answer as it arrives. `backend` may be a zero-argument factory: a
    request list answered whole from the cache then never loads the model."""

    def __init__(self, backend: Backend | Callable[[], Backend], cache: ResponseCache, identity: str):
        self._backend = backend
        self.cache, self.identity = cache, identity
        self.accounting = Accounting()
        self._lock = threading.Lock()

    @property
    def backend(self) -> Backend:
        if not hasattr(self._backend, "generate"):
            self._backend = self._backend()  # type: ignore[operator]
        return self._backend  # type: ignore[return-value]

    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def model(self) -> str:
        return self.backend.model

    def generate(self, requests: Sequence[Request]) -> list[Result]:
        started = time.time()
        keys: list[str] = []  # filled a batch at a time by the lookups: the first batch leaves sooner
        results: list[Result | None] = [None] * len(requests)
        misses = self._lookups(requests, keys, results)
        first = next((batch for batch in misses if batch), None)  # no miss: the backend never loads
        if first is not None:
            with ThreadPoolExecutor(4) as writes:
                self._ask(keys, itertools.chain([first], misses), results, writes)
            for i in (i for i, res in enumerate(results) if res is None):  # never lost: an error row
                results[i] = failed("the backend gave no answer to this request")
                self.accounting.add(results[i], hit=False)
        self.accounting.wall_s += time.time() - started
        return results  # type: ignore[return-value]

    def _lookups(self, requests: Sequence[Request], keys: list[str], results: list) -> Iterator[list[Numbered]]:
        """Key and look up the requests a batch at a time, appending to `keys` and filling
        `results` with the hits; yield each batch's misses (a streaming backend asks them
        while the next batch is keyed and looked up)."""
        for start in range(0, len(requests), LOOKUP_BATCH):
            keys += [request_key(self.identity, r, r.sample) for r in requests[start : start + LOOKUP_BATCH]]
            found = self.cache.get_many(keys[start : start + LOOKUP_BATCH])
            misses = []
            for i, res in enumerate(found, start):
                if res is None:
                    misses.append((i, requests[i]))
                    continue
                results[i] = res
                with self._lock:
                    self.accounting.add(res, hit=True)
            yield misses

    def _ask(
        self, keys: list[str], misses: Iterator[list[Numbered]], results: list, writes: ThreadPoolExecutor
    ) -> None:
        def arrived(i: int, result: Result) -> None:
            results[i] = result
            with self._lock:
                self.accounting.add(result, hit=False)
            if result.ok:
                writes.submit(self._write, keys[i], result)

        backend = self.backend
        if isinstance(backend, StreamingBackend):  # a served model: each answer as it returns
            backend.stream(misses, arrived)
            return
        todo = [numbered for batch in misses for numbered in batch]
        size = max(CHUNK, getattr(backend, "batch_size", 0) or 0)
        for start in range(0, len(todo), size):  # local engines: written per chunk
            chunk = todo[start : start + size]
            for (i, _), result in zip(chunk, backend.generate([r for _, r in chunk]), strict=True):
                arrived(i, result)

    def _write(self, key: str, result: Result) -> None:
        try:
            self.cache.put(key, result)
        except Exception as exc:  # the answer is in hand: a failed write costs a later rerun only
            with self._lock:
                self.accounting.cache_write_errors += 1
            log.warning("LLM cache write of %s failed: %s", key[:12], exc)


# --- what stages call ---------------------------------------------------------------


def generate(
    cfg: Any, model: str, requests: Sequence[Request], api_key: str | None = None
) -> tuple[list[Result], dict[str, Any]]:
    """Answer a stage's requests through the current cache (if any and if the model has
    an identity): the results in order, and the accounting for the stage's summary."""

    def load() -> Backend:
        return get_backend(cfg.backend, engine_settings(cfg, model), resolve_api_key(cfg, api_key))

    cache = current_cache()
    ident = identity(cfg.backend, cfg, model) if cache is not None and requests else None
    price = getattr(cfg, "price", None)
    if cache is None or ident is None:
        started, account = time.time(), Accounting()
        results = load().generate(requests) if requests else []
        for res in results:
            account.add(res, hit=False)
        account.wall_s = time.time() - started
        why = "no cache configured" if cache is None else "unpinned hub model (set model_revision)"
        return results, account.summary(price, cache=why)
    wrapped = CachedBackend(load, cache, ident)
    results = wrapped.generate(requests)
    return results, wrapped.accounting.summary(price)


def as_reused(summary: dict[str, Any]) -> dict[str, Any]:
    """A stored summary seen from a run that reused its whole output (a finished shard):
    every request it counted was answered without asking the model this time."""
    acc = summary.get("llm") if isinstance(summary, dict) else None
    if not isinstance(acc, dict):
        return summary
    acc = dict(acc)
    acc["cache_hits"] = int(acc.get("cache_hits", 0)) + int(acc.get("cache_misses", 0))
    acc["cache_misses"] = 0
    for kind in ("prompt_tokens", "completion_tokens"):
        acc[f"{kind}_saved"] = int(acc.get(f"{kind}_saved", 0)) + int(acc.get(f"{kind}_generated", 0))
        acc[f"{kind}_generated"] = 0
    if "cost_millionths" in acc:
        acc["saved_millionths"] = int(acc.get("saved_millionths", 0)) + int(acc["cost_millionths"])
        acc["cost_millionths"] = 0
    acc["wall_s"] = 0.0
    return {**summary, "llm": acc}


def accounting_lines(summary: dict[str, Any]) -> list[str]:
    """Lines for `t2g run`'s closing report from an LLM stage's summary (its `llm`
    entry); empty for a stage without one."""
    acc = summary.get("llm") if isinstance(summary, dict) else None
    if not isinstance(acc, dict) or not acc.get("requests"):
        return []
    n, hits = int(acc["requests"]), int(acc.get("cache_hits", 0))
    lines = [
        f"{n} requests, {hits} cache hits ({100 * hits / n:.0f}%), {int(acc.get('cache_misses', 0))} sent"
        + (f" [cache off: {_text(acc['cache_off'])}]" if acc.get("cache_off") else ""),
        f"tokens generated {_tokens(acc, 'generated')}, saved {_tokens(acc, 'saved')}; {float(acc.get('wall_s', 0)):.1f} s",
    ]
    if "cost_millionths" in acc:
        lines.append(
            f"cost {acc['cost_millionths'] / 1e6:.4f}, saved {acc.get('saved_millionths', 0) / 1e6:.4f} (recipe price)"
        )
    return lines


def _tokens(acc: dict[str, Any], kind: str) -> str:
    return (
        f"{int(acc.get(f'prompt_tokens_{kind}', 0))} prompt + {int(acc.get(f'completion_tokens_{kind}', 0))} completion"
    )


def _text(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)
