"""Filter and augmentation: each defect dropped with its reason, nothing lost, variants
that ask only for known types and carry correctly restricted graphs, deterministically."""

from __future__ import annotations

import json
import random
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from t2g import toyworld
from t2g.config import FilterConfig
from t2g.graph import graph_from_obj
from t2g.stages.collect import MAIN_SCHEMA as COLLECT_SCHEMA
from t2g.stages.collect import doc_id
from t2g.stages.filter import MAIN_SCHEMA, filter_graphs

EXTRACT_SCHEMA = COLLECT_SCHEMA.append(pa.field("graph", pa.string())).append(pa.field("error", pa.string())).append(
    pa.field("model", pa.string())
)


def extracted(doc: dict[str, Any], **override: Any) -> dict[str, Any]:
    """An extract-stage row whose teacher answered with the toy world's gold graph."""
    gold = graph_from_obj({"entities": doc["entities"], "relations": doc["relations"]}).to_json()
    row = {
        "id": doc_id(doc["text"]),
        "text": doc["text"],
        "source": "toy",
        "split": "train",
        "meta": json.dumps({"id": doc["id"]}),
        "gold": gold,
        "entity_types": doc["entity_types"],
        "relation_types": doc["relation_types"],
        "graph": gold,
        "error": "",
        "model": "gold",
    }
    return {**row, **override}


def table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=EXTRACT_SCHEMA)


def toy_docs(n: int = 40, seed: int = 0) -> list[dict[str, Any]]:
    # Distinct texts with at least one relation, so every defect below has something to break.
    docs = {d["text"]: d for d in toyworld.iter_documents(n * 3, seed) if d["relations"] and len(d["text"]) >= 20}
    return list(docs.values())[:n]


def with_graph(doc: dict[str, Any], entities: list[dict[str, Any]] | None = None, relations: list[dict[str, Any]] | None = None) -> str:
    return json.dumps(
        {"entities": doc["entities"] if entities is None else entities, "relations": doc["relations"] if relations is None else relations}
    )


def absent_type(used: list[str], inventory: tuple[str, ...]) -> str:
    return next(t for t in inventory if t not in used)


def test_defects_are_dropped_with_the_right_reason() -> None:
    docs = toy_docs(12)
    d = docs
    not_requested_e = absent_type(d[6]["entity_types"], toyworld.ENTITY_TYPES + ("weapon",))
    not_requested_r = absent_type(d[7]["relation_types"], toyworld.RELATION_TYPES + ("owns",))
    rows = [
        extracted(d[0]),  # clean
        extracted(d[1], error="teacher timed out", graph=None),
        extracted(d[2], graph="{not json"),
        extracted(d[3], graph=json.dumps({"entities": [{"text": 5, "type": "person"}]})),
        extracted(d[4], graph=with_graph(d[4], d[4]["entities"] + [{"text": "Zorblax Quintavius", "type": d[4]["entities"][0]["type"]}])),
        extracted(d[5], graph=with_graph(d[5], relations=d[5]["relations"] + [{"head": d[5]["entities"][0]["text"], "tail": "Ghost", "type": d[5]["relations"][0]["type"]}])),
        extracted(d[6], graph=with_graph(d[6], [{**d[6]["entities"][0], "type": not_requested_e}] + d[6]["entities"][1:])),
        extracted(d[7], graph=with_graph(d[7], relations=[{**d[7]["relations"][0], "type": not_requested_r}])),
        extracted(d[8], graph=with_graph(d[8], [d[8]["entities"][0]] * 51, [])),
        extracted(d[9], text="Too short.", graph=with_graph(d[9], [], [])),
        extracted(d[10], graph=with_graph(d[10], [], [])),  # min_entities is 1
        extracted(d[11], gold='{"entities": "nope"}'),
        extracted(d[0], id="no-text", text=None),
    ]
    result = filter_graphs(FilterConfig(), table(rows))
    dropped = result.side["dropped"].to_pylist()
    by_doc = {row["id"]: row["reason"] for row in dropped}
    expected = {
        1: "extraction error",
        2: "invalid graph",
        3: "invalid graph",
        4: "ungrounded entity",
        5: "dangling relation",
        6: "entity type not requested",
        7: "relation type not requested",
        8: "too many entities",
        9: "text too short",
        10: "too few entities",
        11: "invalid gold",
        12: "text too short",
    }
    assert {rows[i]["id"]: r for i, r in expected.items()} == by_doc
    assert result.summary["rows_in"] == 13
    assert result.summary["kept"] == 1 and result.summary["dropped"] == 12
    assert result.summary["reasons"]["invalid graph"] == 2
    # Dropped rows keep every input column, plus why.
    assert set(EXTRACT_SCHEMA.names) | {"reason", "detail"} == set(result.side["dropped"].column_names)
    ungrounded = next(r for r in dropped if r["reason"] == "ungrounded entity")
    assert ungrounded["detail"] == "Zorblax Quintavius" and ungrounded["text"] == rows[4]["text"]
    assert set(result.main.column("doc_id").to_pylist()) == {rows[0]["id"]}


def test_first_failing_check_wins() -> None:
    doc = toy_docs(1)[0]
    # Ungrounded and too many entities: grounding is checked first.
    graph = with_graph(doc, [{"text": "Nobody At All", "type": doc["entities"][0]["type"]}] * 60, [])
    result = filter_graphs(FilterConfig(), table([extracted(doc, graph=graph)]))
    assert result.side["dropped"].column("reason").to_pylist() == ["ungrounded entity"]
    # Too long comes before everything after it.
    result = filter_graphs(FilterConfig(max_chars=5, min_chars=0), table([extracted(doc, graph=graph)]))
    assert result.side["dropped"].column("reason").to_pylist() == ["text too long"]


def test_grounding_is_checked_after_normalisation() -> None:
    doc = toy_docs(1)[0]
    shouty = [{**e, "text": "  " + e["text"].upper()} for e in doc["entities"]]
    relations = [{**r, "head": "  " + r["head"].upper(), "tail": "  " + r["tail"].upper()} for r in doc["relations"]]
    result = filter_graphs(FilterConfig(), table([extracted(doc, graph=with_graph(doc, shouty, relations))]))
    assert result.summary["kept"] == 1


def test_empty_input_gives_typed_empty_outputs() -> None:
    result = filter_graphs(FilterConfig(), EXTRACT_SCHEMA.empty_table())
    assert result.main.schema == MAIN_SCHEMA and result.main.num_rows == 0
    assert result.side["dropped"].num_rows == 0
    assert result.summary == {"rows_in": 0, "kept": 0, "dropped": 0, "variants": 0, "reasons": {}}


def test_clean_rows_keep_canonical_graphs() -> None:
    docs = toy_docs(20)
    rows = [extracted(d) for d in docs]
    result = filter_graphs(FilterConfig(augment={"variants": 0}), table(rows))
    assert result.main.schema == MAIN_SCHEMA
    assert result.summary == {"rows_in": 20, "kept": 20, "dropped": 0, "variants": 0, "reasons": {}}
    out = result.main.to_pylist()
    assert [r["id"] for r in out] == [r["id"] for r in rows]
    assert all(r["variant"] == 0 and r["doc_id"] == r["id"] for r in out)
    assert [r["graph"] for r in out] == [r["graph"] for r in rows]
    assert result.side["dropped"].num_rows == 0


# --- augmentation --------------------------------------------------------------------


def test_variants_request_known_types_and_restrict_graphs() -> None:
    docs = toy_docs(40)
    rows = {r["id"]: r for r in (extracted(d) for d in docs)}
    cfg = FilterConfig(augment={"variants": 3, "keep_types": 0.5, "negative_types": 1, "seed": 7})
    result = filter_graphs(cfg, table(list(rows.values())))
    out = result.main.to_pylist()
    variants = [r for r in out if r["variant"] > 0]
    assert variants and result.summary["variants"] == len(variants)
    assert len(out) == len(rows) + len(variants)
    with_absent = 0
    for v in variants:
        src = rows[v["doc_id"]]
        assert v["id"] == f"{v['doc_id']}~v{v['variant']}"
        assert v["text"] == src["text"]
        assert set(v["entity_types"]) <= set(src["entity_types"])
        assert set(v["relation_types"]) <= set(src["relation_types"])
        original = graph_from_obj(json.loads(src["graph"]))
        present_e = {e.type for e in original.entities}
        present_r = {r.type for r in original.relations}
        kept_e = set(v["entity_types"]) & present_e
        assert kept_e, "at least one present type is kept"
        assert set(v["relation_types"]) & present_r
        absent_e = set(src["entity_types"]) - present_e
        if absent_e:
            assert set(v["entity_types"]) & absent_e, "an absent type is asked for"
            with_absent += 1
        assert v["graph"] == original.restricted(v["entity_types"], v["relation_types"]).to_json()
        gold = graph_from_obj(json.loads(src["gold"]))
        assert v["gold"] == gold.restricted(v["entity_types"], v["relation_types"]).to_json()
        assert {e["type"] for e in json.loads(v["graph"])["entities"]} <= set(v["entity_types"])
    assert with_absent > 0
    # No variant repeats a request of its document.
    requests = [(r["doc_id"], frozenset(r["entity_types"]), frozenset(r["relation_types"])) for r in out]
    assert len(requests) == len(set(requests))


def test_augmentation_is_deterministic_and_order_independent() -> None:
    rows = [extracted(d) for d in toy_docs(30, seed=1)]
    cfg = FilterConfig(augment={"variants": 2, "seed": 3})
    first = filter_graphs(cfg, table(rows)).main.to_pylist()
    again = filter_graphs(cfg, table(rows)).main.to_pylist()
    assert first == again
    shuffled = rows[:]
    random.Random(0).shuffle(shuffled)
    reordered = filter_graphs(cfg, table(shuffled)).main.to_pylist()
    assert sorted(first, key=lambda r: r["id"]) == sorted(reordered, key=lambda r: r["id"])
    other_seed = filter_graphs(FilterConfig(augment={"variants": 2, "seed": 4}), table(rows)).main.to_pylist()
    assert other_seed != first


def test_no_negatives_when_not_configured() -> None:
    rows = [extracted(d) for d in toy_docs(30)]
    out = filter_graphs(FilterConfig(augment={"variants": 2, "negative_types": 0, "keep_types": 0.5}), table(rows)).main.to_pylist()
    for v in (r for r in out if r["variant"]):
        present = {e.type for e in graph_from_obj(json.loads(v["graph"])).entities}
        assert set(v["entity_types"]) == present or not present


def test_rows_without_a_request_use_the_present_types() -> None:
    doc = next(d for d in toy_docs(40) if len({e["type"] for e in d["entities"]}) >= 2)
    row = extracted(doc, entity_types=None, relation_types=None)
    out = filter_graphs(FilterConfig(augment={"variants": 3, "keep_types": 0.5}), table([row])).main.to_pylist()
    present = {e["type"] for e in doc["entities"]}
    assert out[0]["entity_types"] is None
    for v in out[1:]:
        assert set(v["entity_types"]) < present


# --- property: nothing is lost -------------------------------------------------------

_words = st.sampled_from(["Zentek", "Marin", "Belmere", "Xiphone", "May 2020", "", "  ", "ZENTEK", "nobody"])
_types = st.sampled_from(["person", "organisation", "location", "product", "date", "x"])
_entity = st.fixed_dictionaries({"text": _words, "type": _types})
_relation = st.fixed_dictionaries({"head": _words, "tail": _words, "type": _types})
_graph_json = st.one_of(
    st.builds(lambda e, r: json.dumps({"entities": e, "relations": r}), st.lists(_entity, max_size=6), st.lists(_relation, max_size=4)),
    st.text(max_size=30),
    st.just("</think>{}"),
    st.just('{"entities": [{"text": 1}]}'),
    st.none(),
)
_row = st.fixed_dictionaries(
    {
        "id": st.text(min_size=1, max_size=8),
        "text": st.builds(" ".join, st.lists(_words, max_size=12)),
        "source": st.just("s"),
        "split": st.just("train"),
        "meta": st.just("{}"),
        "gold": st.one_of(st.none(), _graph_json),
        "entity_types": st.one_of(st.none(), st.lists(_types, max_size=4)),
        "relation_types": st.one_of(st.none(), st.lists(_types, max_size=4)),
        "graph": _graph_json,
        "error": st.sampled_from(["", "", "", "boom"]),
        "model": st.just("m"),
    }
)


@settings(max_examples=80, deadline=None)
@given(rows=st.lists(_row, max_size=20), variants=st.integers(0, 3), min_chars=st.integers(0, 30))
def test_rows_in_equals_kept_plus_dropped(rows: list[dict[str, Any]], variants: int, min_chars: int) -> None:
    cfg = FilterConfig(min_chars=min_chars, max_entities=4, augment={"variants": variants})
    result = filter_graphs(cfg, table(rows))
    s = result.summary
    assert s["rows_in"] == len(rows) == s["kept"] + s["dropped"]
    assert s["dropped"] == result.side["dropped"].num_rows == sum(s["reasons"].values())
    originals = result.main.filter(pc.equal(result.main.column("variant"), 0))
    assert originals.num_rows == s["kept"]
    assert result.main.num_rows == s["kept"] + s["variants"]
    assert s["variants"] <= s["kept"] * variants

