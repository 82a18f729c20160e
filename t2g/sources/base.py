"""What every source yields: one `Row` per raw record, good or bad.

A source never drops anything itself: a record it cannot turn into a document still
comes out as a `Row` with `problem` set, so collection can quarantine it and the count
rows in = rows out + rows quarantined holds by construction. Only a source that cannot
be read at all raises `SourceError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Row-level reasons, shared by every source so the summary counts add up across kinds.
INVALID_UTF8 = "invalid utf-8"
INVALID_UNICODE = "invalid unicode"  # decodes, but holds lone surrogates Arrow cannot store
BLANK_LINE = "blank line"
NOT_JSON = "not json"
NOT_OBJECT = "not a json object"
MISSING_TEXT = "missing text"
TEXT_NOT_STRING = "text not a string"
EMPTY_TEXT = "empty text"
MISSING_GOLD = "missing gold"
INVALID_GOLD = "invalid gold"  # followed by graph_from_obj's reason
INVALID_TYPES = "invalid requested types"
TOO_LONG = "too long"  # more than collect.max_chars characters (or bytes enough to hold more)
LINE_TOO_LONG = "line too long"  # a line longer than line_bytes(max_chars): never read whole

RAW_LIMIT = 2_000


class SourceError(RuntimeError):
    """A source that cannot be read at all (missing file, unreadable Parquet, no text
    column, dataset not found). The message names the source and its path."""

    def __init__(self, source: str, path: str, why: str):
        super().__init__(f"source {source!r} ({path}): {why}")
        self.source = source
        self.path = path


@dataclass
class Row:
    """One raw record of a source.

    row: line number (1-based) in line-oriented files, else the 0-based record index.
    text: the document, valid only when `problem` is None.
    meta: where it came from (file, line, the source's own id...), stored as JSON.
    gold: canonical graph JSON (Graph.to_json) for annotated sources.
    problem: why this record cannot become a document; `raw` then holds what was read.
    """

    source: str
    row: int
    text: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    gold: str | None = None
    entity_types: list[str] | None = None
    relation_types: list[str] | None = None
    problem: str | None = None
    raw: Any = None


def rejected(source: str, row: int, problem: str, raw: Any) -> Row:
    return Row(source=source, row=row, problem=problem, raw=raw)


def text_problem(value: Any) -> str | None:
    """Why a text field value is not a usable document, or None when it is."""
    if value is None:
        return MISSING_TEXT
    if not isinstance(value, str):
        return TEXT_NOT_STRING
    if not value.strip():
        return EMPTY_TEXT
    if not is_storable(value):
        return INVALID_UNICODE
    return None


def text_row(
    source: str, row: int, record: Mapping[str, Any], text_field: str, id_field: str | None, meta: dict[str, Any]
) -> Row:
    """A Row from a decoded record (JSON object, Parquet or HF row) with a text field."""
    value = record.get(text_field)
    problem = text_problem(value)
    if problem:
        return rejected(source, row, problem, dict(record))
    if id_field is not None:
        meta = {**meta, "id": record.get(id_field)}
    return Row(source=source, row=row, text=value, meta=meta)


def is_storable(s: str) -> bool:
    """Arrow strings are UTF-8: a str holding lone surrogates (JSON "\\ud800") is not."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def decode_line(line: bytes) -> str | None:
    """A line without its line ending, or None when it is not UTF-8."""
    try:
        return line.rstrip(b"\r\n").decode("utf-8")
    except UnicodeDecodeError:
        return None


def show_raw(value: Any) -> str:
    """The offending value for the quarantine: readable, storable, bounded (RAW_LIMIT
    characters) and redacted (`redact`): an excerpt to find the record by, not a copy."""
    if isinstance(value, bytes):
        text = value[: 4 * RAW_LIMIT].decode("utf-8", errors="replace")
    elif isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, ensure_ascii=True, default=repr)
        except (ValueError, RecursionError):
            text = repr(value)
    # Cut before redacting (a long line costs nothing more), and again after: a secret cut
    # in half still has its name before it, so its visible part is redacted too.
    text = redact(text[: RAW_LIMIT + 1])
    if not is_storable(text):
        text = text.encode("utf-8", errors="backslashreplace").decode("utf-8")
    return text if len(text) <= RAW_LIMIT else text[:RAW_LIMIT] + "…"


REDACTED = "<redacted>"
# Obvious secrets, as they appear in environment files, shell lines, JSON and URLs. Not a
# secret scanner: the promise is that a quarantined excerpt does not repeat a credential
# written the usual way, and data that is not a data file never reaches the quarantine.
_SECRET_NAME = r"[A-Za-z0-9_.-]*(?:key|secret|token|passw(?:or)?d|pwd|credentials?|auth)[A-Za-z0-9_.-]*"
_SECRETS = [
    # NAME=value, NAME: value, "name": "value", name='value' (the name says it is secret)
    (re.compile(rf"(?i)({_SECRET_NAME}[\"']?\s*[:=]\s*[\"']?)[^\s\"'\x00,;&]+"), rf"\1{REDACTED}"),
    (re.compile(r"(?i)\b(bearer|basic|token)(\s+)[A-Za-z0-9._~+/=-]{8,}"), rf"\1\2{REDACTED}"),
    (re.compile(r"(://)[^/\s:@]+:[^/\s@]+@"), rf"\1{REDACTED}@"),  # user:password@host
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), REDACTED),  # AWS access key ids
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.S), REDACTED),
]


def redact(text: str) -> str:
    """`text` with the values of obvious secrets replaced by REDACTED."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text
