"""The openai backend: any OpenAI-compatible server (vllm serve, SGLang, TGI, hosted).

Every request of a call is in flight at once up to `max_in_flight` (the server batches
them), each with its own timeout. 429, 5xx, connection errors and timeouts are retried
with exponential backoff and full jitter; any other refusal (400: prompt too long, bad
schema) is recorded on its request at once, never retried. A request out of retries
ends with its last error: nothing is lost, nothing runs twice into the output.
"""

from __future__ import annotations

import asyncio
import functools
import random
import ssl
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import openai

from t2g.llm.base import Numbered, Request, Result, failed

RETRYABLE = (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError, openai.APITimeoutError)


class OpenAIBackend:
    name = "openai"

    def __init__(
        self,
        model: str,
        base_url: str | None,
        api_key: str,
        max_in_flight: int = 32,
        timeout_s: float = 300.0,
        max_retries: int = 6,
        backoff_s: float = 1.0,
    ):
        self.model = model
        self.base_url = base_url
        self._api_key = api_key  # never logged, never in a repr
        self.max_in_flight = max_in_flight
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s

    def __repr__(self) -> str:
        return f"OpenAIBackend(model={self.model!r}, base_url={self.base_url!r})"

    def generate(
        self, requests: Sequence[Request], on_result: Callable[[int, Result], None] | None = None
    ) -> list[Result]:
        """One Result per request, in order. `on_result(i, result)` is called as each one
        returns (the LLM cache writes it then: a kill loses only the requests in flight)."""
        results: list[Result | None] = [None] * len(requests)

        def arrived(i: int, result: Result) -> None:
            results[i] = result
            if on_result is not None:
                on_result(i, result)

        self.stream([list(enumerate(requests))], arrived)
        return results  # type: ignore[return-value]

    def stream(self, batches: Iterable[Sequence[Numbered]], on_result: Callable[[int, Result], None]) -> None:
        """Send each batch's requests as it comes, while the earlier ones are in flight: the
        next batch is drawn on a worker thread (the LLM cache's lookups), `max_in_flight`
        bounds them all. `on_result(i, result)` once per request, as it returns."""
        coro = self._all(batches, on_result)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(coro)
            return
        # Called from inside an event loop (an async task): run ours on a thread.
        failure: list[BaseException] = []

        def run() -> None:
            try:
                asyncio.run(coro)
            except BaseException as exc:  # re-raised in the caller's thread
                failure.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
        if failure:
            raise failure[0]

    async def _all(self, batches: Iterable[Sequence[Numbered]], on_result: Callable[[int, Result], None]) -> None:
        # The client's own retries are off: ours know which errors to retry and record the rest.
        client = openai.AsyncOpenAI(
            base_url=self.base_url,
            api_key=self._api_key,
            max_retries=0,
            timeout=self.timeout_s,
            http_client=openai.DefaultAsyncHttpxClient(verify=tls_context()),
        )
        gate = asyncio.Semaphore(self.max_in_flight)
        pending, asked = iter(batches), []
        try:
            # to_thread: the draw sees the caller's context variables (the stage's log context).
            while (batch := await asyncio.to_thread(next, pending, None)) is not None:
                asked += [asyncio.create_task(self._reported(i, client, gate, r, on_result)) for i, r in batch]
            await asyncio.gather(*asked)
        finally:
            await client.close()

    async def _reported(
        self, i: int, client: openai.AsyncOpenAI, gate: asyncio.Semaphore, request: Request, on_result
    ) -> None:
        on_result(i, await self._one(client, gate, request))

    async def _one(self, client: openai.AsyncOpenAI, gate: asyncio.Semaphore, request: Request) -> Result:
        last = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                # Full jitter: spreads a burst of 429s instead of retrying in lockstep.
                await asyncio.sleep(random.uniform(0, self.backoff_s * 2 ** (attempt - 1)))
            try:
                async with gate:
                    return await self._call(client, request)
            except RETRYABLE as exc:
                last = _describe(exc)
            except openai.APIStatusError as exc:  # 400, 401, 404, 422: retrying cannot help
                return failed(_describe(exc))
            except Exception as exc:  # a malformed response body, say: recorded on this request
                return failed(f"{type(exc).__name__}: {exc}")
        return failed(f"gave up after {self.max_retries + 1} attempts: {last}")

    async def _call(self, client: openai.AsyncOpenAI, request: Request) -> Result:
        s = request.sampling
        # The request goes in `extra_body`, which the SDK sends as given: its typed parameters
        # are walked field by field against their TypedDicts, ~1.3 ms of CPU a request for
        # messages and schema that are plain JSON already (a shard's requests share one thread).
        body: dict[str, Any] = {"max_tokens": s.max_new_tokens, "temperature": s.temperature, "top_p": s.top_p}
        if s.seed is not None:
            body["seed"] = s.seed
        if request.messages is not None:
            body["messages"] = request.messages
            if request.schema is not None:
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "graph", "schema": request.schema, "strict": True},
                }
            resp = await client.chat.completions.create(model=self.model, messages=[], extra_body=body)
            choice = resp.choices[0]
            message = choice.message
            extra = getattr(message, "model_extra", None) or {}
            # vLLM/SGLang with a reasoning parser put the thinking apart (the name varies).
            reasoning = (
                getattr(message, "reasoning_content", None) or extra.get("reasoning_content") or extra.get("reasoning")
            )
            text = message.content or ""
        else:
            body["prompt"] = request.prompt
            if request.schema is not None:  # completions have no response_format: vLLM's own field
                body["structured_outputs"] = {"json": request.schema}
            resp = await client.completions.create(model=self.model, prompt="", extra_body=body)
            choice = resp.choices[0]
            reasoning, text = None, choice.text or ""
        usage = resp.usage
        return Result(
            text=text,
            reasoning=reasoning,
            finish_reason=choice.finish_reason or "",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
        )


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The default TLS context (system or certifi CAs, SSL_CERT_FILE honoured), made once per
    process: each client made its own, ~60 ms of CPU reading the CA bundle, and every shard
    of a stage makes a client per generate call (8 shards at once spent ~0.5 s of a rerun's
    critical path on it, issue 27's regeneration figure)."""
    try:
        import httpx2 as httpx  # what the locked openai uses
    except ImportError:  # an openai on plain httpx
        import httpx
    return httpx.create_ssl_context()


def _describe(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    message = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
    return f"{status} {type(exc).__name__}: {message}" if status else f"{type(exc).__name__}: {message}"
