"""The openai backend against a local server that fails on a schedule: every request ends
with a result or a recorded error, in order, none lost or duplicated; a 400 is recorded
at once, retryable errors are retried with backoff.

Attempts are counted at the server. A "slow" answer stalls until the client's timeout
hangs up, and that timeout (3 s) is far above what an immediate answer takes even on a
loaded machine, so the counts do not depend on the clock."""

from __future__ import annotations

import json

from t2g.llm import Request, Sampling
from t2g.llm.openai_backend import OpenAIBackend
from tests.support.fake_openai import FakeOpenAI

# Five fault kinds, cycled over the documents; "400" is never retried.
FAULTS = [["500", "500"], ["429"], ["slow"], ["invalid"], ["400"], ["drop"], ["500", "429", "slow"], []]


TIMEOUT_S = 3.0


def _backend(url: str, retries: int = 4) -> OpenAIBackend:
    return OpenAIBackend(
        model="fake",
        base_url=url,
        api_key="sk-test",
        max_in_flight=8,
        timeout_s=TIMEOUT_S,
        max_retries=retries,
        backoff_s=0.01,
    )


def _requests(n: int) -> list[Request]:
    schema = {"type": "object"}
    return [
        Request(
            messages=[{"role": "user", "content": f"[doc{i}] text {i}"}],
            schema=schema,
            sampling=Sampling(max_new_tokens=32),
        )
        for i in range(n)
    ]


def test_faults_on_a_schedule_lose_nothing():
    n = 40
    schedule = {f"doc{i}": FAULTS[i % len(FAULTS)] for i in range(n)}
    with FakeOpenAI(
        schedule, answer=lambda key, body: (json.dumps({"entities": [], "relations": [], "key": key}), None)
    ) as fake:
        results = _backend(fake.base_url).generate(_requests(n))
    assert len(results) == n
    for i, res in enumerate(results):
        kind = FAULTS[i % len(FAULTS)]
        if kind == ["400"]:
            assert res.error.startswith("400") and fake.attempts[f"doc{i}"] == 1, (i, res)
        elif kind == ["invalid"]:
            # A 200 whose text is not JSON is the model's answer: kept for the parser to judge.
            assert not res.error and res.text.startswith('{"entities": [ {"text": oops')
        else:
            assert not res.error, (i, res)
            assert json.loads(res.text)["key"] == f"doc{i}"  # order kept: each result is its own request's
            assert fake.attempts[f"doc{i}"] == len(kind) + 1
    # The schedule asked for response_format json_schema on every request.
    assert all(b["response_format"]["type"] == "json_schema" for b in fake.bodies)


def test_out_of_retries_is_recorded():
    with FakeOpenAI({"doc0": ["500"] * 10, "doc1": []}) as fake:
        results = _backend(fake.base_url, retries=2).generate(_requests(2))
    assert results[0].error.startswith("gave up after 3 attempts: 500") and fake.attempts["doc0"] == 3
    assert not results[1].error


def test_reasoning_content_is_picked_up():
    with FakeOpenAI(answer=lambda key, body: ("the answer", "the thinking")) as fake:
        (res,) = _backend(fake.base_url).generate([Request(messages=[{"role": "user", "content": "[x] hi"}])])
    assert res.text == "the answer" and res.reasoning == "the thinking" and res.completion_tokens > 0


def test_key_never_in_repr_or_errors():
    backend = _backend("http://127.0.0.1:9/v1", retries=0)
    (res,) = backend.generate([Request(prompt="[x] hi")])
    assert res.error and "sk-test" not in res.error and "sk-test" not in repr(backend)
