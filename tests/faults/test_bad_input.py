"""Garbage in, nothing lost: random malformed annotated records go through collect →
extract(gold) → filter, and every input row ends up in an output or in a quarantine /
drop table with a reason. Always: lines in = collected + quarantined, collected =
extracted + not selected, extracted = kept + dropped (RELIABILITY.md, "bad input").

Document ids are data: an `id` field full of path tricks only lands in `meta`; the ids
t2g uses are digests of the text, so nothing from the data can become a path."""

from __future__ import annotations

import json
import re

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from t2g import toyworld
from t2g.config import CollectConfig, ExtractConfig, FilterConfig
from t2g.stages.collect import collect
from t2g.stages.extract import extract
from t2g.stages.filter import filter_graphs

_TOY = [d for d in toyworld.iter_documents(60, seed=5) if d["relations"]][:20]
_HEX = re.compile(r"^[0-9a-f]{16}$")

_text = st.one_of(
    st.sampled_from([d["text"] for d in _TOY]),
    st.text(max_size=120),
    st.text(alphabet=st.characters(codec="utf-8", categories=["Cc", "Cs", "Zs", "Lu"]), max_size=40),
    st.sampled_from(
        [
            "",
            "   \t\n",
            'Alice </think> {"entities": [{"text": "Alice", "type": "person"}], "relations": []}',
            '<think>ignore the request</think>{"entities": [',
            '{"text": "nested", "entities": []}',
            "\udc80 lone surrogate",
            "\x00\x01\x1b[31m control characters",
        ]
    ),
    st.builds(lambda n: "Alice works at Acme. " * n, st.integers(100, 400)),  # huge vs max_chars
)
_scalar = st.one_of(st.none(), st.integers(), st.floats(allow_nan=True), st.booleans(), st.text(max_size=8))
_entity = st.one_of(
    st.fixed_dictionaries(
        {"text": st.one_of(st.just("Alice"), st.text(max_size=10)), "type": st.sampled_from(["person", "org", ""])}
    ),
    st.dictionaries(st.text(max_size=6), _scalar, max_size=3),
    _scalar,
)
_relation = st.one_of(
    st.fixed_dictionaries(
        {"head": st.text(max_size=6), "tail": st.text(max_size=6), "type": st.sampled_from(["works_at", ""])}
    ),
    st.dictionaries(st.text(max_size=6), _scalar, max_size=3),
    _scalar,
)
_record = st.one_of(
    # a real toy document, gold intact or damaged
    st.builds(
        lambda d, ents, rels, tid: {
            "id": tid,
            "text": d["text"],
            "entities": d["entities"] if ents is None else ents,
            "relations": d["relations"] if rels is None else rels,
            "entity_types": d["entity_types"],
            "relation_types": d["relation_types"],
        },
        st.sampled_from(_TOY),
        st.one_of(st.none(), st.lists(_entity, max_size=4), _scalar),
        st.one_of(st.none(), st.lists(_relation, max_size=4), _scalar),
        st.one_of(st.sampled_from(["../../etc/passwd", "/abs", "s3://x/../y", "%2e%2e/x", "a\x00b"]), _scalar),
    ),
    st.fixed_dictionaries(
        {"text": st.one_of(_text, _scalar)},
        optional={
            "id": st.sampled_from(["../../etc/passwd", "/abs", "..", "C:\\x"]),
            "entities": st.one_of(st.lists(_entity, max_size=4), _scalar),
            "relations": st.one_of(st.lists(_relation, max_size=4), _scalar),
            "entity_types": st.one_of(st.lists(st.text(max_size=6), max_size=3), _scalar),
            "relation_types": st.one_of(st.lists(st.text(max_size=6), max_size=3), _scalar),
        },
    ),
)


def _line(rec) -> bytes:
    if isinstance(rec, bytes):
        return rec
    return json.dumps(rec, ensure_ascii=False).encode("utf-8", "surrogatepass")


_lines = st.one_of(
    _record.map(_line),
    st.binary(max_size=40).filter(lambda b: b"\n" not in b and b"\r" not in b),  # invalid UTF-8, NULs
    st.sampled_from([b"", b"not json", b"[1, 2]", b'"a string"', b"{" * 3000, b"null"]),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(lines=st.lists(_lines, min_size=1, max_size=30))
def test_every_row_is_kept_or_has_a_reason(tmp_path_factory: pytest.TempPathFactory, lines: list[bytes]) -> None:
    path = tmp_path_factory.mktemp("bad") / "a.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    n_lines = len(lines)

    cfg = CollectConfig(
        sources=[{"kind": "annotated", "name": "a", "path": str(path), "split": "train"}],
        max_chars=2000,
        near_duplicate_threshold=0.95,
        num_perm=32,
    )
    result = collect(cfg)
    docs = pa.concat_tables(list(result.main))
    quarantine = result.side["quarantine"]
    assert result.summary["rows_in"] == n_lines
    assert docs.num_rows + quarantine.num_rows == n_lines, result.summary
    assert all(r for r in quarantine.column("reason").to_pylist())
    assert all(_HEX.fullmatch(i) for i in docs.column("id").to_pylist())

    ext = extract(ExtractConfig(backend="gold"), docs)
    extracted = ext.main if isinstance(ext.main, pa.Table) else pa.concat_tables(list(ext.main))
    assert extracted.num_rows + ext.summary["not_selected"] == docs.num_rows

    filt = filter_graphs(
        FilterConfig(min_chars=20, max_chars=2000, min_entities=1, max_entities=20, max_relations=20),
        extracted,
    )
    kept, dropped = filt.summary["kept"], filt.side["dropped"]
    assert kept + dropped.num_rows == extracted.num_rows, filt.summary
    assert all(r for r in dropped.column("reason").to_pylist())
    originals = [v for v in filt.main.column("variant").to_pylist() if v == 0]
    assert len(originals) == kept
    for i in filt.main.column("id").to_pylist():
        assert re.fullmatch(r"[0-9a-f]{16}(~v\d+)?", i), i
