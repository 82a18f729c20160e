"""The grounding guard of `t2g extract`: an entity whose name does not occur in the text
(NFKC, case and spacing aside: t2g.metrics.normalise, as the filter stage checks the
teacher's labels) is dropped with every relation naming it. A small model repeating a
name it learnt ("Jolie", five times, for a sentence about Satya Nadella) then answers
nothing instead of something false. `t2g graph` goes further (t2g.kg.grounding: every
kept mention is a span of its chunk)."""

from __future__ import annotations

from typing import Any

from t2g.metrics import normalise


def drop_ungrounded(record: dict[str, Any], text: str) -> tuple[dict[str, Any], list[str]]:
    """`record` (interchange: entities {text, type}, relations {head, tail, type}) without
    its ungrounded entities and the relations naming them; and the names dropped, once each."""
    haystack = normalise(text)
    gone = list(dict.fromkeys(e["text"] for e in record.get("entities", []) if not _in(e["text"], haystack)))
    if not gone:
        return record, []
    out = dict(record)
    dropped = set(gone)
    out["entities"] = [e for e in record["entities"] if e["text"] not in dropped]
    out["relations"] = [r for r in record.get("relations", []) if r["head"] not in dropped and r["tail"] not in dropped]
    return out, gone


def _in(name: str, haystack: str) -> bool:
    needle = normalise(name)
    return bool(needle) and needle in haystack
