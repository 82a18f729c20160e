"""A synthetic news world with exact gold graphs, small enough for a tiny model to learn.

Short news-like texts about made-up people, organisations, places, products and dates,
each with the complete graph of what it states, written in the interchange format:

    {"id", "text", "entities": [{"text", "type"}], "relations": [{"head", "tail", "type"}],
     "entity_types": [...], "relation_types": [...]}

Design choices:
- Names are built from syllables (no real data) and come from the *world* seed, so train
  and test files (different document seeds) share one cast of names but not documents.
- The inventory is small by default: a ~1M-parameter model must learn to copy names, and
  copying is learnable only when each name is frequent (and one BPE token).
- Every document has its own `random.Random`, seeded from (world, split, seed, index), so a
  stream starts anywhere without replaying the ones before it and memory stays bounded.
- A named split owns a fixed slice of the space of texts (by a hash of the text), so a
  test text can never also be a training text, whatever the seeds.
- The requested types are the present ones plus sampled absent ones; since the gold lists
  every entity and relation of the world's types, it is complete for any request.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from random import Random

from t2g.graph import Graph

ENTITY_TYPES: tuple[str, ...] = ("person", "organisation", "location", "product", "date")
RELATION_TYPES: tuple[str, ...] = (
    "works_for",
    "ceo_of",
    "founded",
    "located_in",
    "born_in",
    "produces",
    "acquired",
    "launched_on",
)

# A template slot is named by its entity type's letter plus an optional digit: {p}, {o2}.
SLOT_TYPE = {"p": "person", "o": "organisation", "l": "location", "x": "product", "d": "date"}
_SLOT = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Template:
    text: str
    relations: tuple[tuple[str, str, str], ...] = ()  # (head slot, tail slot, relation type)


def _t(text: str, *relations: tuple[str, str, str]) -> Template:
    return Template(text, tuple(relations))


# Several phrasings per relation, in both directions where natural, so the type must be
# read from the wording, not from the order of the names.
FACTS: tuple[Template, ...] = (
    _t("{p} works for {o}.", ("p", "o", "works_for")),
    _t("{p}, an engineer at {o}, spoke to reporters.", ("p", "o", "works_for")),
    _t("{o} hired {p} as a senior analyst.", ("p", "o", "works_for")),
    _t("{p} joined {o} last year.", ("p", "o", "works_for")),
    _t("{p} is the chief executive of {o}.", ("p", "o", "ceo_of")),
    _t("{o} chief executive {p} announced new plans.", ("p", "o", "ceo_of")),
    _t("{p} was named head of {o}.", ("p", "o", "ceo_of")),
    _t("{p} founded {o}.", ("p", "o", "founded")),
    _t("{o} was founded by {p}.", ("p", "o", "founded")),
    _t("{p} started {o} with a small team.", ("p", "o", "founded")),
    _t("{o} is based in {l}.", ("o", "l", "located_in")),
    _t("{o}, headquartered in {l}, reported strong results.", ("o", "l", "located_in")),
    _t("{o} has its main office in {l}.", ("o", "l", "located_in")),
    _t("{p} was born in {l}.", ("p", "l", "born_in")),
    _t("Born in {l}, {p} studied engineering.", ("p", "l", "born_in")),
    _t("{p}, a native of {l}, gave a speech.", ("p", "l", "born_in")),
    _t("{o} makes the {x}.", ("o", "x", "produces")),
    _t("The {x} is produced by {o}.", ("o", "x", "produces")),
    _t("{o} builds the popular {x}.", ("o", "x", "produces")),
    _t("{o} acquired {o2}.", ("o", "o2", "acquired")),
    _t("{o2} was bought by {o}.", ("o", "o2", "acquired")),
    _t("{o} completed its takeover of {o2}.", ("o", "o2", "acquired")),
    _t("The {x} was launched in {d}.", ("x", "d", "launched_on")),
    _t("The {x} went on sale in {d}.", ("x", "d", "launched_on")),
    _t("In {d}, the {x} reached stores.", ("x", "d", "launched_on")),
    # Two facts in one sentence.
    _t("{o} released the {x} in {d}.", ("o", "x", "produces"), ("x", "d", "launched_on")),
    _t("{p}, who founded {o}, was born in {l}.", ("p", "o", "founded"), ("p", "l", "born_in")),
    _t("{o}, based in {l}, acquired {o2}.", ("o", "l", "located_in"), ("o", "o2", "acquired")),
    # Entities that stand in none of the relations: not every pair of names is related.
    _t("{p} visited {l} last week."),
    _t("{p} met {p2} in {l}."),
    _t("{p} praised the {x}."),
    _t("{o} and {o2} signed a supply deal."),
    _t("Sales of the {x} rose in {d}."),
)

# No names, no dates: nothing of any type in the world, so they never break completeness.
DISTRACTORS: tuple[str, ...] = (
    "Analysts expected little change in the coming months.",
    "Shares closed slightly higher after the news was announced.",
    "The statement gave no further details about the plans.",
    "More updates are expected later this week.",
    "Officials declined to comment on the matter.",
    "The weather was mild for the season.",
    "Several questions about the deal remain open.",
    "Critics said the move came too late.",
)

# A relation that admits one tail per head (or one head per tail): a second one in the
# same document would contradict the first.
_ONE_TAIL = {"ceo_of", "located_in", "born_in", "launched_on"}
_ONE_HEAD = {"ceo_of", "produces", "acquired"}

_MONTHS = ("January", "February", "March", "April", "May", "June", "July",
           "August", "September", "October", "November", "December")  # fmt: skip

# Per-type syllables: a name's shape hints at its type, which a tiny model can use.
SYLLABLES = {
    "person": (("Ma", "Ta", "Li", "Ro", "Ke", "Su", "Da", "Ni", "Jo", "Fe", "Ve", "Lo"),
               ("rin", "vel", "sa", "nor", "lia", "ten", "mo", "rek", "dan", "lie", "vin", "ra")),
    "organisation": (("Zen", "Kor", "Vex", "Tral", "Quor", "Brex", "Dyn", "Plex", "Oxo", "Norv"),
                     ("tek", "corp", "tron", "dyne", "gen", "lab", "sys", "ware")),
    "location": (("Bel", "Mor", "Gal", "Sarn", "Eld", "Har", "Tor", "Wen", "Ost", "Lun"),
                 ("dia", "mere", "holm", "vale", "burg", "stad", "ford", "port")),
    "product": (("Xi", "Zo", "Qua", "Vo", "Pyx", "Ny", "Ky", "Ju", "Ixo", "Ely"),
                ("phone", "pad", "vox", "lux", "beam", "max", "pod", "cam")),
}  # fmt: skip


@dataclass(frozen=True)
class World:
    """The cast and the shape of documents. `seed` picks the names; document seeds don't."""

    seed: int = 0
    people: int = 12
    organisations: int = 8
    locations: int = 6
    products: int = 6
    dates: int = 6
    max_facts: int = 2  # fact sentences per document (at least one, unless empty)
    distractor_rate: float = 0.5  # chance of one distractor sentence
    empty_rate: float = 0.05  # chance of a document with nothing to extract
    reuse_rate: float = 0.5  # chance a later sentence mentions an already named entity

    def __post_init__(self) -> None:
        # Templates name two people ({p} met {p2}) and two organisations ({o} acquired {o2}).
        least = {"people": 2, "organisations": 2, "locations": 1, "products": 1, "dates": 1}
        small = [f"{k} >= {v}" for k, v in least.items() if getattr(self, k) < v]
        if small or self.max_facts < 1:
            raise ValueError(f"World needs {', '.join(small) or 'max_facts >= 1'}")


@dataclass(frozen=True)
class Cast:
    names: dict[str, tuple[str, ...]]  # entity type -> names
    type_of: dict[str, str]  # name -> entity type


def world_types() -> tuple[list[str], list[str]]:
    """Every entity type and relation type a toy-world document can contain or request."""
    return list(ENTITY_TYPES), list(RELATION_TYPES)


@lru_cache(maxsize=16)
def cast(world: World = World()) -> Cast:
    """The world's names: unique under case folding, none inside another name or inside
    a template word (so a name found in a text is always that entity)."""
    rng = Random(f"toyworld-cast/{world.seed}")
    templates = " ".join([t.text for t in FACTS] + list(DISTRACTORS)).casefold()
    wanted = {
        "person": world.people,
        "organisation": world.organisations,
        "location": world.locations,
        "product": world.products,
    }
    taken: list[str] = []
    names: dict[str, tuple[str, ...]] = {}
    for etype, count in wanted.items():
        firsts, lasts = SYLLABLES[etype]
        pool = [a + b for a in firsts for b in lasts]
        rng.shuffle(pool)
        chosen: list[str] = []
        for name in pool:
            if len(chosen) == count:
                break
            low = name.casefold()
            if low in templates or any(low in t or t in low for t in taken):
                continue
            chosen.append(name)
            taken.append(low)
        if len(chosen) < count:
            raise ValueError(f"World asks for {count} {etype} names; at most {len(chosen)} can be built")
        names[etype] = tuple(chosen)
    dates = [f"{m} {y}" for m in _MONTHS for y in range(2015, 2025)]
    if world.dates > len(dates):
        raise ValueError(f"World asks for {world.dates} dates; at most {len(dates)} exist")
    names["date"] = tuple(rng.sample(dates, world.dates))
    type_of = {name: etype for etype, group in names.items() for name in group}
    return Cast(names, type_of)


# Hash slices of the text space owned by each named split (per mille).
SPLITS: dict[str, tuple[int, int]] = {"train": (0, 800), "validation": (800, 900), "test": (900, 1000)}
_MAX_DRAWS = 10_000  # a split keeps 1 text in 10 at worst; far more misses means a bug


def _in_split(text: str, split: str | None) -> bool:
    if split is None:
        return True
    lo, hi = SPLITS[split]
    bucket = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "big") % 1000
    return lo <= bucket < hi


def iter_documents(
    n: int, seed: int = 0, world: World = World(), split: str | None = None, offset: int = 0
) -> Iterator[dict]:
    """Documents offset .. offset+n-1 of the stream named by (world, split, seed), lazily.

    `split` (one of SPLITS, or None for no split) keeps only texts in that split's slice;
    ids are `tw-{seed}-{i}` or `tw-{split}-{seed}-{i}`.
    """
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLITS)} or None")
    names = cast(world)
    prefix = "tw" if split is None else f"tw-{split}"
    for i in range(offset, offset + n):
        rng = Random(f"toyworld/{world.seed}/{split}/{seed}/{i}")
        for _ in range(_MAX_DRAWS):
            doc = _document(rng, world, names)
            if _in_split(doc["text"], split):
                break
        else:
            raise RuntimeError(f"no {split} document in {_MAX_DRAWS} draws: is the world too small?")
        yield {"id": f"{prefix}-{seed}-{i}", **doc}


def generate(n: int, seed: int = 0, world: World = World(), split: str | None = None, offset: int = 0) -> list[dict]:
    """`n` documents as a list; see `iter_documents`."""
    return list(iter_documents(n, seed, world, split, offset))


def write_jsonl(
    path: str | Path, n: int, seed: int = 0, world: World = World(), split: str | None = None, offset: int = 0
) -> int:
    """Stream `n` documents to an interchange JSONL file; returns the number written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for doc in iter_documents(n, seed, world, split, offset):
            f.write(json.dumps(doc, ensure_ascii=False) + "\n")
            written += 1
    return written


def corpus(n: int, seed: int = 0, world: World = World()) -> Iterator[str]:
    """Strings to train a tokenizer on: texts, gold graphs as training targets, and type
    lists, so names and JSON punctuation get tokens of their own."""
    for doc in iter_documents(n, seed, world):
        yield doc["text"]
        yield Graph.model_validate({"entities": doc["entities"], "relations": doc["relations"]}).to_json()
        yield ", ".join(doc["entity_types"]) + "\n" + ", ".join(doc["relation_types"])


def _document(rng: Random, world: World, names: Cast) -> dict:
    sentences: list[str] = []
    mentioned: list[str] = []  # entity texts in order of first mention
    relations: list[tuple[str, str, str]] = []
    if rng.random() >= world.empty_rate:
        for _ in range(rng.randint(1, world.max_facts)):
            sentence = _fact(rng, world, names, mentioned, relations)
            if sentence:
                sentences.append(sentence)
    if not sentences or rng.random() < world.distractor_rate:
        sentences.insert(rng.randint(0, len(sentences)), rng.choice(DISTRACTORS))

    present_e = {names.type_of[m] for m in mentioned}
    present_r = {r for _, _, r in relations}
    return {
        "text": " ".join(sentences),
        "entities": [{"text": m, "type": names.type_of[m]} for m in mentioned],
        "relations": [{"head": h, "tail": t, "type": r} for h, t, r in relations],
        "entity_types": _requested(rng, ENTITY_TYPES, present_e),
        "relation_types": _requested(rng, RELATION_TYPES, present_r),
    }


def _fact(
    rng: Random, world: World, names: Cast, mentioned: list[str], relations: list[tuple[str, str, str]]
) -> str | None:
    """Render one fact sentence consistent with the document so far (no contradicting
    relation, no duplicate); appends to `mentioned` and `relations`. None if none fits."""
    for _ in range(20):
        template = rng.choice(FACTS)
        slots = list(dict.fromkeys(_SLOT.findall(template.text)))
        filled: dict[str, str] = {}
        for slot in slots:
            etype = SLOT_TYPE[slot[0]]
            used = set(filled.values())
            seen = [m for m in mentioned if names.type_of[m] == etype and m not in used]
            if seen and rng.random() < world.reuse_rate:
                filled[slot] = rng.choice(seen)
            else:
                filled[slot] = rng.choice([n for n in names.names[etype] if n not in used])
        new = [(filled[h], filled[t], r) for h, t, r in template.relations]
        if any(_conflicts(rel, relations) for rel in new):
            continue
        text = template.text.format(**filled)
        for name in sorted(filled.values(), key=text.index):
            if name not in mentioned:
                mentioned.append(name)
        relations.extend(new)
        return text
    return None


def _conflicts(rel: tuple[str, str, str], relations: list[tuple[str, str, str]]) -> bool:
    head, tail, rtype = rel
    for h, t, r in relations:
        if r != rtype:
            continue
        if (h, t) == (head, tail) or (h, t) == (tail, head):
            return True
        if rtype in _ONE_TAIL and h == head:
            return True
        if rtype in _ONE_HEAD and t == tail:
            return True
    return False


def _requested(rng: Random, inventory: tuple[str, ...], present: set[str]) -> list[str]:
    """The present types plus 1..3 absent ones, in inventory order."""
    absent = [t for t in inventory if t not in present]
    extra = set(rng.sample(absent, rng.randint(1, min(3, len(absent))))) if absent else set()
    return [t for t in inventory if t in present or t in extra]


if __name__ == "__main__":  # a quick look: python -m t2g.toyworld
    for doc in generate(5):
        print(json.dumps(doc, ensure_ascii=False))
