"""Rules collect applies to every row of every source, in one place.

Control characters: every Unicode control character (category Cc: U+0000–U+001F,
U+007F–U+009F) except tab, line feed and carriage return is removed from a document's
text, from every string of its gold graph and from its requested types, before the row
is checked. An escaped NUL in JSON ("\\u0000"), a raw NUL byte in a text file and an ANSI
escape all go the same way; a text left with nothing else is "empty text". Removing
(rather than quarantining) keeps the document: PDF and terminal dumps carry such bytes
without meaning anything by them.

Metadata is strict JSON: a number JSON cannot write (NaN, Infinity, -Infinity: Parquet and
pandas write a missing float id as NaN) is stored as null, so `meta` parses with any JSON
reader, and an id that is NaN is no id.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from typing import Any

from t2g.graph import graph_from_obj
from t2g.sources.base import INVALID_GOLD, INVALID_TYPES, Row

CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def strip_controls(s: str) -> str:
    return CONTROL.sub("", s)


def scrub(row: Row) -> Row:
    """The row with the control-character rule applied (a changed gold graph is validated
    again; a type that becomes empty makes the row rejected)."""
    if row.problem is not None or row.text is None:
        return row
    changes: dict[str, Any] = {}
    if CONTROL.search(row.text):
        changes["text"] = strip_controls(row.text)
    if row.gold is not None:
        graph = json.loads(row.gold)
        cleaned = _strip_all(graph)
        if cleaned != graph:
            try:
                changes["gold"] = graph_from_obj(cleaned).to_json()
            except ValueError as exc:
                return _reject(row, f"{INVALID_GOLD}: {exc}")
    for name in ("entity_types", "relation_types"):
        types = getattr(row, name)
        if types and any(CONTROL.search(t) for t in types):
            cleaned = [strip_controls(t) for t in types]
            if not all(t.strip() for t in cleaned):
                return _reject(row, INVALID_TYPES)
            changes[name] = cleaned
    return dataclasses.replace(row, **changes) if changes else row


def _reject(row: Row, problem: str) -> Row:
    return dataclasses.replace(row, problem=problem, raw=row.text)


def _strip_all(value: Any) -> Any:
    if isinstance(value, str):
        return strip_controls(value)
    if isinstance(value, list):
        return [_strip_all(v) for v in value]
    if isinstance(value, dict):
        return {k: _strip_all(v) for k, v in value.items()}
    return value


def strict_json(value: Any) -> Any:
    """`value` with every non-finite float replaced by None (see the module docstring)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def meta_json(meta: dict[str, Any]) -> str:
    """A row's metadata as strict JSON (allow_nan=False holds the rule)."""
    return json.dumps(strict_json(meta), sort_keys=True, default=str, allow_nan=False)
