"""The toy world with identities: deterministic, its gold spans exact, and it contains the hard
cases it promises (shared surname, one surface for two types, acronyms, long documents)."""

from __future__ import annotations

from collections import defaultdict

from t2g.kg import identities
from t2g.kg.tables import MENTIONS, RELATIONS


def test_deterministic_and_gold_spans_are_the_text():
    a, b = identities.documents(50), identities.documents(50)
    assert a == b and identities.documents(50, seed=1) != a
    for d in a:
        for m in d["mentions"]:
            assert d["text"][m["start"] : m["end"]] == m["text"]
        for f in d["facts"]:
            sentence = d["text"][f["start"] : f["end"]]
            assert f["head_text"] in sentence and f["tail_text"] in sentence


def test_the_world_holds_its_hard_cases():
    docs = identities.documents(300)
    people = [e for e in identities.cast() if e.type == "person"]
    assert people[0].last == people[1].last  # two people, one surname
    surfaces = defaultdict(set)
    for d in docs:
        for m in d["mentions"]:
            surfaces[m["text"]].add(m["type"])
    assert any(len(t) > 1 for t in surfaces.values())  # one surface, two types ("Harport")
    forms = {m["text"] for d in docs for m in d["mentions"]}
    orgs = [e for e in identities.cast() if e.type == "organisation"]
    assert all(o.acronym in forms for o in orgs)
    assert any(len(d["text"]) > 2000 for d in docs)
    # within a document holding both, neither is named by the bare shared surname
    for d in docs:
        ids = {m["gold_id"] for m in d["mentions"]}
        if {people[0].gold_id, people[1].gold_id} <= ids:
            assert people[0].last not in {m["text"] for m in d["mentions"]}


def test_gold_tables_match_the_contract():
    docs = identities.documents(20)
    mentions, relations = identities.gold_tables(docs)
    assert mentions.schema == MENTIONS and relations.schema == RELATIONS
    assert mentions.num_rows == sum(len(d["mentions"]) for d in docs)
    assert identities.gold_facts(docs)
