"""A local OpenAI-compatible server that misbehaves on a schedule, for fault tests.

Each request is matched to a key (the first `[key]` tag found in its last message or
prompt); the schedule gives the key's answers attempt by attempt: "500", "429", "400",
"slow" (sleeps past the client's timeout), "invalid" (200 with text that is not JSON),
"drop" (closes the connection), or "ok" (the default once the schedule runs out).
"ok" answers `answer(key, body)`: (content, reasoning_content or None).

`prompts` counts the requests per prompt (the last message, or the raw prompt) and
`answered` the 200s sent, for tests of the LLM response cache. `latency_s` and
`tokens_per_s` make each answer take as long as a server would, and `capacity` bounds
the answers in progress at once, as a GPU server's batch does (benchmarks).
"""

from __future__ import annotations

import json
import multiprocessing
import re
import select
import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_TAG = re.compile(r"\[([A-Za-z0-9_.:-]+)\]")


def empty_graph(key: str, body: dict) -> tuple[str, str | None]:
    return '{"entities": [], "relations": []}', None


class _Server(ThreadingHTTPServer):
    # socketserver's default backlog is 5: a burst of new connections (a client per
    # shard, 32 in flight) would wait out TCP's one-second SYN retry, as no real server does.
    request_queue_size = 256


class FakeOpenAI:
    def __init__(
        self,
        schedule: dict[str, list[str]] | None = None,
        answer: Callable[[str, dict], tuple[str, str | None]] = empty_graph,
        slow_s: float = 120.0,
        latency_s: float = 0.0,
        tokens_per_s: float | None = None,
        capacity: int | None = None,
    ):
        self.schedule = defaultdict(list, {k: list(v) for k, v in (schedule or {}).items()})
        self.answer = answer
        self.slow_s = slow_s
        self.latency_s, self.tokens_per_s = latency_s, tokens_per_s
        self.prompts: Counter[str] = Counter()
        self._capacity = threading.BoundedSemaphore(capacity) if capacity else None
        self.answered = 0
        self.attempts: Counter[str] = Counter()
        self.outcomes: dict[str, list[str]] = defaultdict(list)
        self.bodies: list[dict] = []
        self.authorizations: list[str | None] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _work(self, completion_tokens: int) -> None:
        seconds = self.latency_s + (completion_tokens / self.tokens_per_s if self.tokens_per_s else 0.0)
        if not seconds:
            return
        if self._capacity is None:
            time.sleep(seconds)
            return
        with self._capacity:
            time.sleep(seconds)

    def _next(self, key: str) -> str:
        with self._lock:
            self.attempts[key] += 1
            action = self.schedule[key].pop(0) if self.schedule[key] else "ok"
            self.outcomes[key].append(action)
            return action

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, status: int, payload: dict | str) -> None:
                data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): expected

            def _client_hung_up_within(self, seconds: float) -> bool:
                """Wait until the client closes the connection (True) or `seconds` pass."""
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    readable, _, _ = select.select([self.connection], [], [], 0.05)
                    if readable:
                        try:
                            if not self.connection.recv(1, socket.MSG_PEEK):
                                return True
                        except OSError:
                            return True
                return False

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                chat = self.path.endswith("/chat/completions")
                last = body["messages"][-1]["content"] if chat else body.get("prompt", "")
                with fake._lock:
                    fake.bodies.append(body)
                    fake.authorizations.append(self.headers.get("Authorization"))
                    fake.prompts[str(last)] += 1
                m = _TAG.search(str(last))
                key = m.group(1) if m else "?"
                action = fake._next(key)
                if action in ("500", "429", "400"):
                    self._send(
                        int(action), {"error": {"message": f"scheduled {action}", "type": "fake", "code": int(action)}}
                    )
                    return
                if action == "drop":
                    self.close_connection = True
                    self.connection.close()
                    return
                if action == "slow" and self._client_hung_up_within(fake.slow_s):
                    return
                if action == "invalid":
                    content, reasoning = '{"entities": [ {"text": oops', None
                else:
                    content, reasoning = fake.answer(key, body)
                completion_tokens = len(content.split()) + 1
                fake._work(completion_tokens)
                with fake._lock:  # counted before it is sent: the client may be done as soon as it arrives
                    fake.answered += 1
                choice: dict = {"index": 0, "finish_reason": "stop"}
                if chat:
                    message = {"role": "assistant", "content": content}
                    if reasoning is not None:
                        message["reasoning_content"] = reasoning
                    choice["message"] = message
                    obj = "chat.completion"
                else:
                    choice["text"] = content
                    obj = "text_completion"
                self._send(
                    200,
                    {
                        "id": f"fake-{key}-{fake.attempts[key]}",
                        "object": obj,
                        "created": int(time.time()),
                        "model": body.get("model", "fake"),
                        "choices": [choice],
                        "usage": {
                            "prompt_tokens": 10,
                            "completion_tokens": completion_tokens,
                            "total_tokens": 10 + completion_tokens,
                        },
                    },
                )

        return Handler


class FakeOpenAIProcess:
    """A FakeOpenAI in a child process (forked), for benchmarks: a real server does its work
    in another process, not in the client's interpreter, where the fake's threads took the
    lock the client's shards wait on. `answered` is asked of the child."""

    def __init__(self, **kwargs):
        self._kwargs = kwargs

    def __enter__(self) -> FakeOpenAIProcess:
        ctx = multiprocessing.get_context("fork")  # the answer function need not pickle
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, self._kwargs), daemon=True)
        self._proc.start()
        self.base_url = self._conn.recv()
        return self

    @property
    def answered(self) -> int:
        self._conn.send("answered")
        return self._conn.recv()

    def __exit__(self, *exc) -> None:
        self._conn.send("stop")
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()


def _serve(conn, kwargs: dict) -> None:
    with FakeOpenAI(**kwargs) as fake:
        fake.bodies = Discard()
        conn.send(fake.base_url)
        while (asked := conn.recv()) != "stop":
            conn.send(getattr(fake, asked))


class Discard(list):
    """`bodies` for a benchmark's server: it keeps no request bodies (100,000 of them are a
    few hundred MB)."""

    def append(self, item) -> None:
        pass
