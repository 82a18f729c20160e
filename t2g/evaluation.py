"""Scoring a prediction file against a gold file (`t2g eval`).

Both files are interchange JSONL: one object a line, `{"id", "text", "entities": [{"text",
"type"}], "relations": [{"head", "tail", "type"}]}`, extra keys ignored, matched by `id`.
A malformed line is an `InputError` naming the file and line: a partial file is never
scored silently. `evaluate` is a pure function of records so the evaluation stage can
reuse it without files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from t2g.metrics import corpus_report

Record = Mapping[str, Any]

# The fields each item must carry as strings; anything else on an item is ignored.
_ITEM_FIELDS = {"entities": ("text", "type"), "relations": ("head", "tail", "type")}


class InputError(ValueError):
    """A file that cannot be scored; the message starts with "path:line:" where it applies."""


def read_interchange(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read an interchange JSONL file into {id: record}, validating every line.

    Blank lines are skipped. Ids may be strings or integers and are keyed as strings, so
    `1` and `"1"` name the same example (and collide as duplicates).
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    records: dict[str, dict[str, Any]] = {}
    first_seen: dict[str, int] = {}
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            # A BOM some editors put at the start of a file is not worth an error.
            line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{where}: not valid UTF-8 (byte {exc.start + 1} of the line)") from None
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: not JSON: {exc.msg} at column {exc.colno}") from None
        except (ValueError, RecursionError) as exc:  # e.g. huge integers, deep nesting
            raise InputError(f"{where}: not JSON: {type(exc).__name__}") from None
        try:
            key = _check_record(obj)
        except ValueError as exc:
            raise InputError(f"{where}: {exc}") from None
        if key in records:
            raise InputError(f"{where}: duplicate id {key!r} (first on line {first_seen[key]})")
        records[key], first_seen[key] = obj, lineno
    return records


def _check_record(obj: Any) -> str:
    """The record's id as a string; ValueError with a short reason if it is malformed."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {_kind(obj)}")
    if "id" not in obj:
        raise ValueError("missing 'id'")
    rid = obj["id"]
    # bool is an int in Python, but `true` is not an id anyone meant.
    if isinstance(rid, bool) or not isinstance(rid, (str, int)):
        raise ValueError(f"'id' must be a string or an integer, got {_kind(rid)}")
    if "text" in obj and not isinstance(obj["text"], str):
        raise ValueError(f"'text' must be a string, got {_kind(obj['text'])}")
    for key, fields in _ITEM_FIELDS.items():
        # Required, not defaulted to []: a misspelt key ("entites") would otherwise score
        # as a confident empty answer.
        if key not in obj:
            raise ValueError(f"missing '{key}'")
        items = obj[key]
        if not isinstance(items, list):
            raise ValueError(f"'{key}' must be a list, got {_kind(items)}")
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise ValueError(f"{key}[{i}] must be an object, got {_kind(item)}")
            for f in fields:
                if not isinstance(item.get(f), str):
                    got = "nothing" if f not in item else _kind(item[f])
                    raise ValueError(f"{key}[{i}].{f} must be a string, got {got}")
    return str(rid)


def _kind(value: Any) -> str:
    """A JSON-ish name for a decoded value's type, for error messages."""
    names = {
        dict: "object",
        list: "array",
        str: "string",
        bool: "boolean",
        int: "number",
        float: "number",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


def evaluate(gold: Mapping[str, Record], predictions: Mapping[str, Record]) -> dict[str, Any]:
    """The full report for gold and predicted records keyed by id.

    A gold id without a prediction is scored as an empty graph (and counted); predictions
    for ids not in gold are ignored (and counted).
    """
    empty: Record = {"entities": [], "relations": []}
    pairs = [(g, predictions.get(rid, empty)) for rid, g in gold.items()]
    return {
        "examples": len(gold),
        "missing_predictions": sum(rid not in predictions for rid in gold),
        "unmatched_predictions": sum(rid not in gold for rid in predictions),
        **corpus_report(pairs),
    }


def evaluate_files(gold_path: str | Path, pred_path: str | Path) -> dict[str, Any]:
    """Read both interchange files and score them; InputError on any malformed line."""
    gold = read_interchange(gold_path)
    if not gold:
        # Scoring zero examples would print perfect scores; it is almost surely a wrong path.
        raise InputError(f"{gold_path}: no examples")
    return evaluate(gold, read_interchange(pred_path))


def format_report(report: Mapping[str, Any]) -> str:
    """A plain-text table of a report from `evaluate`."""
    lines = [
        f"examples {report['examples']}   missing predictions {report['missing_predictions']}"
        f"   unmatched predictions {report.get('unmatched_predictions', 0)}",
        "",
        f"{'':<10}{'P':>8}{'R':>8}{'F1':>8}{'mean F1':>9}{'relaxed F1':>12}{'relaxed mean F1':>17}",
    ]
    for kind in ("entities", "relations"):
        s = report[kind]
        m, r = s["micro"], s["relaxed"]
        lines.append(
            f"{kind:<10}{m['precision']:>8.3f}{m['recall']:>8.3f}{m['f1']:>8.3f}"
            f"{s['mean_f1']:>9.3f}{r['micro']['f1']:>12.3f}{r['mean_f1']:>17.3f}"
        )
    for kind, title in (("entities", "entity type"), ("relations", "relation type")):
        per_type = report[kind]["per_type"]
        names = {t: _show(t) for t in per_type}
        width = max([len(title), *map(len, names.values())]) + 2
        lines += ["", f"{title:<{width}}{'P':>8}{'R':>8}{'F1':>8}{'support':>9}"]
        for t, row in per_type.items():
            lines.append(
                f"{names[t]:<{width}}{row['precision']:>8.3f}{row['recall']:>8.3f}{row['f1']:>8.3f}{row['support']:>9}"
            )
        if not per_type:
            lines.append("(none)")
    return "\n".join(lines)


def _show(name: str) -> str:
    """A type name safe to print: control characters or lone surrogates from a bad file
    must not break the table or the terminal's encoder, and an empty type stays visible."""
    return name if name and name.isprintable() else ascii(name)
