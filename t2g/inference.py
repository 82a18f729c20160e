"""Greedy answers from a local model, and `extract`: text in, validated graphs out.

The evaluate stage and `t2g extract` generate here, through the one generation path the
LLM stages use (t2g.llm): the transformers backend (t2g.llm.hf) behind the LLM response
cache (t2g.llm.cache) when one is in use, so re-evaluating a model on the same texts asks
it nothing, and a request list answered whole from the cache never loads the model.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from t2g.graph import Graph, json_schema, parse_completion
from t2g.llm.base import Backend, Request, Result, Sampling
from t2g.llm.cache import Accounting, CachedBackend, current_cache, identity
from t2g.prompts import messages


@dataclass(frozen=True)
class LocalModel:
    """A model transformers loads: a folder, or a hub name at `revision`. `content`: the
    digest of the folder's bytes, where its path and file times do not name it (a tiny
    base rebuilt into a temporary folder); it then names the model in the cache."""

    path: str
    trust_remote_code: bool = False
    revision: str | None = None
    content: str | None = None


@dataclass(frozen=True)
class _Engine:
    """The transformers backend's settings that change an answer (t2g.llm.cache.identity
    reads them), at the values LocalGenerator loads it with."""

    model_revision: str | None = None
    dtype: str = "auto"
    too_long: str = "truncate"
    max_prompt_tokens: int | None = None


def model_identity(model: LocalModel) -> str | None:
    """What names `model` in the response cache (None: an unpinned hub model, not cached)."""
    ident = identity("transformers", _Engine(model.revision), model.path)
    if ident is None or model.content is None:
        return ident
    named = json.loads(ident)
    named["model"] = f"bytes:{model.content}"
    return json.dumps(named, sort_keys=True)


def greedy(chats: Sequence[list[dict[str, str]]], max_new_tokens: int,
           schemas: Sequence[dict[str, Any]] | None = None) -> list[Request]:  # fmt: skip
    """Requests for greedy answers to `chats`; `schemas` (one per chat) constrain each
    answer to JSON valid under its schema (xgrammar)."""
    sampling = Sampling(max_new_tokens=max_new_tokens)  # temperature 0: greedy
    return [Request(messages=list(c), schema=None if schemas is None else schemas[i], sampling=sampling)
            for i, c in enumerate(chats)]  # fmt: skip


class LocalGenerator:
    """One local model answering requests: the transformers backend, loaded on first need,
    behind the current LLM response cache when there is one and the model has an identity.
    `accounting` sums what every call cost (requests, cache hits, tokens)."""

    def __init__(self, model: LocalModel | str | Path, batch_size: int = 16):
        from t2g.training import check_model

        self.model = model if isinstance(model, LocalModel) else LocalModel(str(model))
        check_model(self.model.path, "model")  # a missing folder fails now, before any answer is due
        self.batch_size = batch_size
        self.accounting = Accounting()
        self._backend: Backend | None = None
        cache = current_cache()
        ident = model_identity(self.model) if cache is not None else None
        self.cache_off = (
            "no cache configured" if cache is None else "" if ident else "unpinned hub model (pin its revision)"
        )
        self._cached = CachedBackend(self.backend, cache, ident) if cache is not None and ident else None
        if self._cached is not None:
            self._cached.accounting = self.accounting  # one sum over cached and uncached calls

    def backend(self) -> Backend:
        """The loaded model (loads it on the first call)."""
        if self._backend is None:
            from t2g.llm.hf import TransformersBackend

            m = self.model
            self._backend = TransformersBackend(m.path, trust_remote_code=m.trust_remote_code, revision=m.revision,
                                                batch_size=self.batch_size)  # fmt: skip
        return self._backend

    @property
    def loaded(self) -> bool:
        return self._backend is not None

    def generate(self, requests: Sequence[Request]) -> list[Result]:
        if self._cached is not None:
            return self._cached.generate(requests)
        started = time.time()
        results = self.backend().generate(requests) if requests else []
        for res in results:
            self.accounting.add(res, hit=False)
        self.accounting.wall_s += time.time() - started
        return results

    def summary(self) -> dict[str, Any]:
        """The accounting as an LLM stage's summary has it (its `llm` entry)."""
        return self.accounting.summary(cache=self.cache_off or "on")


def extract(
    texts: Iterable[str],
    entity_types: Sequence[str],
    relation_types: Sequence[str],
    model: str | Path | LocalGenerator,
    constrained: bool = True,
    max_new_tokens: int = 256,
    batch_size: int = 16,
    trust_remote_code: bool = False,
) -> list[dict[str, Any]]:
    """Graphs for `texts` in the interchange form ({"entities", "relations"}), each
    validated and restricted to the requested types, plus "error" when the model's answer
    was not a valid graph (then the graph is empty)."""
    gen = (
        model
        if isinstance(model, LocalGenerator)
        else LocalGenerator(LocalModel(str(model), trust_remote_code), batch_size)
    )
    texts = list(texts)
    chats = [messages(t, entity_types, relation_types) for t in texts]
    schemas = [json_schema(entity_types, relation_types)] * len(texts) if constrained else None
    results = gen.generate(greedy(chats, max_new_tokens, schemas))
    return [graph_record(r.text, entity_types, relation_types) for r in results]


def graph_record(completion: str, entity_types: Sequence[str], relation_types: Sequence[str]) -> dict[str, Any]:
    parsed = parse_completion(completion)
    graph = parsed.graph.restricted(entity_types, relation_types) if parsed.graph else Graph()
    record: dict[str, Any] = graph.interchange()
    if parsed.graph is None:
        record["error"] = parsed.error
    return record
