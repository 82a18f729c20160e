"""Why each fact of a toy-world document is in its graph, said in plain language.

The stand-in for an R1 reasoner's chain of thought, as the toy world's gold graphs stand
in for a teacher's labels: the toy world knows which template wrote each sentence, so it
knows which phrase names each entity and marks its type, which phrase states each
relation, and which requested types the text lacks. `rationale` writes that down for a
document, a request and the graph that answers it; the tiny reasoner is trained on these.

A rationale never contains the answer's JSON (no braces, quotes or brackets: only names,
type names and the text's own phrases), is deterministic for a seed and varies its
wording between documents. It is short, because the tiny student must fit the thinking
and the JSON in a few hundred tokens.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from random import Random

from t2g.graph import Graph
from t2g.toyworld import DISTRACTORS, FACTS, SLOT_TYPE, Template

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_FORBIDDEN = re.compile(r'[{}\[\]"]')
# What a toy-world name looks like (t2g.toyworld.cast): one capitalised word, or a month
# and a year; so "Norvlab was founded by Lilia" cannot read as "{p} founded {o}".
_NAME = {t: r"[A-Z][a-z]+" for t in SLOT_TYPE.values()} | {"date": r"[A-Z][a-z]+ \d{4}"}


class NotToyWorld(ValueError):
    """The text holds no sentence the toy world's templates wrote."""


@dataclass(frozen=True)
class Reading:
    """One sentence as its template wrote it: the slot fillers and the stated relations."""

    sentence: str
    template: Template
    names: dict[str, str]  # slot -> name
    cues: dict[tuple[str, str, str], str]  # (head, tail, type) -> the phrase that states it

    @property
    def relations(self) -> list[tuple[str, str, str]]:
        return list(self.cues)


@cache
def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)
    out = []
    for i, part in enumerate(parts):
        out.append(f"(?P<{part}>{_NAME[SLOT_TYPE[part[0]]]})" if i % 2 else re.escape(part))
    return re.compile("".join(out))


def _cue(template: Template, head: str, tail: str) -> str:
    """The template's words between (or around) the two slots: what states the relation."""
    text = template.text
    a, b = text.index("{" + head + "}"), text.index("{" + tail + "}")
    lo, hi = sorted((a, b))
    between = re.sub(r"\{\w+\}", "", text[text.index("}", lo) + 1 : hi]).strip(" ,.")
    if between and between not in {"and", ","}:
        return between
    # The phrase sits outside the two names ("Born in {l}, {p} ..."): take the words around.
    return re.sub(r"\s+", " ", re.sub(r"\{\w+\}", "", text)).strip(" ,.")


def read(text: str) -> list[Reading | str]:
    """Each sentence of `text`: a Reading when a fact template wrote it, the sentence when
    it is a distractor; raises NotToyWorld for a sentence the toy world did not write."""
    out: list[Reading | str] = []
    for sentence in _SENTENCE.split(text.strip()):
        for template in FACTS:
            m = _pattern(template.text).fullmatch(sentence)
            if m:
                names = m.groupdict()
                cues = {(names[h], names[t], r): _cue(template, h, t) for h, t, r in template.relations}
                out.append(Reading(sentence, template, names, cues))
                break
        else:
            if sentence not in DISTRACTORS:
                raise NotToyWorld(f"no toy-world template wrote {sentence!r}")
            out.append(sentence)
    return out


# Varied wording, chosen per document from the seed: the reasoner must learn the content,
# not one sentence shape.
_IS = ("{n} is {a} {t}", "{n} names {a} {t}", "{n}: {a} {t}")
_LINK = ("'{c}' links {h} to {t}: {r}.", "'{c}' says {h} {r} {t}.", "{h} and {t}, '{c}': {r}.")
_SKIP_TYPE = ("{n} is {a} {t}, not asked.", "{n} is {a} {t}, which is not wanted.")
_NO_FACT = ("One sentence names nothing.", "A sentence with no names.")
_NONE_E = ("No {t} in the text.", "The text has no {t}.")
_NONE_R = ("Nothing is {r}.", "No {r} is stated.")
_NOTHING = ("Nothing in the text is asked for.", "The text names nothing of the requested types.")


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def rationale(
    text: str, entity_types: Sequence[str], relation_types: Sequence[str], graph: Graph | str, seed: int = 0
) -> str:
    """The reasoning from `text` to `graph` (the answer to the request), for the toy world.

    Raises NotToyWorld when a sentence of the text is not the toy world's."""
    if isinstance(graph, str):
        graph = Graph.model_validate_json(graph)
    readings = read(text)
    rng = Random(f"rationale/{seed}/{text}/{','.join(entity_types)}/{','.join(relation_types)}")
    etypes = set(entity_types)
    typed = {e.text: e.type for e in graph.entities}
    answer = {(r.head, r.tail, r.type) for r in graph.relations}

    lines: list[str] = []
    seen: set[str] = set()
    for reading in readings:
        if isinstance(reading, str):
            if rng.random() < 0.5:  # distractors need no comment; say so now and then
                lines.append(rng.choice(_NO_FACT))
            continue
        said: list[str] = []
        for slot, name in reading.names.items():
            if name in seen:
                continue
            seen.add(name)
            etype = typed.get(name, SLOT_TYPE[slot[0]])
            if etype in etypes:
                said.append(rng.choice(_IS).format(n=name, t=etype, a=_article(etype)))
            else:
                lines.append(rng.choice(_SKIP_TYPE).format(n=name, t=etype, a=_article(etype)))
        if said:
            lines.append("; ".join(said) + ".")
        for (head, tail, rtype), cue in reading.cues.items():
            if (head, tail, rtype) in answer:
                lines.append(rng.choice(_LINK).format(c=cue, h=head, t=tail, r=rtype))
    present_e = {e.type for e in graph.entities}
    lines += [rng.choice(_NONE_E).format(t=t) for t in entity_types if t not in present_e]
    present_r = {r.type for r in graph.relations}
    missing_r = [r for r in relation_types if r not in present_r]
    if missing_r:
        lines.append(rng.choice(_NONE_R).format(r=" or ".join(missing_r)))
    if not lines:  # a distractor alone and an empty request: the thinking is never empty
        lines.append(rng.choice(_NOTHING))
    out = " ".join(lines)
    # Template phrases and names never hold these; a rationale that did could quote JSON.
    return _FORBIDDEN.sub("", out)
