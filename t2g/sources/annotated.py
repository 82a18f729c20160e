"""Annotated documents in the interchange format, one JSON object a line:

    {"id": ..., "text": ..., "entities": [{"text", "type"}], "relations": [{"head", "tail", "type"}],
     "entity_types": [...], "relation_types": [...]}

The gold graph is validated here and stored canonically (Graph.to_json), so every later
stage reads one form. `entity_types`/`relation_types` are optional: the types requested
from this document, when the annotation says which were asked for.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from t2g.config import AnnotatedSource
from t2g.graph import graph_from_obj
from t2g.sources.base import (
    INVALID_GOLD,
    INVALID_TYPES,
    MISSING_GOLD,
    Row,
    is_storable,
    rejected,
    text_problem,
)
from t2g.sources.files import DEFAULT_MAX_CHARS, existing_file, json_lines

# "entities.3.text" -> "entities.*.text": one reason per kind of defect, not per position,
# so the summary counts group (the quarantined record still shows which item it was).
_LIST_INDEX = re.compile(r"\.\d+(?=[.:])")


def read_annotated(src: AnnotatedSource, max_chars: int = DEFAULT_MAX_CHARS) -> Iterator[Row]:
    path = existing_file(src.name, src.path)

    def rows() -> Iterator[Row]:
        for line_no, obj in json_lines(src.name, path, max_chars):
            if isinstance(obj, Row):
                yield obj
            else:
                yield interchange_row(src.name, line_no, obj, {"file": str(path), "line": line_no})

    return rows()


def interchange_row(source: str, row: int, obj: Mapping[str, Any], meta: dict[str, Any]) -> Row:
    """A Row from one interchange document: text, validated gold, requested types."""
    problem = text_problem(obj.get("text"))
    if problem:
        return rejected(source, row, problem, dict(obj))
    if "entities" not in obj and "relations" not in obj:
        return rejected(source, row, MISSING_GOLD, dict(obj))
    # A missing list (or null) is an empty one; anything else must validate as a graph.
    parts = {key: [] if obj.get(key) is None else obj[key] for key in ("entities", "relations")}
    try:
        gold_json = graph_from_obj(parts).to_json()
    except ValueError as exc:
        return rejected(source, row, f"{INVALID_GOLD}: {_LIST_INDEX.sub('.*', str(exc))}", dict(obj))
    if not is_storable(gold_json):
        return rejected(source, row, f"{INVALID_GOLD}: lone surrogate in a string", dict(obj))
    entity_types, relation_types = obj.get("entity_types"), obj.get("relation_types")
    if not (_types_ok(entity_types) and _types_ok(relation_types)):
        return rejected(source, row, INVALID_TYPES, dict(obj))
    if "id" in obj:
        meta = {**meta, "id": obj["id"]}
    return Row(
        source=source,
        row=row,
        text=obj["text"],
        meta=meta,
        gold=gold_json,
        entity_types=entity_types,
        relation_types=relation_types,
    )


def _types_ok(types: Any) -> bool:
    """Absent (None) or a list of non-empty storable strings."""
    return types is None or (
        isinstance(types, list) and all(isinstance(t, str) and t.strip() and is_storable(t) for t in types)
    )
