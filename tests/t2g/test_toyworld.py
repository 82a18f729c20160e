"""The toy world: deterministic, grounded, complete gold, disjoint splits, lazy streams."""

from __future__ import annotations

import json
from itertools import islice

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from t2g import toyworld as tw
from t2g.toyworld import World

ENTITY_TYPES, RELATION_TYPES = tw.world_types()


def check_document(doc: dict, world: World = World()) -> None:
    """Every invariant one record must satisfy."""
    assert set(doc) == {"id", "text", "entities", "relations", "entity_types", "relation_types"}
    text, names = doc["text"], tw.cast(world)
    texts = [e["text"] for e in doc["entities"]]
    assert len(texts) == len(set(texts))
    for e in doc["entities"]:
        assert e["text"] in text, "entity not grounded"
        assert e["type"] == names.type_of[e["text"]]
    for r in doc["relations"]:
        assert r["head"] in texts and r["tail"] in texts and r["head"] != r["tail"]
        assert r["type"] in RELATION_TYPES
    rel_keys = [(r["head"], r["tail"], r["type"]) for r in doc["relations"]]
    assert len(rel_keys) == len(set(rel_keys))
    # Complete: every name of the world that the text mentions is in the gold.
    assert {n for n in names.type_of if n in text} == set(texts)
    # Requested types: a superset of those present, in inventory order, plus absent ones.
    for key, inventory, present in (
        ("entity_types", ENTITY_TYPES, {e["type"] for e in doc["entities"]}),
        ("relation_types", RELATION_TYPES, {r["type"] for r in doc["relations"]}),
    ):
        requested = doc[key]
        assert present <= set(requested)
        assert requested == [t for t in inventory if t in requested]
        if len(present) < len(inventory):
            assert set(requested) - present, f"{key} names no absent type"


def test_records_satisfy_every_invariant():
    docs = tw.generate(500, seed=7)
    for doc in docs:
        check_document(doc)
    assert [d["id"] for d in docs[:2]] == ["tw-7-0", "tw-7-1"]
    # The corpus exercises what it should: every type, relations, empties, distractors.
    assert {e["type"] for d in docs for e in d["entities"]} == set(ENTITY_TYPES)
    assert {r["type"] for d in docs for r in d["relations"]} == set(RELATION_TYPES)
    assert any(not d["entities"] for d in docs)
    assert any(d["entities"] and not d["relations"] for d in docs)
    assert any(s in d["text"] for d in docs for s in tw.DISTRACTORS)
    words = [len(d["text"].split()) for d in docs]
    assert 8 <= sum(words) / len(words) <= 40 and max(words) <= 60


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), world_seed=st.integers(0, 1000), split=st.sampled_from([None, *tw.SPLITS]))
def test_invariants_hold_for_any_seed(seed, world_seed, split):
    world = World(seed=world_seed)
    for doc in tw.generate(10, seed=seed, world=world, split=split):
        check_document(doc, world)


def test_same_seed_same_bytes(tmp_path):
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    assert tw.write_jsonl(a, n=200, seed=3) == 200
    tw.write_jsonl(b, n=200, seed=3)
    tw.write_jsonl(c, n=200, seed=4)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    lines = a.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == tw.generate(200, seed=3)


def test_offset_continues_the_same_stream():
    assert tw.generate(5, seed=2, offset=3) == tw.generate(8, seed=2)[3:]
    assert tw.generate(4, seed=2, split="test", offset=10) == tw.generate(14, seed=2, split="test")[10:]


def test_splits_share_names_but_not_documents():
    train = tw.generate(2000, seed=0, split="train")
    test = tw.generate(300, seed=0, split="test")
    assert not {d["text"] for d in train} & {d["text"] for d in test}
    assert not {d["id"] for d in train} & {d["id"] for d in test}
    assert test[0]["id"] == "tw-test-0-0"
    # One cast: the test names are the train names.
    names = lambda docs: {e["text"] for d in docs for e in d["entities"] if e["type"] != "date"}  # noqa: E731
    assert names(test) <= names(train)
    # Different document seeds on one world: same cast, different documents.
    other = tw.generate(300, seed=1)
    assert names(other) <= set(tw.cast().type_of)
    assert {d["text"] for d in other} != {d["text"] for d in tw.generate(300, seed=0)}


def test_world_seed_changes_names_and_sizes_are_parameters():
    small = World(seed=0, people=3, organisations=2, locations=2, products=2, dates=2)
    names = tw.cast(small).names
    assert [len(names[t]) for t in ENTITY_TYPES] == [3, 2, 2, 2, 2]
    assert tw.cast(World(seed=1)).names != tw.cast(World(seed=0)).names
    for doc in tw.generate(100, seed=0, world=small):
        check_document(doc, small)
    with pytest.raises(ValueError, match="person"):
        tw.cast(World(people=10_000))


def test_names_are_distinct_and_never_inside_each_other():
    for world in (World(), World(seed=5, people=60, organisations=40, locations=30, products=30)):
        names = [n.casefold() for n in tw.cast(world).type_of]
        assert len(names) == len(set(names))
        assert not [(a, b) for a in names for b in names if a != b and a in b]


def test_streaming_is_lazy(monkeypatch):
    # Counted, not timed: taking 3 documents of a 10**12 stream builds exactly 3; an eager
    # stream is stopped by the counter at once instead of hanging.
    built = []
    document = tw._document

    def counted(*args, **kwargs):
        built.append(1)
        assert len(built) <= 100, "iter_documents builds documents nobody asked for"
        return document(*args, **kwargs)

    monkeypatch.setattr(tw, "_document", counted)
    first = list(islice(tw.iter_documents(10**12, seed=0), 3))
    assert len(built) == 3
    monkeypatch.undo()
    assert first == tw.generate(3, seed=0)


def test_corpus_holds_texts_and_json_targets():
    strings = list(tw.corpus(5, seed=0))
    assert len(strings) == 15
    assert strings[0] == tw.generate(1, seed=0)[0]["text"]
    assert json.loads(strings[1])["entities"][0]["id"] == 0


def test_cli_writes_the_file(tmp_path):
    from typer.testing import CliRunner

    from t2g.cli import app

    out = tmp_path / "x.jsonl"
    result = CliRunner().invoke(app, ["toyworld", "--n", "5", "--seed", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8").count("\n") == 5


def test_too_small_a_world_is_refused():
    with pytest.raises(ValueError, match="organisations >= 2"):
        World(organisations=1)
    tiny = World(people=2, organisations=2, locations=1, products=1, dates=1)
    for doc in tw.generate(50, seed=0, world=tiny, split="test"):
        check_document(doc, tiny)
