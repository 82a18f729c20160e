"""A toy world with identities: the same entities named many ways across a corpus, with gold.

Built deterministically from a seed, in the style of `t2g.toyworld` (whose fact templates and
name syllables it reuses). What resolution must get right, and this world contains:
- people named in full ("Marin Tavel"), with titles ("Dr. Marin Tavel", "President Tavel"),
  by surname or first name after the full name, by initials ("M. Tavel"), and, in some
  documents, by a title and surname alone (usually a surname unique in the world; sometimes
  the shared one, which no reader could attribute: gold knows, resolution must not guess);
- two people sharing a surname (the first two of the cast): within a document holding both,
  neither is called by the surname alone (a reader could not tell either);
- a person whose surname is also a location's name ("Harport" the place, "Harport" the
  person): one surface form, two types;
- organisations with multi-word names, their acronyms ("ZDG"), legal suffixes ("Inc."),
  letter case ("ZENTEK Dynamics Group") and a hyphenated spelling ("Zen-Tek Dynamics Group");
- a location and a person written with and without diacritics ("Östvale" / "Ostvale");
- long documents (every `long_every`-th one, well over 2,000 characters).

Gold: every mention's span, type and gold entity id ("person:Marin Tavel"), and every fact
(head gold id, relation type, tail gold id) with the sentence that states it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from random import Random

import pyarrow as pa

from t2g.kg.tables import MENTIONS, RELATIONS, from_rows
from t2g.toyworld import DISTRACTORS, FACTS, SLOT_TYPE, SYLLABLES

ENTITY_TYPES: tuple[str, ...] = ("person", "organisation", "location", "product")
RELATION_TYPES: tuple[str, ...] = ("works_for", "ceo_of", "founded", "located_in", "born_in", "produces", "acquired")
TEMPLATES = tuple(t for t in FACTS if "{d" not in t.text)
TITLES = ("Dr.", "Mr.", "Ms.", "Prof.", "President", "Chancellor", "CEO")
_SURNAME = (
    ("Ha", "Ro", "Bel", "Kes", "Dor", "Var", "Mel", "Tor", "Lin", "Quen", "Os", "Pen"),
    ("ten", "man", "son", "ick", "ley", "berg", "ard", "wyn"),
)
_ORG_WORDS = (
    "Dynamics",
    "Systems",
    "Energy",
    "Networks",
    "Industries",
    "Robotics",
    "Media",
    "Foods",
    "Capital",
    "Logistics",
    "Pharma",
    "Motors",
    "Analytics",
    "Aerospace",
    "Textiles",
    "Mining",
    "Software",
    "Telecom",
    "Optics",
    "Chemicals",
)
_ACCENT = {"a": "á", "e": "é", "o": "ö", "u": "ü", "i": "í", "O": "Ö", "A": "Á", "E": "É"}
_SLOT = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class World:
    seed: int = 0
    people: int = 12
    organisations: int = 8
    locations: int = 6
    products: int = 6
    max_facts: int = 4  # fact sentences in a short document
    long_every: int = 10  # every n-th document is long
    long_facts: int = 45
    standalone_rate: float = 0.1  # a document naming someone by title and surname only


@dataclass(frozen=True)
class Entity:
    gold_id: str
    type: str
    name: str
    first: str = ""
    last: str = ""
    acronym: str = ""
    variants: tuple[str, ...] = ()  # other full spellings


def _accent(name: str) -> str:
    i = next(i for i, c in enumerate(name) if c in _ACCENT)
    return name[:i] + _ACCENT[name[i]] + name[i + 1 :]


@lru_cache(maxsize=8)
def cast(world: World = World()) -> tuple[Entity, ...]:
    rng = Random(f"identities-cast/{world.seed}")
    firsts = [a + b for a in SYLLABLES["person"][0] for b in SYLLABLES["person"][1]]
    lasts = [a + b for a in _SURNAME[0] for b in _SURNAME[1]]
    places = [a + b for a in SYLLABLES["location"][0] for b in SYLLABLES["location"][1]]
    rng.shuffle(firsts), rng.shuffle(lasts), rng.shuffle(places)
    places = ["Harport"] + [p for p in places if p != "Harport"]
    out: list[Entity] = []
    locs = places[: world.locations]
    for i, name in enumerate(locs):
        variants = (unicodedata.normalize("NFKD", _accent(name)),) if i == 1 else ()
        full = _accent(name) if i == 1 else name
        out.append(
            Entity(
                f"location:{full}",
                "location",
                full,
                variants=tuple(v for v in variants if v != full) + ((name,) if i == 1 else ()),
            )
        )
    surnames = lasts[: world.people]
    surnames[1] = surnames[0]  # two people share a surname
    surnames[2] = locs[0]  # a person's surname is a place's name
    for i in range(world.people):
        first = _accent(firsts[i]) if i == 3 else firsts[i]
        variants = (f"{firsts[i]} {surnames[i]}",) if i == 3 else ()
        out.append(
            Entity(
                f"person:{first} {surnames[i]}",
                "person",
                f"{first} {surnames[i]}",
                first,
                surnames[i],
                variants=variants,
            )
        )
    heads = [a + b for a in SYLLABLES["organisation"][0] for b in SYLLABLES["organisation"][1]]
    rng.shuffle(heads)
    words = list(_ORG_WORDS)
    rng.shuffle(words)
    used_first, acronyms = set(), set()
    for head in heads:
        if len([e for e in out if e.type == "organisation"]) == world.organisations:
            break
        w1, w2 = words.pop(), words.pop()
        name = f"{head} {w1} {w2}"
        acro = head[0] + w1[0] + w2[0]
        if head[:3] in used_first or acro in acronyms:
            words[:0] = [w1, w2]
            continue
        used_first.add(head[:3]), acronyms.add(acro)
        split = next(i for i in range(2, len(head)) if head[i:] in SYLLABLES["organisation"][1])
        hyphen = f"{head[:split]}-{head[split:].capitalize()} {w1} {w2}"
        out.append(
            Entity(
                f"organisation:{name}",
                "organisation",
                name,
                acronym=acro,
                variants=(f"{head.upper()} {w1} {w2}", f"{name} Inc.", hyphen),
            )
        )
    prods = [a + b for a in SYLLABLES["product"][0] for b in SYLLABLES["product"][1]]
    rng.shuffle(prods)
    out += [Entity(f"product:{p}", "product", p) for p in prods[: world.products]]
    return tuple(out)


def documents(n: int, seed: int = 0, world: World = World()) -> list[dict]:
    """Documents {id, text, mentions: [{start, end, text, type, gold_id}], facts: [{head, type,
    tail, start, end, head_text, tail_text}]}; ids `id-{seed}-{i}`."""
    return [
        _document(
            Random(f"identities/{world.seed}/{seed}/{i}"),
            world,
            f"id-{seed}-{i}",
            long=world.long_every > 0 and i % world.long_every == world.long_every - 1,
        )
        for i in range(n)
    ]


def _document(rng: Random, world: World, doc_id: str, long: bool) -> dict:
    everyone = cast(world)
    by_type = {t: [e for e in everyone if e.type == t] for t in ENTITY_TYPES}
    size = (
        {"person": 6, "organisation": 5, "location": 3, "product": 3}
        if long
        else {"person": 3, "organisation": 2, "location": 2, "product": 2}
    )
    pool = {t: rng.sample(by_type[t], min(size[t], len(by_type[t]))) for t in ENTITY_TYPES}
    standalone = rng.random() < world.standalone_rate
    state = {"seen": set(), "pool": pool, "everyone": everyone, "standalone": standalone}
    text, mentions, facts = "", [], []
    n_facts = world.long_facts if long else rng.randint(1, world.max_facts)
    for _ in range(n_facts):
        if text:
            text += " "
        if rng.random() < 0.2:
            text += rng.choice(DISTRACTORS) + " "
        template = rng.choice(TEMPLATES)
        filled: dict[str, Entity] = {}
        for slot in dict.fromkeys(_SLOT.findall(template.text)):
            etype = SLOT_TYPE[slot[0]]
            choices = [e for e in pool[etype] if e not in filled.values()]
            filled[slot] = rng.choice(choices)
        sentence_start = len(text)
        surfaces: dict[str, str] = {}
        pos = 0
        for m in _SLOT.finditer(template.text):
            text += template.text[pos : m.start()]
            ent = filled[m.group(1)]
            surface = _surface(rng, ent, state)
            surfaces[m.group(1)] = surface
            mentions.append(
                {
                    "start": len(text),
                    "end": len(text) + len(surface),
                    "text": surface,
                    "type": ent.type,
                    "gold_id": ent.gold_id,
                }
            )
            text += surface
            pos = m.end()
        text += template.text[pos:]
        for h, t, r in template.relations:
            facts.append(
                {
                    "head": filled[h].gold_id,
                    "type": r,
                    "tail": filled[t].gold_id,
                    "head_text": surfaces[h],
                    "tail_text": surfaces[t],
                    "start": sentence_start,
                    "end": len(text),
                }
            )
    return {"id": doc_id, "text": text, "mentions": mentions, "facts": facts}


def _ambiguous(ent: Entity, attr: str, state: dict) -> bool:
    """Whether another person of this document's pool shares the first or last name."""
    return any(getattr(o, attr) == getattr(ent, attr) for o in state["pool"]["person"] if o is not ent)


def _surface(rng: Random, ent: Entity, state: dict) -> str:
    seen = ent.gold_id in state["seen"]
    state["seen"].add(ent.gold_id)
    if ent.type == "person":
        unique_world = not any(o.last == ent.last for o in state["everyone"] if o is not ent and o.type == "person")
        # A title and surname alone: resolvable when the surname is unique in the world; for the
        # shared surname a reader cannot tell who it is (gold knows; resolution keeps it apart).
        if not seen and state["standalone"] and (unique_world or rng.random() < 0.3) and rng.random() < 0.5:
            state["seen"].discard(ent.gold_id)  # still never named in full here: stays standalone
            return f"{rng.choice(TITLES)} {ent.last}"
        if not seen:
            forms = [ent.name, f"{rng.choice(TITLES)} {ent.name}"] + list(ent.variants)
            return rng.choice(forms)
        forms = [ent.name]
        if not _ambiguous(ent, "last", state):
            forms += [ent.last, f"{rng.choice(TITLES)} {ent.last}"]
            forms += [f"{ent.first[0]}. {ent.last}"]
        if not _ambiguous(ent, "first", state):
            forms.append(ent.first)
        return rng.choice(forms)
    if ent.type == "organisation":
        if not seen:
            if state["standalone"] and rng.random() < 0.3:
                state["seen"].discard(ent.gold_id)
                return ent.acronym
            return rng.choice([ent.name, ent.name] + list(ent.variants))
        return rng.choice([ent.name, ent.acronym, ent.acronym, ent.variants[1]])
    return rng.choice([ent.name, ent.name] + list(ent.variants))


def gold_tables(docs: list[dict]) -> tuple[pa.Table, pa.Table]:
    """MENTIONS and RELATIONS as a perfect extractor would give them (one chunk per document)."""
    mentions = [
        {
            "doc_id": d["id"],
            "chunk_id": f"{d['id']}#0",
            "start": m["start"],
            "end": m["end"],
            "text": m["text"],
            "type": m["type"],
            "name": m["text"],
        }
        for d in docs
        for m in d["mentions"]
    ]
    relations = []
    for d in docs:
        for f in d["facts"]:
            relations.append(
                {
                    "doc_id": d["id"],
                    "chunk_id": f"{d['id']}#0",
                    "head": f["head_text"],
                    "head_type": f["head"].split(":")[0],
                    "tail": f["tail_text"],
                    "tail_type": f["tail"].split(":")[0],
                    "type": f["type"],
                    "start": f["start"],
                    "end": f["end"],
                }
            )
    return from_rows(mentions, MENTIONS), from_rows(relations, RELATIONS)


def gold_facts(docs: list[dict]) -> set[tuple[str, str, str]]:
    return {(f["head"], f["type"], f["tail"]) for d in docs for f in d["facts"]}


def gold_ids(docs: list[dict]) -> dict[tuple[str, int, int], str]:
    """(doc id, start, end) -> gold entity id, for every gold mention."""
    return {(d["id"], m["start"], m["end"]): m["gold_id"] for d in docs for m in d["mentions"]}


if __name__ == "__main__":  # a look: python -m t2g.kg.identities
    for e in cast():
        print(e)
    for d in documents(3):
        print(d["text"])
