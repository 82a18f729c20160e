"""An LLM backend that is not in t2g: tests/t2g/llm/test_llm_registry.py registers it in a test
registry to show that adding a backend takes one module (this one) plus one
`register(...)` entry (t2g.llm.registry), no other edit."""

from __future__ import annotations

import json
from collections.abc import Sequence

from t2g.llm.base import Request, Result

CALLS: list[int] = []  # requests per generate call, across instances: a cache hit asks nothing


class EchoBackend:
    """A served model that answers every request with an empty graph."""

    name = "echo"

    def __init__(self, model: str, base_url: str | None = None, api_key: str = "EMPTY"):
        self.model, self.base_url, self.api_key = model, base_url, api_key

    def generate(self, requests: Sequence[Request]) -> list[Result]:
        CALLS.append(len(requests))
        answer = json.dumps({"entities": [], "relations": []})
        return [Result(text=answer, finish_reason="stop", prompt_tokens=len(json.dumps(r.messages)), completion_tokens=3)
                for r in requests]  # fmt: skip


def identity(model: str, revision: str | None) -> str:
    return f"echo:{model}@{revision or 'latest'}"
