"""The toy world's rationales: the reasoning from a text to its graph, never the answer."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from t2g import toyworld
from t2g.graph import Graph
from t2g.llm import Result
from t2g.rationales import NotToyWorld, rationale, read
from t2g.stages.reason import QUOTES_GRAPH, Rejected, thinking

DOCS = toyworld.generate(300, seed=11, split="train")


def _answer(doc: dict, etypes, rtypes) -> Graph:
    return Graph.model_validate({"entities": doc["entities"], "relations": doc["relations"]}).restricted(etypes, rtypes)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(DOCS), st.data(), st.integers(0, 3))
def test_a_rationale_never_holds_the_answer_json(doc, data, seed):
    etypes = data.draw(st.lists(st.sampled_from(toyworld.ENTITY_TYPES), unique=True))
    rtypes = data.draw(st.lists(st.sampled_from(toyworld.RELATION_TYPES), unique=True))
    answer = _answer(doc, etypes, rtypes)
    text = rationale(doc["text"], etypes, rtypes, answer, seed=seed)
    assert not re.search(r'[{}\[\]"]', text)
    for form in (answer.to_json(), json.dumps(answer.interchange()), json.dumps(answer.interchange(), indent=2)):
        assert re.sub(r"\s+", "", form) not in re.sub(r"\s+", "", text)
    # The reason stage, which rejects a thinking that quotes the graph, keeps it.
    res = Result(text=f"<think>{text}</think>", finish_reason="stop")
    assert thinking(res, answer.to_json(), 10_000) == text.strip()
    # It explains every answered relation and names every answered entity.
    for rel in answer.relations:
        assert rel.head in text and rel.tail in text and rel.type in text
    for ent in answer.entities:
        assert ent.text in text


def test_the_reason_check_would_catch_a_rationale_that_quoted_the_json():
    doc = next(d for d in DOCS if d["relations"])
    answer = _answer(doc, doc["entity_types"], doc["relation_types"])
    quoted = rationale(doc["text"], doc["entity_types"], doc["relation_types"], answer) + " " + answer.to_json()
    with pytest.raises(Rejected) as exc:
        thinking(Result(text=f"<think>{quoted}</think>", finish_reason="stop"), answer.to_json(), 10_000)
    assert exc.value.reason == QUOTES_GRAPH


def test_a_text_with_nothing_asked_still_gets_a_rationale():
    # Found by the property test on a clean clone: a distractor alone and an empty request
    # gave an empty thinking, which the reason stage rejects.
    text = "Critics said the move came too late."
    out = rationale(text, [], [], Graph())
    assert (
        out and thinking(Result(text=f"<think>{out}</think>", finish_reason="stop"), Graph().to_json(), 10_000) == out
    )


def test_types_the_text_lacks_are_said_to_be_absent():
    doc = next(d for d in DOCS if not any(e["type"] == "date" for e in d["entities"]))
    text = rationale(doc["text"], ["date"], ["launched_on"], _answer(doc, ["date"], ["launched_on"]))
    assert "date" in text and "launched_on" in text


def test_a_name_the_request_does_not_want_is_set_aside():
    doc = next(d for d in DOCS if any(e["type"] == "person" for e in d["entities"]))
    text = rationale(doc["text"], ["date"], [], _answer(doc, ["date"], []))
    person = next(e["text"] for e in doc["entities"] if e["type"] == "person")
    assert re.search(rf"{person} is a person, (not asked|which is not wanted)", text)


def test_deterministic_per_seed_and_varied_in_wording():
    outs = {seed: [rationale(d["text"], d["entity_types"], d["relation_types"], _answer(d, d["entity_types"], d["relation_types"]), seed=seed)
                   for d in DOCS[:50]] for seed in (0, 1)}  # fmt: skip
    again = [rationale(d["text"], d["entity_types"], d["relation_types"], _answer(d, d["entity_types"], d["relation_types"]), seed=0)
             for d in DOCS[:50]]  # fmt: skip
    assert outs[0] == again
    assert outs[0] != outs[1]
    # Wording varies between documents: more than one way of saying what a name is.
    shapes = {
        m for text in outs[0] for m in re.findall(r" (is an?|names an?|: an?) (?:person|organisation|product)", text)
    }
    assert len(shapes) >= 2


def test_sentences_are_read_as_their_template_wrote_them():
    # "{p} founded {o}." must not swallow "Norvlab was founded by Lilia."
    (reading,) = read("Norvlab was founded by Lilia.")
    assert reading.names == {"o": "Norvlab", "p": "Lilia"}
    assert reading.relations == [("Lilia", "Norvlab", "founded")]
    assert reading.cues[("Lilia", "Norvlab", "founded")] == "was founded by"


def test_a_text_the_toy_world_did_not_write_is_refused():
    with pytest.raises(NotToyWorld):
        rationale("Barack Obama was born in Hawaii.", ["person"], [], Graph())
