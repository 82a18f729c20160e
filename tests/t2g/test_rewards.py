"""Rewards: trl's calling convention, scores on known completions, never raising on garbage,
and one parse per distinct completion across all rewards."""

from __future__ import annotations

import json
import math
import pickle
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import t2g.rewards as rw
from t2g.graph import Graph, parse_completion
from t2g.metrics import entity_set, f1, relation_set
from t2g.rewards import REWARDS, reward_funcs
from tests.support.hang_guard import hang_guard

GOLD = {
    "entities": [
        {"text": "Satya Nadella", "type": "person"},
        {"text": "Microsoft", "type": "company"},
        {"text": "Redmond", "type": "location"},
    ],
    "relations": [
        {"head": "Satya Nadella", "tail": "Microsoft", "type": "CEO of"},
        {"head": "Microsoft", "tail": "Redmond", "type": "based in"},
    ],
}
SOLUTION = json.dumps(GOLD)
ENTITY_TYPES = ["person", "company", "location"]
RELATION_TYPES = ["CEO of", "based in"]
GRADED = ["json", "f1_entities", "f1_relations", "types"]


def score(completions: list[Any], **overrides: Any) -> dict[str, list[float | None]]:
    """Call every reward the way trl's GRPOTrainer does, keyword arguments included."""
    n = len(completions)
    kwargs: dict[str, Any] = {
        "solution": [SOLUTION] * n,
        "entity_types": [ENTITY_TYPES] * n,
        "relation_types": [RELATION_TYPES] * n,
        "completion_ids": [[1, 2, 3]] * n,
        "trainer_state": None,
        "log_extra": lambda *a, **k: None,
        "log_metric": lambda *a, **k: None,
    }
    kwargs.update(overrides)
    return {name: f(prompts=["p"] * n, completions=completions, **kwargs) for name, f in REWARDS.items()}


def chat(text: Any) -> list[dict[str, Any]]:
    return [{"role": "assistant", "content": text}]


@pytest.fixture(autouse=True)
def _fresh_caches():
    rw.clear_caches()
    yield
    rw.clear_caches()


# --- registry -------------------------------------------------------------------------


def test_registry_names_match_function_names_and_pickle():
    assert set(REWARDS) == {"format", "json", "f1_entities", "f1_relations", "types"}
    for name, func in REWARDS.items():
        assert func.__name__ == name  # trl logs rewards/<__name__>/mean
        assert pickle.loads(pickle.dumps(func)) is func
    assert [f.__name__ for f in reward_funcs(["types", "format"])] == ["types", "format"]
    with pytest.raises(ValueError, match="nope"):
        reward_funcs(["format", "nope"])


# --- known completions ----------------------------------------------------------------

GOLD_FORMS = {
    "plain": SOLUTION,
    "chat": chat(SOLUTION),
    "chat-parts": [
        {"role": "user", "content": "extract"},
        {
            "role": "assistant",
            "content": [{"type": "text", "text": SOLUTION[:20]}, {"type": "text", "text": SOLUTION[20:]}],
        },
    ],
    "think": "<think>Nadella runs Microsoft.</think>\n" + SOLUTION,
    "think-chat": chat("<think>Nadella runs Microsoft.</think>" + SOLUTION),
}


@pytest.mark.parametrize("form", GOLD_FORMS)
def test_gold_as_completion_scores_one(form):
    scores = score([GOLD_FORMS[form]])
    for name in GRADED:
        assert scores[name] == [1.0], name
    assert scores["format"] == [1.0 if form.startswith("think") else 0.0]


def test_graph_with_ids_as_the_teacher_writes_it_scores_one():
    with_ids = json.dumps(
        {"entities": [{"id": i, **e} for i, e in enumerate(GOLD["entities"])], "relations": GOLD["relations"]}
    )
    assert all(v == [1.0] for k, v in score(["<think>x</think>" + with_ids]).items())


@pytest.mark.parametrize("bad", ['{"entities": [', "<think>" + '{"entities": [', chat('{"entities": ['), ""])
def test_truncated_or_empty_scores_zero_everywhere(bad):
    assert all(v == [0.0] for v in score([bad]).values())


def test_partial_credit_computed_by_hand():
    pred = {
        "entities": [
            {"text": "satya  nadella", "type": "Person"},  # matches after normalisation
            {"text": "Microsoft", "type": "person"},  # wrong type
            {"text": "Seattle", "type": "location"},  # not in gold
        ],
        "relations": [{"head": "satya  nadella", "tail": "Microsoft", "type": "CEO of"}],
    }
    scores = score([json.dumps(pred)])
    # entities: tp 1, fp 2, fn 2 -> 2*1 / (2*1 + 2 + 2) = 1/3
    assert scores["f1_entities"] == [pytest.approx(1 / 3)]
    # relations: tp 1, fp 0, fn 1 -> 2 / (2 + 0 + 1) = 2/3
    assert scores["f1_relations"] == [pytest.approx(2 / 3)]
    assert scores["json"] == [1.0]
    assert scores["types"] == [1.0]  # every type is a requested one, even the wrong one


def test_a_duplicate_costs_precision():
    # Sets would score these 1.0: a repeated entity or relation would be free, and GRPO drifts into it.
    twice = {
        "entities": [*GOLD["entities"], GOLD["entities"][0]],
        "relations": [*GOLD["relations"], GOLD["relations"][1]],
    }
    scores = score([json.dumps(twice)])
    # entities: tp 3, listed 4 -> 2*3 / (3 + 4); relations: tp 2, listed 3 -> 2*2 / (2 + 3)
    assert scores["f1_entities"] == [pytest.approx(6 / 7)]
    assert scores["f1_relations"] == [pytest.approx(4 / 5)]
    one_thrice = {"entities": GOLD["entities"][:1] * 3, "relations": []}
    assert score([json.dumps(one_thrice)])["f1_entities"] == [pytest.approx(2 / 6)]  # tp 1, gold 3, listed 3
    nothing = json.dumps({"entities": [], "relations": []})
    assert score([nothing], solution=[nothing])["f1_relations"] == [1.0]


# --- gold that lists a mention twice ----------------------------------------------------

# CoNLL04-style: one entity per mention, so a name said twice is listed twice, and so is
# the relation each mention takes part in.
TWICE = {
    "entities": [
        {"text": "Oswald", "type": "Peop"},
        {"text": "Kennedy", "type": "Peop"},
        {"text": "Dallas", "type": "Loc"},
        {"text": "Kennedy", "type": "Peop"},
        {"text": "Dallas", "type": "Loc"},
    ],
    "relations": [
        {"head": "Oswald", "tail": "Kennedy", "type": "Kill"},
        {"head": "Oswald", "tail": "Kennedy", "type": "Kill"},
        {"head": "Kennedy", "tail": "Dallas", "type": "Live_In"},
    ],
}
TWICE_TYPES = {"entity_types": [["Peop", "Loc"]], "relation_types": [["Kill", "Live_In"]]}


def test_a_gold_that_mentions_an_entity_twice_scores_its_own_copy_one():
    # "Oswald shot Kennedy in Dallas ; Kennedy had landed in Dallas that morning ."
    # Set gold against the listed copy scored it 2*3/(3+5) = 0.75 on entities and
    # 2*2/(2+3) = 0.8 on relations.
    solution = json.dumps(TWICE)
    scores = score(["<think>two mentions each</think>" + solution], solution=[solution], **TWICE_TYPES)
    assert all(v == [1.0] for v in scores.values()), scores
    # Listing Kennedy a third time, or the killing a third time, is one too many.
    thrice = {**TWICE, "entities": [*TWICE["entities"], TWICE["entities"][1]]}
    assert score([json.dumps(thrice)], solution=[solution], **TWICE_TYPES)["f1_entities"] == [pytest.approx(10 / 11)]
    thrice = {**TWICE, "relations": [*TWICE["relations"], TWICE["relations"][0]]}
    assert score([json.dumps(thrice)], solution=[solution], **TWICE_TYPES)["f1_relations"] == [pytest.approx(6 / 7)]
    # Listing each once, as a set would, now misses the second mentions: recall 3/5 and 2/3.
    once = {"entities": TWICE["entities"][:3], "relations": TWICE["relations"][1:]}
    scores = score([json.dumps(once)], solution=[solution], **TWICE_TYPES)
    assert scores["f1_entities"] == [pytest.approx(6 / 8)] and scores["f1_relations"] == [pytest.approx(4 / 5)]


# Names and types that collide after normalisation ("Dallas"/"dallas", "Peop"/"peop",
# "Mary  Ann"/"mary ann"), so repeats also come about through spelling.
_names = st.sampled_from(["Oswald", "Kennedy", "Dallas", "dallas", "Mary  Ann", "mary ann", "Straße"])
_etypes = st.sampled_from(["Peop", "peop", "Loc", "Org"])
_rtypes = st.sampled_from(["Kill", "Live_In", "located in"])


@st.composite
def gold_with_repeats(draw) -> dict[str, list[dict[str, str]]]:
    """A gold graph in which at least one entity (and one relation, if any) is listed again."""
    ents = draw(st.lists(st.fixed_dictionaries({"text": _names, "type": _etypes}), min_size=1, max_size=5))
    ents = draw(st.permutations(ents + draw(st.lists(st.sampled_from(ents), min_size=1, max_size=3))))
    texts = st.sampled_from([e["text"] for e in ents])
    rels = draw(st.lists(st.fixed_dictionaries({"head": texts, "tail": texts, "type": _rtypes}), max_size=4))
    if rels:
        rels = draw(st.permutations(rels + draw(st.lists(st.sampled_from(rels), min_size=1, max_size=3))))
    return {"entities": ents, "relations": rels}


@settings(max_examples=200, deadline=None)
@given(gold_with_repeats(), st.sampled_from(["plain", "think", "ids"]), st.data())
def test_the_gold_scores_one_and_one_more_repeat_does_not(gold, form, data):
    solution = json.dumps(gold)
    columns = {
        "solution": [solution],
        "entity_types": [sorted({e["type"] for e in gold["entities"]})],
        "relation_types": [sorted({r["type"] for r in gold["relations"]})],
    }

    def as_completion(graph: dict) -> str:
        body = Graph.model_validate(graph).to_json() if form == "ids" else json.dumps(graph)
        return body if form == "plain" else "<think>copying the gold</think>\n" + body

    scores = score([as_completion(gold)], **columns)
    for name in GRADED:
        assert scores[name] == [1.0], (name, scores)
    assert scores["format"] == [0.0 if form == "plain" else 1.0]

    # The items are the very tuples the evaluation compares, only counted.
    gold_entities, gold_relations = rw._gold(solution)
    assert set(gold_entities) == entity_set(gold) and set(gold_relations) == relation_set(gold)

    extra = data.draw(st.sampled_from(gold["entities"]))
    more = {**gold, "entities": [*gold["entities"], extra]}
    assert score([as_completion(more)], **columns)["f1_entities"][0] < 1.0
    if gold["relations"]:
        extra = data.draw(st.sampled_from(gold["relations"]))
        more = {**gold, "relations": [*gold["relations"], extra]}
        assert score([as_completion(more)], **columns)["f1_relations"][0] < 1.0


@settings(max_examples=100, deadline=None)
@given(gold_with_repeats(), gold_with_repeats())
def test_without_repeats_the_reward_is_the_evaluation_f1(gold, pred):
    # Where neither side lists an item twice, multisets are sets: the reward is the metric.
    def unique(graph: dict) -> dict:  # the first item of each normalised key
        ents = {next(iter(entity_set({"entities": [e]}))): e for e in reversed(graph["entities"])}
        rels = {next(iter(relation_set({"relations": [r]}))): r for r in reversed(graph["relations"])}
        return {"entities": list(ents.values()), "relations": list(rels.values())}

    gold, pred = unique(gold), unique(pred)
    scores = score([json.dumps(pred)], solution=[json.dumps(gold)])
    assert scores["f1_entities"] == [pytest.approx(f1(entity_set(gold), entity_set(pred)))]
    assert scores["f1_relations"] == [pytest.approx(f1(relation_set(gold), relation_set(pred)))]


def test_types_is_the_share_of_requested_types():
    pred = {
        "entities": [
            {"text": "A", "type": "person"},
            {"text": "B", "type": "animal"},  # not requested
            {"text": "C", "type": "location"},
        ],
        "relations": [{"head": "A", "tail": "B", "type": "owns"}],  # not requested
    }
    assert score([json.dumps(pred)])["types"] == [pytest.approx(2 / 4)]
    assert score(['{"entities": [], "relations": []}'])["types"] == [1.0]


def test_json_needs_relations_between_listed_entities():
    dangling = {
        "entities": [{"text": "A", "type": "person"}],
        "relations": [{"head": "A", "tail": "Z", "type": "owns"}],
    }
    assert score([json.dumps(dangling)])["json"] == [0.0]
    assert score([SOLUTION + SOLUTION])["json"] == [0.0]  # two objects
    assert score(['{"entities": [{"text": 1, "type": "person"}]}'])["json"] == [0.0]  # wrong key type


def test_format_needs_think_then_one_object_and_nothing_else():
    assert score(["<think>a</think>" + SOLUTION + " done"])["format"] == [0.0]
    assert score(["<think>a</think><think>b</think>" + SOLUTION])["format"] == [0.0]
    assert score(["hello <think>a</think>" + SOLUTION])["format"] == [0.0]
    assert score(["  <think>a</think>\n" + SOLUTION + "\n"])["format"] == [1.0]


# --- columns ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reward, column",
    [("f1_entities", "solution"), ("f1_relations", "solution"), ("types", "entity_types"), ("types", "relation_types")],
)
def test_missing_column_is_an_error_naming_it(reward, column):
    kwargs = {"solution": [SOLUTION], "entity_types": [ENTITY_TYPES], "relation_types": [RELATION_TYPES]}
    del kwargs[column]
    with pytest.raises(ValueError, match=repr(column)):
        REWARDS[reward](prompts=["p"], completions=[SOLUTION], **kwargs)


def test_misaligned_column_is_an_error():
    with pytest.raises(ValueError, match="'solution'"):
        REWARDS["f1_entities"](prompts=["p", "p"], completions=[SOLUTION, SOLUTION], solution=[SOLUTION])


def test_bad_gold_row_gives_none_for_that_row_only():
    scores = score([SOLUTION] * 4, solution=[SOLUTION, None, "not json", '{"foo": 1}'])
    assert scores["f1_entities"] == [1.0, None, None, None]
    assert scores["f1_relations"] == [1.0, None, None, None]
    assert scores["json"] == [1.0] * 4  # rewards that need no gold are unaffected


def test_bad_types_row_gives_none():
    assert score([SOLUTION, SOLUTION], entity_types=[ENTITY_TYPES, None])["types"] == [1.0, None]
    assert score([SOLUTION], relation_types=["CEO of"])["types"] == [None]  # a string, not a list


# --- garbage in, numbers out ------------------------------------------------------------

json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda kids: (
        st.lists(kids, max_size=4)
        | st.dictionaries(
            st.sampled_from(["entities", "relations", "text", "type", "head", "tail", "id", "x"]), kids, max_size=4
        )
    ),
    max_leaves=20,
)
graphish_text = json_like.map(lambda v: json.dumps(v))
texts = st.text(alphabet=st.sampled_from(list('{}[]":,\\ ab<>/think\n')) | st.characters(), max_size=200)
completion = st.one_of(
    texts,
    graphish_text,
    st.tuples(st.sampled_from(["", "<think>x</think>", "<think>"]), graphish_text, texts).map("".join),
    st.binary(max_size=100),
    json_like,
    st.builds(chat, st.one_of(texts, graphish_text, json_like)),
    st.lists(
        st.dictionaries(st.sampled_from(["role", "content", "type", "text"]), json_like | texts, max_size=3), max_size=3
    ),
    st.builds(lambda t: chat([{"type": "text", "text": t}, {"type": "image"}]), texts | json_like),
)


def assert_rewards(scores: dict[str, list[float | None]], n: int) -> None:
    for name, values in scores.items():
        assert len(values) == n, name
        for v in values:
            assert v is None or (isinstance(v, float) and not math.isnan(v) and 0.0 <= v <= 1.0), (name, v)


@settings(max_examples=150, deadline=None)
@given(st.lists(completion, min_size=1, max_size=6))
def test_arbitrary_completions_never_raise(completions):
    assert_rewards(score(completions), len(completions))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(completion, json_like | graphish_text, json_like, json_like), min_size=1, max_size=4))
def test_arbitrary_row_values_never_raise(rows):
    completions, solutions, etypes, rtypes = map(list, zip(*rows))
    scores = score(completions, solution=solutions, entity_types=etypes, relation_types=rtypes)
    assert_rewards(scores, len(rows))


def test_nested_and_repeated_json_score_zero():
    deep = "{" + '"a":{' * 100_000 + "}" * 100_001
    repeated = SOLUTION * 1000
    bracket = '{"entities": ' + "[" * 50_000 + "]" * 50_000 + "}"
    scores = score([deep, repeated, bracket])
    assert all(v == [0.0, 0.0, 0.0] for v in scores.values())


def test_one_megabyte_completions_are_scored():
    # Speed is `make bench`'s (bench rewards); here: they are scored, and do not hang.
    rng = random.Random(0)
    noise = "".join(rng.choice('{}[]":,\\ ab<think></think>\n') for _ in range(1_000_000))
    big_entity = json.dumps({"entities": [{"text": "x" * 1_000_000, "type": "person"}], "relations": []})
    many = json.dumps({"entities": [{"text": f"e{i}", "type": "person"} for i in range(30_000)], "relations": []})
    for text in [noise, "{" * 1_000_000, '"' * 1_000_000, big_entity, many]:
        rw.clear_caches()
        with hang_guard():
            scores = score([text])
        assert_rewards(scores, 1)


# --- one parse per completion -----------------------------------------------------------


def test_each_distinct_completion_is_parsed_once_across_all_rewards(monkeypatch):
    calls: list[str] = []

    def counting(text):
        calls.append(text)
        return parse_completion(text)

    monkeypatch.setattr(rw, "parse_completion", counting)
    think = "<think>r</think>" + SOLUTION
    batch = [SOLUTION, chat(SOLUTION), think, chat(think), '{"entities": [', SOLUTION, "prose", None, 42]
    score(batch)
    assert sorted(calls) == sorted({SOLUTION, think, '{"entities": [', "prose"})
    info = rw.cache_info()
    assert info["completions"].misses == 4
    assert info["gold"].misses == 1  # the gold string is read once for the whole batch
