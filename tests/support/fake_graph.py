"""A corpus whose graph is known, and the answer of tests/support/fake_openai.py's server that
extracts it: grounded graphs, so the graph stages can be driven (and measured) without a
model. Documents are short: "<First> <Last> works for <Org>. <Org> is located in <City>."
(a few names recur across documents, as entities do in a corpus), and one document in
`ungrounded_every` also gets an entity the text does not hold ("Jolie"): grounding must
drop it."""

from __future__ import annotations

import json
import random
import re

FIRST = ["Ada", "Marin", "Talie", "Oskar", "Nadia", "Piet", "Lena", "Ravi", "Ines", "Tomas", "Yara", "Bruno"]
LAST = ["Okafor", "Lindqvist", "Moreau", "Tanaka", "Silva", "Novak", "Haddad", "Kowalski", "Brennan", "Ito", "Varga"]
ORG = [
    "Zentek",
    "Altavia",
    "Brightwell",
    "Corvex",
    "Duneline",
    "Eastmark",
    "Fjordsoft",
    "Glimmer",
    "Halcyon",
    "Ironleaf",
]
CITY = ["Paris", "Lagos", "Osaka", "Lima", "Oslo", "Quito", "Perth", "Porto", "Accra", "Hanoi"]

ENTITY_TYPES = ["person", "organisation", "location"]
RELATION_TYPES = ["works_for", "located_in"]

_WORKS = re.compile(r"([A-Z][a-z]+ [A-Z][a-z]+) works for ([A-Z][a-z]+ [A-Z][a-z]+|[A-Z][a-z]+)\.")
_LOCATED = re.compile(r"([A-Z][a-z]+(?: [A-Z][a-z]+)?) is located in ([A-Z][a-z]+)\.")


def document(i: int, seed: int = 0) -> dict:
    """Document `i` of the corpus: the same i and seed, the same text."""
    rng = random.Random(f"{seed}:{i}")
    person = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    org = f"{rng.choice(ORG)} {rng.choice(ORG)}" if rng.random() < 0.5 else rng.choice(ORG)
    text = f"{person} works for {org}. {org} is located in {rng.choice(CITY)}. Report {i}."
    return {"id": f"d{seed}-{i}", "text": text}


def corpus(n: int, seed: int = 0, start: int = 0) -> list[dict]:
    return [document(i, seed) for i in range(start, start + n)]


def write_jsonl(path, docs) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for d in docs:
            fh.write(json.dumps(d) + "\n")


def grounded_answer(ungrounded_every: int = 0):
    """An answer function for FakeOpenAI: the graph of the text in the request's prompt."""

    def answer(key: str, body: dict) -> tuple[str, None]:
        text = body["messages"][-1]["content"].split("Text: ", 1)[1]
        entities, relations = {}, []
        for person, org in _WORKS.findall(text):
            entities[person] = "person"
            entities[org] = "organisation"
            relations.append({"head": person, "tail": org, "type": "works_for"})
        for org, city in _LOCATED.findall(text):
            entities.setdefault(org, "organisation")
            entities[city] = "location"
            relations.append({"head": org, "tail": city, "type": "located_in"})
        if (
            ungrounded_every
            and int(re.search(r"Report (\d+)", text).group(1) if "Report" in text else 1) % ungrounded_every == 0
        ):
            entities["Jolie"] = "person"
            relations.append({"head": "Jolie", "tail": next(iter(entities)), "type": "works_for"})
        ents = [{"id": i, "text": t, "type": ty} for i, (t, ty) in enumerate(entities.items())]
        return json.dumps({"entities": ents, "relations": relations}), None

    return answer
