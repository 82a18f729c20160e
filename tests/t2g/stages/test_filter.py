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

from t2g import counts, toyworld
from t2g.config import FilterConfig
from t2g.graph import graph_from_obj
from t2g.metrics import normalise
from t2g.stages.collect import MAIN_SCHEMA as COLLECT_SCHEMA
from t2g.stages.collect import doc_id
from t2g.stages.filter import MAIN_SCHEMA, filter_graphs

EXTRACT_SCHEMA = (
    COLLECT_SCHEMA.append(pa.field("graph", pa.string()))
    .append(pa.field("error", pa.string()))
    .append(pa.field("model", pa.string()))
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


def with_graph(
    doc: dict[str, Any], entities: list[dict[str, Any]] | None = None, relations: list[dict[str, Any]] | None = None
) -> str:
    return json.dumps(
        {
            "entities": doc["entities"] if entities is None else entities,
            "relations": doc["relations"] if relations is None else relations,
        }
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
        extracted(
            d[4],
            graph=with_graph(
                d[4], d[4]["entities"] + [{"text": "Zorblax Quintavius", "type": d[4]["entities"][0]["type"]}]
            ),
        ),
        extracted(
            d[5],
            graph=with_graph(
                d[5],
                relations=d[5]["relations"]
                + [{"head": d[5]["entities"][0]["text"], "tail": "Ghost", "type": d[5]["relations"][0]["type"]}],
            ),
        ),
        extracted(
            d[6], graph=with_graph(d[6], [{**d[6]["entities"][0], "type": not_requested_e}] + d[6]["entities"][1:])
        ),
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
    out = filter_graphs(
        FilterConfig(augment={"variants": 2, "negative_types": 0, "keep_types": 0.5}), table(rows)
    ).main.to_pylist()
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
    st.builds(
        lambda e, r: json.dumps({"entities": e, "relations": r}),
        st.lists(_entity, max_size=6),
        st.lists(_relation, max_size=4),
    ),
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


# --- repair instead of discard (filter.ungrounded: repair) --------------------------

REPAIR = FilterConfig(ungrounded="repair", augment={"variants": 0})


def with_ghost(doc: dict[str, Any], ghost: str = "Zorblax Quintavius") -> dict[str, Any]:
    """The teacher's answer with one invented entity and two relations naming it (one at
    each end) added to the gold graph."""
    first = doc["entities"][0]
    entities = doc["entities"][:1] + [{"text": ghost, "type": first["type"]}] + doc["entities"][1:]
    relations = [{"head": ghost, "tail": first["text"], "type": doc["relations"][0]["type"]}, *doc["relations"],
                 {"head": first["text"], "tail": ghost, "type": doc["relations"][0]["type"]}]  # fmt: skip
    return extracted(doc, graph=with_graph(doc, entities, relations))


def test_repair_keeps_the_grounded_rest_and_records_what_went() -> None:
    docs = toy_docs(6)
    rows = [with_ghost(d) for d in docs[:3]] + [extracted(d) for d in docs[3:]]
    result = filter_graphs(REPAIR, table(rows))
    s = result.summary
    assert (s["kept"], s["dropped"], s["reasons"]) == (6, 0, {})
    assert s["repaired"] == {"ungrounded entity removed": 3}
    assert s["repair_removed"] == {"entities": 3, "relations": 6}
    # The kept graph is exactly the teacher's graph without the invented entity: the gold.
    out = {r["id"]: r for r in result.main.to_pylist()}
    assert [out[r["id"]]["graph"] for r in rows] == [extracted(d)["graph"] for d in docs]
    repaired = result.side["repaired"].to_pylist()
    assert [r["id"] for r in repaired] == [r["id"] for r in rows[:3]]
    for r in repaired:
        assert r["reason"] == "ungrounded entity removed"
        assert r["detail"] == "removed 1 ungrounded entity (Zorblax Quintavius) and 2 relations naming it"
        removed = json.loads(r["removed"])
        assert [e["text"] for e in removed["entities"]] == ["Zorblax Quintavius"]
        assert len(removed["relations"]) == 2 and all(
            "Zorblax Quintavius" in (x["head"], x["tail"]) for x in removed["relations"]
        )
        assert r["graph"] == next(x["graph"] for x in rows if x["id"] == r["id"])  # the teacher's whole answer
    assert result.side["dropped"].num_rows == 0


def test_drop_is_the_default_and_adds_no_repair_output() -> None:
    doc = toy_docs(1)[0]
    result = filter_graphs(FilterConfig(), table([with_ghost(doc)]))
    assert result.side["dropped"].column("reason").to_pylist() == ["ungrounded entity"]
    assert set(result.side) == {"dropped"} and "repaired" not in result.summary


def test_repair_removes_every_listing_of_the_entity_and_every_relation_naming_it() -> None:
    doc = toy_docs(1)[0]
    first, etype, rtype = doc["entities"][0]["text"], doc["entities"][0]["type"], doc["relations"][0]["type"]
    ghost = [{"text": "Ghost Corp", "type": etype}, {"text": "Ghost Corp", "type": "other"}]
    relations = doc["relations"] + [
        {"head": "Ghost Corp", "tail": "Ghost Corp", "type": rtype},
        {"head": first, "tail": "Ghost Corp", "type": "other"},
    ]
    row = extracted(
        doc, graph=with_graph(doc, doc["entities"] + ghost, relations), entity_types=None, relation_types=None
    )
    result = filter_graphs(REPAIR, table([row]))
    assert result.summary["kept"] == 1 and result.summary["repair_removed"] == {"entities": 2, "relations": 2}
    assert result.main.column("graph").to_pylist() == [extracted(doc)["graph"]]


def test_repair_uses_the_same_grounding_check() -> None:
    doc = toy_docs(1)[0]
    # Case and spacing differ from the text: grounded after normalisation, nothing to repair.
    shouty = [{**e, "text": "  " + e["text"].upper().replace(" ", "   ")} for e in doc["entities"]]
    names = {e["text"]: s["text"] for e, s in zip(doc["entities"], shouty)}
    relations = [{**r, "head": names[r["head"]], "tail": names[r["tail"]]} for r in doc["relations"]]
    result = filter_graphs(REPAIR, table([extracted(doc, graph=with_graph(doc, shouty, relations))]))
    assert result.summary["kept"] == 1 and result.summary["repaired"] == {}
    assert result.side["repaired"].num_rows == 0
    # A name that is only whitespace is ungrounded.
    blank = [*doc["entities"], {"text": "   ", "type": doc["entities"][0]["type"]}]
    result = filter_graphs(REPAIR, table([extracted(doc, graph=with_graph(doc, blank))]))
    assert result.summary["repaired"] == {"ungrounded entity removed": 1}
    assert result.main.column("graph").to_pylist() == [extracted(doc)["graph"]]


def test_repair_removes_exactly_what_drop_drops_for() -> None:
    doc = next(d for d in toy_docs(40) if any(len(e["text"]) >= 6 for e in d["entities"]))
    name = next(e["text"] for e in doc["entities"] if len(e["text"]) >= 6)
    spellings = [
        name.upper(),
        name.casefold(),
        f"\t{name}\n",
        name.replace(" ", " \n "),  # case and whitespace
        "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in name),  # fullwidth: NFKC folds it
        name[:3],
        name[1:-1],  # inside the text's spelling: a substring is grounded
        name[:3] + " " + name[3:],
        name + "x",
        name[::-1],
        "",
        " ",
        "\u200b",  # not in the text
        f"{name} {name}",  # in the text only if the text repeats it
    ]
    for spelling in spellings:
        # The invented listing also goes first, so the document's other entities come after it.
        entities = [{"text": spelling, "type": "x"}, *doc["entities"]]
        relations = [*doc["relations"], {"head": spelling, "tail": doc["entities"][0]["text"], "type": "y"}]
        row = extracted(doc, graph=with_graph(doc, entities, relations), entity_types=None, relation_types=None)
        dropped = filter_graphs(FilterConfig(augment={"variants": 0}), table([row])).side["dropped"].to_pylist()
        repaired = filter_graphs(REPAIR, table([row]))
        assert [r["reason"] for r in dropped] in ([], ["ungrounded entity"]), spelling
        assert bool(dropped) == bool(repaired.summary["repaired"]), repr(spelling)
        if dropped:
            assert repaired.main.column("graph").to_pylist() == [extracted(doc)["graph"]], repr(spelling)
    grounded = [
        s
        for s in spellings
        if not filter_graphs(
            FilterConfig(),
            table(
                [
                    extracted(
                        doc,
                        graph=with_graph(doc, [{"text": s, "type": "x"}, *doc["entities"]]),
                        entity_types=None,
                        relation_types=None,
                    )
                ]
            ),
        ).summary["dropped"]
    ]
    assert grounded[:7] == spellings[:7] and spellings[7:12] == [s for s in spellings[7:12] if s not in grounded]


def test_a_relation_that_named_no_entity_still_drops_the_document() -> None:
    doc = toy_docs(1)[0]
    first, rtype = doc["entities"][0]["text"], doc["relations"][0]["type"]
    # Relations name entities by text: one naming an id, or a name no entity has, dangles
    # before any repair, as it does without repair.
    for name in ("0", "Nowhere Man"):
        row = with_ghost(doc)
        graph = json.loads(row["graph"])
        graph["relations"].append({"head": first, "tail": name, "type": rtype})
        result = filter_graphs(REPAIR, table([{**row, "graph": json.dumps(graph)}]))
        dropped = result.side["dropped"].to_pylist()
        assert [r["reason"] for r in dropped] == ["dangling relation"]
        assert dropped[0]["detail"].endswith(
            "(after repair: removed 1 ungrounded entity (Zorblax Quintavius) and 2 relations naming it)"
        )
        assert result.summary["repaired_then_dropped"] == {"dangling relation": 1}
        assert result.summary["repaired"] == {} and result.side["repaired"].num_rows == 0


def test_a_repaired_document_must_pass_every_other_check() -> None:
    doc = next(d for d in toy_docs(40) if len(d["relations"]) >= 2)
    ghosts = [{"text": "Zorblax Quintavius", "type": doc["entities"][0]["type"]}]
    only_ghosts = extracted(doc, graph=with_graph(doc, ghosts, []))
    # min_entities 1: a graph whose only entity was invented is empty after repair.
    result = filter_graphs(REPAIR, table([only_ghosts]))
    dropped = result.side["dropped"].to_pylist()
    assert [(r["reason"], r["detail"]) for r in dropped] == [
        (
            "too few entities",
            "0 < 1 (after repair: removed 1 ungrounded entity (Zorblax Quintavius) and 0 relations naming it)",
        )
    ]
    assert result.summary["kept"] == 0 and result.summary["repaired_then_dropped"] == {"too few entities": 1}
    # With min_entities 0 the same empty graph passes, and is a repaired document.
    result = filter_graphs(REPAIR.model_copy(update={"min_entities": 0}), table([only_ghosts]))
    assert result.summary["kept"] == 1 and result.summary["repaired"] == {"ungrounded entity removed": 1}
    # min_relations: the relations that went with the entity can take the rest below it.
    n = len(doc["relations"])
    result = filter_graphs(REPAIR.model_copy(update={"min_relations": n + 1}), table([with_ghost(doc)]))
    assert result.side["dropped"].column("reason").to_pylist() == ["too few relations"]
    assert result.summary["repaired_then_dropped"] == {"too few relations": 1}
    # A type check still applies to what is left.
    not_requested = absent_type(doc["entity_types"], toyworld.ENTITY_TYPES + ("weapon",))
    entities = [{**doc["entities"][0], "type": not_requested}, *doc["entities"][1:], *ghosts]
    result = filter_graphs(REPAIR, table([extracted(doc, graph=with_graph(doc, entities))]))
    assert result.side["dropped"].column("reason").to_pylist() == ["entity type not requested"]


def test_repaired_counts_add_up_with_variants_and_drops() -> None:
    docs = toy_docs(12)
    rows = (
        [with_ghost(d) for d in docs[:5]]
        + [extracted(d) for d in docs[5:10]]
        + [
            extracted(docs[10], error="boom", graph=None),
            extracted(docs[11], graph=with_graph(docs[11], [{"text": "Zorblax", "type": "x"}], [])),
        ]
    )
    result = filter_graphs(FilterConfig(ungrounded="repair", augment={"variants": 2, "seed": 1}), table(rows))
    s = result.summary
    assert (s["rows_in"], s["kept"], s["dropped"]) == (12, 10, 2) and s["variants"] > 0
    assert s["repaired"] == {"ungrounded entity removed": 5}
    assert counts.balance(s, result.main.num_rows) == 0
    rows_table = counts.table(s, result.main.num_rows, {n: t.num_rows for n, t in result.side.items()}, row_wise=True)
    whats = [r["what"] for r in rows_table]
    assert whats == [
        "rows in", "dropped: extraction error", "dropped: too few entities", "augmentation variants added", "rows out",
        "repaired (kept, in rows out): ungrounded entity removed",
        "dropped artifact rows (kept aside, not in rows out)",
        "repaired artifact rows (what repair removed from rows that are in rows out)",
    ]  # fmt: skip
    out = whats.index("rows out")
    assert sum(r["count"] for r in rows_table[:out]) == rows_table[out]["count"] == result.main.num_rows
    # Variants of a repaired document are cut from the repaired graph.
    for v in result.main.to_pylist():
        assert "Zorblax Quintavius" not in v["graph"]


@st.composite
def _labelled(draw: st.DrawFn) -> dict[str, Any]:
    """A row whose teacher mostly names words of the text (some spelled otherwise, some
    invented, some listed twice) and mostly relates its own entities."""
    row = draw(_row)
    names = draw(st.lists(_words, min_size=1, max_size=5))
    entities = [{"text": n, "type": draw(_types)} for n in names]
    ends = st.sampled_from(names + ["nobody", "0"]) if draw(st.integers(0, 3)) == 0 else st.sampled_from(names)
    relations = draw(st.lists(st.fixed_dictionaries({"head": ends, "tail": ends, "type": _types}), max_size=4))
    text = " ".join(draw(st.lists(st.sampled_from(names + ["and"]), max_size=6)))
    return {**row, "text": text, "error": "", "gold": None, "entity_types": None, "relation_types": None,
            "graph": json.dumps({"entities": entities, "relations": relations})}  # fmt: skip


@settings(max_examples=80, deadline=None)
@given(
    rows=st.lists(st.one_of(_labelled(), _row), max_size=20), variants=st.integers(0, 2), min_entities=st.integers(0, 2)
)
def test_a_repaired_graph_is_grounded_and_nothing_is_lost(
    rows: list[dict[str, Any]], variants: int, min_entities: int
) -> None:
    rows = [{**row, "id": f"d{i}"} for i, row in enumerate(rows)]  # one row per document, as extract writes
    cfg = FilterConfig(
        ungrounded="repair", min_chars=0, min_entities=min_entities, max_entities=4, augment={"variants": variants}
    )
    result = filter_graphs(cfg, table(rows))
    s = result.summary
    repaired = result.side["repaired"].to_pylist()
    assert s["rows_in"] == len(rows) == s["kept"] + s["dropped"] == s["kept"] + result.side["dropped"].num_rows
    assert sum(s["repaired"].values()) == len(repaired) <= s["kept"]
    assert counts.balance(s, result.main.num_rows) == 0
    assert s["repair_removed"] == {
        "entities": sum(len(json.loads(r["removed"])["entities"]) for r in repaired),
        "relations": sum(len(json.loads(r["removed"])["relations"]) for r in repaired),
    }
    by_id = {r["id"]: r for r in repaired}
    for out in result.main.to_pylist():
        graph = graph_from_obj(json.loads(out["graph"]))
        haystack = normalise(out["text"])
        texts = {e.text for e in graph.entities}
        assert all(normalise(e.text) and normalise(e.text) in haystack for e in graph.entities)
        assert all(r.head in texts and r.tail in texts for r in graph.relations)
        if out["variant"] == 0 and out["id"] in by_id:
            # Nothing lost: what was kept and what was removed make the teacher's graph.
            row, removed = by_id[out["id"]], json.loads(by_id[out["id"]]["removed"])
            original = graph_from_obj(json.loads(row["graph"]))
            kept_e = [(e.text, e.type) for e in graph.entities] + [(e["text"], e["type"]) for e in removed["entities"]]
            kept_r = [r.model_dump() for r in graph.relations] + removed["relations"]
            assert sorted(kept_e) == sorted((e.text, e.type) for e in original.entities)
            assert sorted(map(json.dumps, kept_r)) == sorted(json.dumps(r.model_dump()) for r in original.relations)
            assert removed["entities"] and all(
                not normalise(e["text"]) or normalise(e["text"]) not in haystack for e in removed["entities"]
            )
