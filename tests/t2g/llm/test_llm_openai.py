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


def _self_signed(tmp_path):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return tmp_path / "cert.pem", tmp_path / "key.pem"


def test_an_https_server_with_an_untrusted_certificate_gets_no_request_and_no_key(tmp_path):
    # The TLS context is made once per process and shared by every client (openai_backend.tls_context):
    # sharing it must not turn verification off. A stranger's certificate: the handshake fails,
    # no request line and no Authorization header ever reach it, and the error is recorded.
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    cert, key = _self_signed(tmp_path)
    heard: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            heard.append(str(self.headers.get("Authorization")))
            self.send_response(500)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"https://127.0.0.1:{server.server_address[1]}/v1"
        for _ in range(2):  # the second call reuses the shared context
            results = _backend(url, retries=0).generate(_requests(2))
            assert [r.ok for r in results] == [False, False]
            assert all("APIConnectionError" in r.error for r in results), [r.error for r in results]
    finally:
        server.shutdown()
        server.server_close()
    assert heard == []


def test_the_body_on_the_wire_is_the_one_the_sdks_typed_call_sends():
    # The backend passes its request as extra_body (no per-field transform): the server must
    # get what client.chat.completions.create(...) / completions.create(...) with the same
    # typed arguments sends, byte for byte once parsed.
    import asyncio

    import openai

    from t2g.llm import Request, Sampling

    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    sampling = Sampling(max_new_tokens=17, temperature=0.3, top_p=0.9, seed=5)
    chat = Request(messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "[k] ü"}],
                   schema=schema, sampling=sampling)  # fmt: skip
    plain = Request(prompt="[k] p", schema=schema, sampling=sampling)
    common = {"model": "fake", "max_tokens": 17, "temperature": 0.3, "top_p": 0.9, "seed": 5}

    async def typed(url: str) -> None:
        client = openai.AsyncOpenAI(base_url=url, api_key="sk-test", max_retries=0)
        fmt = {"type": "json_schema", "json_schema": {"name": "graph", "schema": schema, "strict": True}}
        await client.chat.completions.create(messages=chat.messages, response_format=fmt, **common)
        await client.completions.create(prompt="[k] p", extra_body={"structured_outputs": {"json": schema}}, **common)
        await client.close()

    with FakeOpenAI() as fake:
        _backend(fake.base_url).generate([chat])
        _backend(fake.base_url).generate([plain])
        asyncio.run(typed(fake.base_url))
    assert len(fake.bodies) == 4
    assert fake.bodies[0] == fake.bodies[2] and fake.bodies[1] == fake.bodies[3]
