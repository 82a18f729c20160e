"""The transformers backend with the tiny model: JSON-schema constrained decoding gives
only schema-valid JSON whose types are within the requested enums; prompts past the
context are truncated or skipped by the recipe rule, never crash."""

from __future__ import annotations

import json

import jsonschema
import pytest

from t2g import toyworld
from t2g.graph import json_schema
from t2g.llm import Request, Sampling, get_backend
from t2g.prompts import messages


def _settings(model_dir, **over):
    base = dict(
        model=str(model_dir),
        trust_remote_code=False,
        device="cpu",
        dtype="auto",
        batch_size=25,
        too_long="truncate",
        max_prompt_tokens=None,
    )
    return {**base, **over}


def test_constrained_json_is_schema_valid(tiny_model_dir):
    backend = get_backend("transformers", _settings(tiny_model_dir))
    docs = toyworld.generate(100, seed=7)
    etypes, rtypes = toyworld.world_types()
    requests = []
    for i, doc in enumerate(docs):
        # Vary the request: some documents ask for a subset, one for nothing at all.
        e = doc["entity_types"] if i % 3 else etypes[: 1 + i % len(etypes)]
        r = doc["relation_types"] if i % 5 else ([] if i == 0 else rtypes[:2])
        requests.append(
            Request(
                messages=messages(doc["text"], e, r), schema=json_schema(e, r), sampling=Sampling(max_new_tokens=96)
            )
        )
    results = backend.generate(requests)
    assert len(results) == 100
    for req, res in zip(requests, results):
        assert not res.error and res.finish_reason == "stop", res
        obj = json.loads(res.text)
        jsonschema.validate(obj, req.schema)  # types are enums of the request
        assert res.prompt_tokens > 0 and res.completion_tokens > 0


def test_free_text_and_schema_in_one_batch(tiny_model_dir):
    backend = get_backend("transformers", _settings(tiny_model_dir))
    schema = json_schema(["person"], ["works_for"])
    reqs = [
        Request(prompt="hello", sampling=Sampling(max_new_tokens=5)),
        Request(
            messages=messages("Ada works for Acme.", ["person"], ["works_for"]),
            schema=schema,
            sampling=Sampling(max_new_tokens=96),
        ),
    ]
    free, constrained = backend.generate(reqs)
    assert free.finish_reason in ("stop", "length") and free.completion_tokens <= 5
    jsonschema.validate(json.loads(constrained.text), schema)


@pytest.mark.parametrize("rule", ["truncate", "skip"])
def test_too_long_prompts_are_counted_not_fatal(tiny_model_dir, rule):
    backend = get_backend("transformers", _settings(tiny_model_dir, too_long=rule, max_prompt_tokens=64))
    schema = json_schema(["person"], [])
    long_text = " ".join(d["text"] for d in toyworld.generate(20, seed=3))
    reqs = [
        Request(messages=messages(long_text, ["person"], []), schema=schema, sampling=Sampling(max_new_tokens=48)),
        Request(prompt="short", schema=schema, sampling=Sampling(max_new_tokens=48)),
    ]
    long_res, short_res = backend.generate(reqs)
    if rule == "skip":
        assert long_res.finish_reason == "skipped" and "too long" in long_res.error
    else:
        assert long_res.truncated and not long_res.error and long_res.prompt_tokens == 64
        jsonschema.validate(json.loads(long_res.text), schema)
    assert not short_res.error and not short_res.truncated


def test_generation_runs_on_one_thread_whatever_thread_asks(tiny_model_dir):
    # Shards are threads sharing one backend: their batches must not overlap, and must all
    # run on one thread (torch's CPU kernels slow down when the calling thread changes).
    import threading
    import time

    backend = get_backend("transformers", _settings(tiny_model_dir))
    real, calls, guard = backend.lm.generate, [], threading.Lock()

    def generate(*args, **kwargs):
        start = time.perf_counter()
        time.sleep(0.05)  # room for another shard's batch to start, were it allowed
        try:
            return real(*args, **kwargs)
        finally:
            with guard:
                calls.append((threading.get_ident(), start, time.perf_counter()))

    backend.lm.generate = generate
    try:
        reqs = [
            Request(messages=messages("Marin works for Zentek.", ["person"], []), sampling=Sampling(max_new_tokens=4))
        ] * 3
        shards = [threading.Thread(target=backend.generate, args=(reqs,)) for _ in range(3)]
        for t in shards:
            t.start()
        for t in shards:
            t.join()
    finally:
        backend.lm.generate = real
    assert len(calls) == 3
    assert len({ident for ident, _, _ in calls}) == 1
    spans = sorted((s, e) for _, s, e in calls)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:]))
