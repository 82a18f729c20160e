"""The graph core: schema for structured generation, and the completion parser that
every reward, the filter and the evaluation share."""

from __future__ import annotations

import json

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from t2g.graph import Graph, graph_from_obj, json_schema, json_spans, parse_completion
from tests.support.hang_guard import hang_guard

GOLD = {
    "entities": [
        {"id": 0, "text": "Satya Nadella", "type": "person"},
        {"id": 1, "text": "Microsoft", "type": "company"},
    ],
    "relations": [{"head": "Satya Nadella", "tail": "Microsoft", "type": "CEO of"}],
}


def test_schema_accepts_graphs_of_requested_types_only():
    schema = json_schema(["person", "company"], ["CEO of"])
    jsonschema.validate(GOLD, schema)
    bad = json.loads(json.dumps(GOLD))
    bad["entities"][0]["type"] = "location"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**GOLD, "extra": 1}, schema)
    assert schema["properties"]["entities"]["items"]["properties"]["type"]["enum"] == ["person", "company"]


def test_schema_bounds_the_entity_id_so_constrained_decoding_cannot_run_on_in_digits():
    import xgrammar
    from xgrammar.testing import _is_grammar_accept_string as accepts

    schema = json_schema(["person"], [])
    grammar = xgrammar.Grammar.from_json_schema(json.dumps(schema))
    one = '{"entities": [{"id": %s, "text": "Ada", "type": "person"}], "relations": []}'
    assert accepts(grammar, one % 0) and accepts(grammar, one % 9999)
    assert not accepts(grammar, one % 10000) and not accepts(grammar, one % "-1")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(json.loads(one % 10000), schema)


def test_schema_without_types_allows_only_empty_lists():
    schema = json_schema([], [])
    jsonschema.validate({"entities": [], "relations": []}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(GOLD, schema)


def test_schema_deduplicates_types_and_keeps_order():
    assert json_schema(["b", "a", "b"], [])["properties"]["entities"]["items"]["properties"]["type"]["enum"] == [
        "b",
        "a",
    ]


def test_parse_plain_and_thinking():
    p = parse_completion(json.dumps(GOLD))
    assert p.graph is not None and p.error == "" and p.think is None and not p.format_ok
    p = parse_completion(f"<think>Nadella runs it.</think>\n{json.dumps(GOLD)}\n")
    assert p.graph is not None and p.think == "Nadella runs it." and p.format_ok
    assert p.graph.entities[0].text == "Satya Nadella" and p.graph.relations[0].type == "CEO of"


@pytest.mark.parametrize(
    "text, error",
    [
        ('{"entities": [', "unterminated"),
        ("no json here", "no JSON object"),
        ("{not json}", "malformed"),
        ('{"entities": []} {"entities": []}', "2 JSON objects"),
        ('{"entities": [{"text": 1, "type": "x"}]}', "entities.0.text"),
        ('{"entities": "x"}', "entities"),
        ('{"nodes": []}', "nodes"),
        ("[1, 2]", "no JSON object"),
    ],
)
def test_parse_failures_say_why(text, error):
    p = parse_completion(text)
    assert p.graph is None and error in p.error


@pytest.mark.parametrize(
    "text",
    [
        '<think>a</think>{"entities": [], "relations": []} trailing',
        'lead <think>a</think>{"entities": [], "relations": []}',
        '<think>a</think><think>b</think>{"entities": [], "relations": []}',
        '{"entities": [], "relations": []}',
        '<think>a</think>{"entities": [], "relations": []} }',
        '<think>a</think>{"entities": [], "relations": []}{bad}',
    ],
)
def test_format_requires_think_then_exactly_one_object(text):
    assert not parse_completion(text).format_ok


def test_prose_quotes_and_braces_in_strings_do_not_confuse_the_scanner():
    text = 'He said "hi" and then ' + json.dumps({"entities": [{"text": 'a } " {', "type": "t"}], "relations": []})
    p = parse_completion(text)
    assert p.graph is not None and p.graph.entities[0].text == 'a } " {'


def test_json_inside_think_is_not_the_answer():
    p = parse_completion('<think>maybe {"entities": []}</think>{"entities": [], "relations": []}')
    assert p.graph is not None and p.format_ok


def test_graph_helpers():
    g = graph_from_obj(GOLD)
    assert g.dangling() == []
    g2 = Graph.model_validate({**GOLD, "relations": [{"head": "Bill", "tail": "Microsoft", "type": "CEO of"}]})
    assert len(g2.dangling()) == 1
    r = g.restricted(["company"], ["CEO of"])
    assert [e.text for e in r.entities] == ["Microsoft"] and r.relations == []
    assert json.loads(g.to_json())["entities"][1] == {"id": 1, "text": "Microsoft", "type": "company"}
    assert g.interchange()["entities"][0] == {"text": "Satya Nadella", "type": "person"}


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.binary(), st.integers(), st.none(), st.lists(st.text())))
def test_parse_never_raises(value):
    p = parse_completion(value)
    assert isinstance(p.error, str) and (p.graph is None) == bool(p.error)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet="ab \n<>/think", max_size=30),
    st.dictionaries(st.text(max_size=5), json_values, max_size=3),
    st.text(alphabet="xy .\n", max_size=30),
)
def test_one_object_in_prose_is_found(prefix, obj, suffix):
    spans, open_ = json_spans(prefix + json.dumps(obj) + suffix)
    assert not open_ and [s.value for s in spans] == [obj]


@pytest.mark.parametrize(
    "text",
    [
        "{" * 1_000_000,
        "}" * 1_000_000,
        '{"' + "\\" * 1_000_000,
        "{" + '""' * 500_000 + "}",
        '{"a": [' + "1," * 400_000 + "1]}",
        "<think>" * 100_000 + "</think>" * 100_000,
    ],
)
def test_adversarial_megabyte_inputs_finish(text):
    with hang_guard():  # a hang fails; speed is make bench's
        parsed = parse_completion(text)
    assert parsed.graph is None and parsed.error  # none of them is a graph
