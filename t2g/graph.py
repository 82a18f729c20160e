"""What a graph is, the JSON schema a teacher is constrained to, and how a model's
completion is parsed.

`parse_completion` is the single parser every consumer shares (rewards, filter, eval):
it never raises and runs in time linear in the length of its input.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr, ValidationError

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


class Entity(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    # Optional: the interchange format (and gold data) carries no ids; the teacher's
    # schema asks for them because the seed's prompt does.
    id: StrictInt | StrictStr | None = None
    text: StrictStr
    type: StrictStr


class Relation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    head: StrictStr
    tail: StrictStr
    type: StrictStr


class Graph(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    entities: list[Entity] = []
    relations: list[Relation] = []

    def dangling(self) -> list[Relation]:
        """Relations whose head or tail is not the text of one of the entities."""
        texts = {e.text for e in self.entities}
        return [r for r in self.relations if r.head not in texts or r.tail not in texts]

    def restricted(self, entity_types: Sequence[str], relation_types: Sequence[str]) -> Graph:
        """The sub-graph a request for these types should produce: entities of the
        requested types, relations of the requested types between kept entities."""
        etypes, rtypes = set(entity_types), set(relation_types)
        ents = [e for e in self.entities if e.type in etypes]
        kept = {e.text for e in ents}
        rels = [r for r in self.relations if r.type in rtypes and r.head in kept and r.tail in kept]
        return Graph(entities=ents, relations=rels)

    def interchange(self) -> dict[str, list[dict[str, Any]]]:
        """The interchange form: entities as {text, type}, relations as {head, tail, type}."""
        return {
            "entities": [{"text": e.text, "type": e.type} for e in self.entities],
            "relations": [r.model_dump() for r in self.relations],
        }

    def to_json(self) -> str:
        """Canonical JSON target for training (entity ids numbered in order)."""
        return json.dumps(
            {
                "entities": [{"id": i, "text": e.text, "type": e.type} for i, e in enumerate(self.entities)],
                "relations": [r.model_dump() for r in self.relations],
            },
            ensure_ascii=False,
        )


def graph_from_obj(obj: Any) -> Graph:
    """Validate a decoded JSON value as a graph; raises ValueError with a short reason."""
    if not isinstance(obj, dict):
        raise ValueError(f"graph must be a JSON object, got {type(obj).__name__}")
    try:
        return Graph.model_validate(obj)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "graph"
        raise ValueError(f"invalid graph at {where}: {first['msg']}") from None


MAX_ENTITY_ID = 9999


def json_schema(entity_types: Sequence[str], relation_types: Sequence[str]) -> dict[str, Any]:
    """JSON schema for a graph restricted to the requested types (types are enums), as
    used for structured generation by xgrammar and vLLM."""
    etypes, rtypes = _unique(entity_types), _unique(relation_types)
    entity: dict[str, Any] = {
        "type": "object",
        "properties": {
            # Bounded: an unbounded integer lets a weak model write digits until
            # max_new_tokens (seen: an untrained tiny model, "id": 8888...), and a cut-off
            # answer is no graph at all. No graph has 10,000 entities.
            "id": {"type": "integer", "minimum": 0, "maximum": MAX_ENTITY_ID},
            "text": {"type": "string", "minLength": 1},
            "type": {"type": "string", "enum": etypes},
        },
        "required": ["id", "text", "type"],
        "additionalProperties": False,
    }
    relation: dict[str, Any] = {
        "type": "object",
        "properties": {
            "head": {"type": "string", "minLength": 1},
            "tail": {"type": "string", "minLength": 1},
            "type": {"type": "string", "enum": rtypes},
        },
        "required": ["head", "tail", "type"],
        "additionalProperties": False,
    }
    # An empty enum is unsatisfiable; "no types requested" means "no items allowed".
    entities = {"type": "array", "items": entity} if etypes else {"type": "array", "maxItems": 0}
    relations = {"type": "array", "items": relation} if rtypes else {"type": "array", "maxItems": 0}
    return {
        "type": "object",
        "properties": {"entities": entities, "relations": relations},
        "required": ["entities", "relations"],
        "additionalProperties": False,
    }


def _unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(str(i) for i in items))


@dataclass(frozen=True)
class Parsed:
    """What a completion holds.

    think: the text inside the first <think>…</think>, or None.
    graph: the graph when exactly one top-level JSON object parses and validates.
    error: why `graph` is None ("" when it is not).
    obj: the single decoded JSON object (even when it is not a valid graph).
    format_ok: thinking layout is exactly `<think>…</think>` then one JSON object, nothing else.
    """

    think: str | None
    graph: Graph | None
    error: str
    obj: dict[str, Any] | None
    format_ok: bool


_STRUCTURAL = re.compile(r'[{}"]')
_STRING_END = re.compile(r'["\\]')


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    value: Any  # the decoded JSON value, or _BAD when the span does not decode


_BAD = object()
_DECODER = json.JSONDecoder()


def json_spans(text: str) -> tuple[list[Span], bool]:
    """Every top-level brace-balanced span of `text`, each decoded once.

    At each top-level `{` the C decoder tries first (a well-formed object ends exactly at
    its matching brace). Only where it fails does a scan find the span's end: depth and
    string state are tracked only inside braces (quotes in prose around a JSON object do
    not matter), jumping between structural characters with a regex. Each character is
    visited at most twice, so the whole is linear in len(text).
    Returns (spans, whether a span was left open).
    """
    spans: list[Span] = []
    i = 0
    while True:
        start = text.find("{", i)
        if start < 0:
            return spans, False
        try:
            value, i = _DECODER.raw_decode(text, start)
            spans.append(Span(start, i, value))
            continue
        except (ValueError, RecursionError):
            pass
        end = _balanced_end(text, start)
        if end is None:
            return spans, True
        spans.append(Span(start, end, _BAD))
        i = end


def _balanced_end(text: str, start: int) -> int | None:
    """Index just past the brace that closes the one at `start`; None if none does."""
    depth, i = 1, start + 1
    while True:
        m = _STRUCTURAL.search(text, i)
        if m is None:
            return None
        c, i = m.group(), m.end()
        if c == '"':
            while True:
                s = _STRING_END.search(text, i)
                if s is None:
                    return None
                i = s.end() + (1 if s.group() == "\\" else 0)
                if s.group() == '"':
                    break
        elif c == "{":
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return i


def parse_completion(text: Any) -> Parsed:
    """Parse a completion into thinking, graph and error. Never raises."""
    try:
        return _parse(text)
    except Exception as exc:  # the contract is "never raises": report instead
        return Parsed(None, None, f"unparseable completion: {type(exc).__name__}", None, False)


def _parse(text: Any) -> Parsed:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if not isinstance(text, str):
        return Parsed(None, None, f"completion must be a string, got {type(text).__name__}", None, False)

    think: str | None = None
    body = text
    close = text.find(THINK_CLOSE)
    if close >= 0:
        open_ = text.find(THINK_OPEN)
        think_start = open_ + len(THINK_OPEN) if 0 <= open_ < close else 0
        think = text[think_start:close]
        body = text[close + len(THINK_CLOSE) :]
    layout_ok = (
        close >= 0
        and text.lstrip().startswith(THINK_OPEN)
        and text.count(THINK_OPEN) == 1
        and text.count(THINK_CLOSE) == 1
    )

    spans, unterminated = json_spans(body)
    dicts = [sp for sp in spans if isinstance(sp.value, dict)]
    bad = sum(sp.value is _BAD for sp in spans)
    if len(dicts) != 1:
        if len(dicts) > 1:
            error = f"{len(dicts)} JSON objects, expected exactly one"
        elif unterminated:
            error = "unterminated JSON object (truncated output?)"
        elif bad:
            error = "malformed JSON"
        else:
            error = "no JSON object"
        return Parsed(think, None, error, None, False)

    only = dicts[0]
    obj = only.value
    # Format: the think block, then this one object and only whitespace around it.
    format_ok = (
        layout_ok
        and not unterminated
        and len(spans) == 1
        and not body[: only.start].strip()
        and not body[only.end :].strip()
    )
    try:
        graph = graph_from_obj(obj)
    except ValueError as exc:
        return Parsed(think, None, str(exc), obj, format_ok)
    return Parsed(think, graph, "", obj, format_ok)
