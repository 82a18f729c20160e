"""The LLM response cache (t2g/llm/cache.py): keys follow the request's content, a
regeneration over a grown and edited corpus asks the teacher only for what is new, a
kill loses only the requests in flight, and processes sharing one cache lose nothing.
The teacher is tests/support/fake_openai.py, which counts the requests it gets per prompt."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from t2g import shards, toyworld
from t2g.cli import app
from t2g.config import CollectConfig, ExtractConfig, FilterConfig, Price, ReasonConfig
from t2g.llm import Request, Result, Sampling, clear_cache
from t2g.llm import cache as llm_cache
from t2g.llm.cache import (
    CachedBackend,
    ResponseCache,
    accounting_lines,
    entry_path,
    identity,
    request_key,
    use_cache,
)
from t2g.llm.openai_backend import OpenAIBackend
from t2g.stages.collect import collect
from t2g.stages.extract import extract
from t2g.stages.filter import filter_graphs
from t2g.stages.reason import reason
from t2g.store import Store
from tests.support.fake_openai import FakeOpenAI

REPO = Path(__file__).resolve().parents[3]


def answer(key: str, body: dict) -> tuple[str, None]:
    """An answer that names its prompt: a cache serving the wrong entry shows in `raw`."""
    digest = hashlib.sha256(body["messages"][-1]["content"].encode()).hexdigest()[:12]
    return json.dumps({"entities": [], "relations": [], "prompt": digest}), None


def _docs(n: int, seed: int) -> pa.Table:
    cfg = CollectConfig.model_validate(
        {
            "sources": [{"name": f"s{seed}", "kind": "toyworld", "split": "pool", "n": n, "seed": seed}],
            "near_duplicate_threshold": None,
        }
    )
    main = collect(cfg).main
    return main if isinstance(main, pa.Table) else pa.concat_tables(list(main))


def _cfg(fake: FakeOpenAI, **kw) -> ExtractConfig:
    return ExtractConfig(
        backend="openai", model="fake-teacher", base_url=fake.base_url, timeout_s=10, backoff_s=0.01, **kw
    )


def _label(docs: pa.Table, store: Store, cfg: ExtractConfig, cache: ResponseCache):
    """The sharded extract stage over `docs`, as the flow runs it: its rows and summary."""
    ref = store.write(
        "collect", hashlib.sha256(docs.column("text").to_pylist().__repr__().encode()).hexdigest()[:16], docs
    )
    with use_cache(cache):
        outcome = shards.run_all("extract", cfg, [ref], store, cfg.shard_size)
    clear_cache()
    return store.read("extract", outcome.ref.key).to_pylist(), outcome.summary


# --- keys ---------------------------------------------------------------------------

_REQUEST = Request(
    messages=[{"role": "user", "content": "text"}], schema={"type": "object"}, sampling=Sampling(64, 0.0, 1.0, 0)
)
_CHANGES = {
    "messages": lambda r, v: dataclasses.replace(r, messages=[{"role": "user", "content": v}]),
    "prompt": lambda r, v: Request(prompt=v, schema=r.schema, sampling=r.sampling),
    "schema": lambda r, v: dataclasses.replace(r, schema={"type": "object", "title": v}),
    "max_new_tokens": lambda r, v: dataclasses.replace(
        r, sampling=dataclasses.replace(r.sampling, max_new_tokens=65 + len(v))
    ),
    "temperature": lambda r, v: dataclasses.replace(
        r, sampling=dataclasses.replace(r.sampling, temperature=0.5 + len(v))
    ),
    "top_p": lambda r, v: dataclasses.replace(r, sampling=dataclasses.replace(r.sampling, top_p=0.5)),
    "seed": lambda r, v: dataclasses.replace(r, sampling=dataclasses.replace(r.sampling, seed=1 + len(v))),
    "sample": lambda r, v: dataclasses.replace(r, sample=1 + len(v)),
}


@settings(max_examples=60, deadline=None)
@given(change=st.sampled_from(sorted(_CHANGES)), value=st.text(min_size=1, max_size=20).filter(lambda v: v != "text"))
def test_every_part_of_a_request_is_in_its_key(change, value):
    ident = identity("openai", ExtractConfig(backend="openai", model="m"), "m")
    changed = _CHANGES[change](_REQUEST, value)
    assert request_key(ident, changed, changed.sample) != request_key(ident, _REQUEST)
    assert request_key(ident, _REQUEST) == request_key(ident, dataclasses.replace(_REQUEST))  # same content, same key


def test_identity_names_the_weights(tmp_path):
    assert identity("vllm", ExtractConfig(backend="vllm"), "org/model") is None  # unpinned hub model: no cache
    pinned = identity("vllm", ExtractConfig(backend="vllm", model_revision="abc123"), "org/model")
    assert "hub:org/model@abc123" in pinned
    assert pinned != identity("vllm", ExtractConfig(backend="vllm", model_revision="def456"), "org/model")
    assert pinned != identity(
        "vllm", ExtractConfig(backend="vllm", model_revision="abc123", too_long="skip"), "org/model"
    )
    served = identity("openai", ExtractConfig(backend="openai"), "served")
    assert served != identity("openai", ExtractConfig(backend="openai", model_revision="v2"), "served")
    # A local folder (an "@teacher" artifact) by its content: new weights, new identity.
    (tmp_path / "config.json").write_text("{}")
    before = identity("transformers", ExtractConfig(backend="transformers"), str(tmp_path))
    (tmp_path / "config.json").write_text('{"hidden": 2}')
    assert before and before != identity("transformers", ExtractConfig(backend="transformers"), str(tmp_path))


def test_only_answers_are_cached_and_a_bad_entry_is_a_miss(tmp_path):
    cache = ResponseCache(Store(f"file://{tmp_path}"))
    cache.put("a" * 64, Result(error="500 boom", finish_reason="error"))
    assert cache.get("a" * 64) is None and cache.stats()["entries"] == 0
    cache.put("b" * 64, Result(text="x", finish_reason="stop", prompt_tokens=3, completion_tokens=1))
    assert cache.get("b" * 64) == Result(text="x", finish_reason="stop", prompt_tokens=3, completion_tokens=1)
    # An entry holding another key's answer, or torn bytes, is asked again.
    Store(f"file://{tmp_path}").put_bytes(entry_path("c" * 64), (tmp_path / entry_path("b" * 64)).read_bytes())
    Store(f"file://{tmp_path}").put_bytes(entry_path("d" * 64), b'{"key": "dd')
    assert cache.get("c" * 64) is None and cache.get("d" * 64) is None


@pytest.mark.parametrize(
    "body",
    [
        b"[1, 2]",  # valid JSON, not an object
        b'"x"',
        b"1e999",
        b"[" * 100_000,  # nested past the JSON decoder's recursion
        json.dumps({"key": "e" * 64, "result": {"text": "x", "prompt_tokens": "lots"}}).encode(),
        json.dumps({"key": "e" * 64, "result": {"text": 5}}).encode(),
        json.dumps({"key": "e" * 64, "result": {"text": "x", "completion_tokens": None}}).encode(),
        json.dumps({"key": "e" * 64, "result": {"text": "x", "truncated": 1}}).encode(),
        json.dumps({"key": "e" * 64, "result": {"text": "x", "error": "planted"}}).encode(),
    ],
    ids=["list", "string", "float", "deep", "str-tokens", "int-text", "null-tokens", "int-flag", "error"],
)
def test_a_planted_entry_of_another_shape_is_a_miss(tmp_path, body):
    """Whoever can write the cache's store plants an entry under a request's key: unless
    it has the shape `put` writes (an object, each result field of its type, no error) it
    is asked again, never a crash in the stage's accounting nor an error served as a hit."""
    request = Request(prompt="p")
    key = request_key("served:m", request)
    store = Store(f"file://{tmp_path}")
    store.put_bytes(entry_path(key), body.replace(b"e" * 64, key.encode()))

    class Fresh:
        name, model = "fresh", "m"

        def generate(self, requests):
            return [Result(text="fresh", finish_reason="stop", prompt_tokens=2) for _ in requests]

    wrapped = CachedBackend(Fresh(), ResponseCache(store), "served:m")
    assert wrapped.generate([request]) == [Result(text="fresh", finish_reason="stop", prompt_tokens=2)]
    assert wrapped.accounting.cache_misses == 1 and wrapped.accounting.cache_hits == 0
    assert ResponseCache(store).get(key).text == "fresh"  # rewritten with the answer


# --- regeneration -------------------------------------------------------------------


def test_regeneration_sends_only_new_and_edited_documents(tmp_path):
    # Without a request of their own, so extract samples the absent types it asks for:
    # per document, or inserting one would change every later document's request.
    old = [
        {**r, "entity_types": None, "relation_types": None} for r in _docs(60, seed=11).to_pylist()
    ]  # about 60: collect drops exact duplicates
    extra = [
        {**r, "entity_types": None, "relation_types": None} for r in _docs(6, seed=12).to_pylist()
    ]  # 10% new documents
    assert not {r["text"] for r in extra} & {r["text"] for r in old}
    rng = random.Random(5)
    new = [dict(r) for r in old]
    edited = rng.sample(range(len(old)), 3)  # 5% of the old ones edited
    for i in edited:
        new[i]["text"] = new[i]["text"] + " It rained."
    changed = [new[i]["text"] for i in edited] + [r["text"] for r in extra]
    for row in extra:  # inserted at random positions
        new.insert(rng.randrange(len(new) + 1), row)
    schema = pa.schema([f.with_nullable(True) for f in _docs(1, seed=11).schema])
    old_t, new_t = pa.Table.from_pylist(old, schema=schema), pa.Table.from_pylist(new, schema=schema)

    with FakeOpenAI(answer=answer) as fake:
        price = Price(prompt_per_million=600, completion_per_million=800)
        types = {
            "entity_types": [*toyworld.ENTITY_TYPES, "planet", "ship"],
            "relation_types": [*toyworld.RELATION_TYPES, "orbits"],
        }
        cfg = _cfg(fake, shard_size=16, price=price, absent_types=2, **types)
        cache = ResponseCache(Store(f"file://{tmp_path}/shared-cache"))
        _, first = _label(old_t, Store(f"file://{tmp_path}/store"), cfg, cache)
        assert fake.answered == len(old) == first["llm"]["cache_misses"] and first["llm"]["cache_hits"] == 0
        fake.prompts.clear()
        rows, second = _label(new_t, Store(f"file://{tmp_path}/store"), cfg, cache)
        sent = dict(fake.prompts)
        # From scratch on the new corpus: another store, an empty cache.
        scratch, _ = _label(
            new_t, Store(f"file://{tmp_path}/scratch"), cfg, ResponseCache(Store(f"file://{tmp_path}/empty-cache"))
        )

    assert sorted(sent.values()) == [1] * len(changed), sent  # each once
    assert sorted(next(t for t in changed if t in p) for p in sent) == sorted(changed)  # exactly those
    assert rows == scratch  # the same rows, in corpus order, as a from-scratch run
    acc, hits = second["llm"], len(old) - len(edited)
    assert acc["requests"] == len(new) and acc["cache_hits"] == hits and acc["cache_misses"] == len(changed) == 9
    assert (
        acc["prompt_tokens_saved"] == hits * 10 and acc["prompt_tokens_generated"] == 9 * 10
    )  # the fake: 10 per prompt
    assert acc["saved_millionths"] == hits * 10 * 600 + acc["completion_tokens_saved"] * 800
    lines = accounting_lines(second)
    assert lines[0].startswith(f"{len(new)} requests, {hits} cache hits (") and lines[0].endswith(", 9 sent")
    assert lines[-1].startswith("cost 0.")


def test_reason_asks_once_per_augmented_request(tmp_path):
    """Reason's requests are filter's examples and their type-subset variants: drawn per
    document, so a second run over the same examples is answered whole from the cache."""
    kept = filter_graphs(
        FilterConfig(augment={"variants": 2}), extract(ExtractConfig(backend="gold"), _docs(10, seed=16)).main
    ).main
    cache = ResponseCache(Store(f"file://{tmp_path}"))
    with FakeOpenAI(answer=lambda key, body: ("<think>the text names a few things</think>", None)) as fake:
        cfg = ReasonConfig(thinking=True, backend="openai", model="fake-reasoner", base_url=fake.base_url, timeout_s=10)
        with use_cache(cache):
            first = reason(cfg, kept)
            second = reason(cfg, kept)
    clear_cache()
    assert fake.answered == kept.num_rows > 10 and first.main.to_pylist() == second.main.to_pylist()
    assert second.summary["llm"]["cache_hits"] == kept.num_rows and second.summary["llm"]["cache_misses"] == 0


def test_without_a_cache_every_request_is_sent(tmp_path):
    docs = _docs(8, seed=13)
    with FakeOpenAI(answer=answer) as fake:
        for _ in range(2):
            res = extract(_cfg(fake), docs)
    clear_cache()
    assert fake.answered == 16 and res.summary["llm"]["cache_off"] == "no cache configured"


# --- asking while looking up --------------------------------------------------------


class _LookupsWaitingForTheTeacher(ResponseCache):
    """A cache whose every lookup batch after the first waits (up to 10 s) for the teacher's
    first request: it comes only if the first batch's misses were asked without waiting
    for the rest of the lookups."""

    def __init__(self, store: Store, fake: FakeOpenAI):
        super().__init__(store)
        self.fake, self.batches, self.teacher_asked = fake, 0, []

    def get_many(self, keys):
        self.batches += 1
        if self.batches > 1:
            deadline = time.monotonic() + 10
            while not self.fake.prompts and time.monotonic() < deadline:
                time.sleep(0.01)
            self.teacher_asked.append(bool(self.fake.prompts))
        return super().get_many(keys)


def _prompt_of(result: Result) -> str:
    return json.loads(result.text)["prompt"]


def test_misses_are_asked_while_later_lookups_go_on_and_hits_never_load_the_backend(tmp_path, monkeypatch):
    monkeypatch.setattr(llm_cache, "LOOKUP_BATCH", 4)
    chats = [f"[r{i}] text {i}" for i in range(10)]
    requests = [Request(messages=[{"role": "user", "content": c}]) for c in chats]
    want = [hashlib.sha256(c.encode()).hexdigest()[:12] for c in chats]
    with FakeOpenAI(answer=answer) as fake:
        cache = _LookupsWaitingForTheTeacher(Store(f"file://{tmp_path}"), fake)
        backend = OpenAIBackend("fake-teacher", fake.base_url, "sk-test", max_in_flight=2)
        results = CachedBackend(backend, cache, "served:fake-teacher").generate(requests)
        assert cache.teacher_asked == [True, True]  # 3 batches: 4, 4, 2 keys
        assert [_prompt_of(r) for r in results] == want and fake.answered == 10

        def no_backend():
            raise AssertionError("an answer wholly from the cache loaded the backend")

        again = CachedBackend(no_backend, ResponseCache(Store(f"file://{tmp_path}")), "served:fake-teacher")
        assert [_prompt_of(r) for r in again.generate(requests)] == want and fake.answered == 10
        assert again.accounting.cache_hits == 10


class _Forgetful:
    """A streaming backend that never answers the first request of a batch."""

    name, model = "forgetful", "m"

    def generate(self, requests):
        raise AssertionError("a streaming backend is streamed to")

    def stream(self, batches, on_result):
        for batch in batches:
            for i, _ in batch[1:]:
                on_result(i, Result(text="x", finish_reason="stop"))


def test_a_request_a_backend_never_answers_ends_as_an_error_row(tmp_path, monkeypatch):
    monkeypatch.setattr(llm_cache, "LOOKUP_BATCH", 3)
    requests = [Request(prompt=f"p{i}") for i in range(5)]
    wrapped = CachedBackend(_Forgetful(), ResponseCache(Store(f"file://{tmp_path}")), "served:m")
    results = wrapped.generate(requests)
    assert [r.ok for r in results] == [False, True, True, False, True]
    assert "no answer" in results[0].error and wrapped.accounting.cache_misses == 5


# --- kills and concurrent writers -----------------------------------------------------

_LABEL_SCRIPT = """
import sys, threading
from t2g import shards, toyworld
from t2g.config import ExtractConfig
from t2g.llm.cache import ResponseCache, use_cache
from t2g.store import Store
store_uri, cache_uri, base_url, collect_key, in_flight = sys.argv[1:6]
store = Store(store_uri)
cfg = ExtractConfig(backend="openai", model="fake-teacher", base_url=base_url, timeout_s=10, backoff_s=0.01,
                    shard_size=1000, max_in_flight=int(in_flight))
cache = ResponseCache(Store(cache_uri))
done, torn = threading.Event(), []

def read_while_writing():  # every entry written so far, read back over and over while both processes write
    while not done.is_set():
        for name, _, _ in cache.store.list_tree_stats(cache.prefix):
            if name.endswith(".json") and cache.get(name.rsplit("/", 1)[-1][:-5]) is None:
                torn.append(name)

reader = threading.Thread(target=read_while_writing)
if len(sys.argv) > 6:
    reader.start()
with use_cache(cache):
    out = shards.run_all("extract", cfg, [store.ref("collect", collect_key)], store, cfg.shard_size)
done.set()
if len(sys.argv) > 6:
    reader.join()
    print("torn", len(torn))
print(out.summary["llm"]["cache_misses"])
"""


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(body))
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def test_a_kill_loses_only_the_requests_in_flight(tmp_path):
    """One shard, so no shard finishes before the kill: what survives is the cache."""
    store, cache = Store(f"file://{tmp_path}/store"), ResponseCache(Store(f"file://{tmp_path}/cache"))
    n = store.write("collect", "c0", _docs(80, seed=14)).rows
    script = _script(tmp_path, _LABEL_SCRIPT)
    with FakeOpenAI(answer=answer, latency_s=0.05) as fake:
        args = [sys.executable, str(script), store.root, cache.store.root, fake.base_url, "c0", "4"]
        proc = subprocess.Popen(args, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 120
        while fake.answered < 30 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
        survived = cache.stats()["entries"]
        first = fake.answered
        assert 0 < survived <= first < n  # killed mid-shard, answers already written
        fake.prompts.clear()
        rerun = subprocess.run(args, env=_env(), capture_output=True, text=True, check=True)
    assert int(rerun.stdout.split()[-1]) == n - survived == sum(fake.prompts.values())
    assert sorted(fake.prompts.values()) == [1] * (n - survived)
    assert cache.stats()["entries"] == n


def test_two_processes_sharing_one_cache_lose_and_tear_nothing(tmp_path):
    docs = _docs(120, seed=15)
    script = _script(tmp_path, _LABEL_SCRIPT)
    cache_uri = f"file://{tmp_path}/cache"
    with FakeOpenAI(answer=answer) as fake:
        procs = []
        for name, table in (("a", docs.slice(0, 90)), ("b", docs.slice(30, 90))):  # 60 documents in common
            store = Store(f"file://{tmp_path}/store-{name}")
            store.write("collect", "c0", table)
            args = [sys.executable, str(script), store.root, cache_uri, fake.base_url, "c0", "32", "read"]
            procs.append(subprocess.Popen(args, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outs]
    cache = ResponseCache(Store(cache_uri))
    files = sorted((tmp_path / "cache" / "_llm_cache").rglob("*"))
    entries = [f for f in files if f.is_file()]
    assert len(entries) == docs.num_rows and not [
        f for f in entries if not f.name.endswith(".json")
    ]  # no temporary leftovers
    for f in entries:
        entry = json.loads(f.read_bytes())
        assert entry["key"] == f.stem and cache.get(f.stem) is not None
    assert [out.split()[1] for out, _ in outs] == ["0", "0"]  # no reader saw a torn entry
    assert "unreadable" not in outs[0][1] + outs[1][1]


# --- the CLI ------------------------------------------------------------------------


def test_cache_stats_and_prune(tmp_path):
    uri = f"file://{tmp_path}"
    cache = ResponseCache(Store(uri))
    for k in ("1" * 64, "2" * 64, "3" * 64):
        cache.put(k, Result(text=k, finish_reason="stop"))
    old = tmp_path / entry_path("1" * 64)
    os.utime(old, (time.time() - 10 * 86400,) * 2)
    runner = CliRunner()
    stats = json.loads(runner.invoke(app, ["cache", "stats", "--store", uri, "--json"]).output)
    assert stats["entries"] == 3 and stats["bytes"] > 0 and stats["oldest"] < stats["newest"]
    out = runner.invoke(app, ["cache", "prune", "--store", uri, "--older-than-days", "5"])
    assert out.exit_code == 0 and "removed 1 entry" in out.output
    assert cache.get("1" * 64) is None and cache.get("2" * 64) is not None
    assert "removed 2 entries" in runner.invoke(app, ["cache", "prune", "--store", uri]).output
    assert json.loads(runner.invoke(app, ["cache", "stats", "--store", uri, "--json"]).output)["entries"] == 0


@pytest.mark.parametrize("summary", [{}, {"rows_out": 3}, {"llm": {"requests": 0}}])
def test_no_accounting_lines_without_requests(summary):
    assert accounting_lines(summary) == []
