"""Name normalisation and the alias forms entity resolution matches on.

- `norm`: case-folded, diacritics removed (unicodedata NFKD), dots and apostrophes dropped
  ("I.B.M." -> "ibm", "O'Neil" -> "oneil"), other punctuation as spaces, whitespace collapsed.
- `core`: `norm` without leading honorifics and titles (HONORIFICS: "Dr", "President",
  "Chancellor", "CEO", ...) and, for people, without a role before a title ("U.S. Sen. Robert
  Kennedy", "Ohio Gov. Richard Celeste": ROLE_TITLES within the first four words) and degrees
  ("PhD"), dotted initials apart ("J.D. Tippit" -> "j d tippit"); a generational suffix stays,
  as "jr", "sr", "ii", "iii" or "iv" ("Martin Luther King III" is not his father). For
  organisations, without legal suffixes (LEGAL_SUFFIXES: "Inc", "Ltd", "GmbH", ...), a web
  suffix glued to the name ("Amazon.com", "Booking.com": ".com", ".net", ".org", ...) and a
  leading "the". If stripping would leave nothing, the name is kept as it was ("President"
  alone). A possessive ending is no part of a name ("Reagan's", "Jones'").
- `person_parts`: a person's key as (first, middle names, last, generation), for the middle
  name and suffix variants resolution joins ("John F. Kennedy" = "John Kennedy").
- Short forms, which are matched against full names rather than with each other:
  a person's single token (a surname or first name: "Merkel", "Angela"), a person's initials
  with a surname ("J. Smith" -> "j smith"), and for other types an acronym ("IBM" for
  "International Business Machines"; initials of every word, and of the words that are not
  "of/and/the/for/&"; an abbreviated legal suffix gives no letter: "ABC" is not "Avis Bourg
  Co.", "Company" written out does).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

HONORIFICS = frozenset(
    "mr mrs ms miss mx dr doctor prof professor sir dame lord lady madam president vice chancellor "
    "ceo cfo cto chairman chairwoman chair chief executive minister prime senator sen governor gov mayor "
    "judge justice general gen colonel col captain capt lieutenant sergeant admiral king queen prince "
    "princess emperor pope rev reverend father sister brother rabbi imam sheikh representative rep "
    "secretary ambassador commissioner director officer inspector detective agent coach st saint".split()
)
# Titles of an office or role, which a news text puts after where the role is held ("U.S.
# Sen.", "New York Gov."): not "king", "saint", "lord", "prince", ..., which end or sit inside
# real names ("Martin Luther King", "Yves Saint Laurent").
ROLE_TITLES = frozenset(
    "mr mrs ms dr prof president vice chancellor ceo cfo cto chairman chairwoman minister senator sen "
    "governor gov mayor judge justice general gen colonel col captain capt lieutenant lt sergeant sgt "
    "admiral rep representative secretary ambassador commissioner director officer inspector detective "
    "agent coach spokesman spokeswoman".split()
)
GENERATIONAL = {"jr": "jr", "junior": "jr", "sr": "sr", "senior": "sr", "ii": "ii", "iii": "iii", "iv": "iv"}
DEGREES = frozenset("phd md esq".split())
LEGAL_SUFFIXES = frozenset(
    "inc incorporated ltd limited llc llp plc corp corporation co company gmbh ag sa sas srl bv nv "
    "oy ab asa spa kk pty group holdings".split()
)
# Legal suffixes as abbreviations: no letter of an acronym ("ABC" is not "Avis Bourg Co.").
ABBREVIATED_SUFFIXES = frozenset("inc ltd llc llp plc corp co gmbh ag sa sas srl bv nv oy ab asa spa kk pty".split())
# Words a name may end with, full stop included ("Corp.", "Jr.", "Prof."), not a sentence's end.
ABBREVIATIONS = (
    HONORIFICS | LEGAL_SUFFIXES | DEGREES | frozenset(GENERATIONAL) | frozenset("bros dept univ assn".split())
)
STOPWORDS = frozenset("of and the for & de der du la le von van".split())
_DROP = re.compile(r"[.'’`´]")
_NONWORD = re.compile(r"[^\w]+")


@lru_cache(maxsize=1 << 16)  # a corpus repeats its names: pay once per distinct name
def norm(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(_NONWORD.sub(" ", _DROP.sub("", plain.casefold())).replace("_", " ").split())


_WEB_SUFFIX = re.compile(r"(?<=\w)\.(?:com|net|org|io|co\.uk|de|fr)\b", re.IGNORECASE)
_POSSESSIVE = re.compile(r"(?<=\w)['’]s?$")  # "Reagan's", "Jones'"
_DOTTED_INITIAL = re.compile(r"\b([^\W\d_])\.(?=[^\W\d_]\.)")  # "J.D." -> "J. D."


@lru_cache(maxsize=1 << 16)
def core(text: str, etype: str) -> str:
    if etype != "date":
        text = _POSSESSIVE.sub("", text.strip())  # "Reagan's" is Reagan; norm would make it "reagans"
    if etype not in ("person", "date"):
        text = _WEB_SUFFIX.sub("", text)  # "Amazon.com Inc." is Amazon; norm would make it "amazoncom"
    if etype == "person":
        return _person_core(norm(_DOTTED_INITIAL.sub(r"\1. ", text)).split())
    tokens = norm(text).split()
    kept = list(tokens)
    if etype != "date":
        if len(kept) > 1 and kept[0] == "the":
            kept.pop(0)
        while len(kept) > 1 and kept[-1] in LEGAL_SUFFIXES:
            kept.pop()
    return " ".join(kept)


def _person_core(tokens: list[str]) -> str:
    kept = list(tokens)
    while len(kept) > 1 and kept[-1] in DEGREES:
        kept.pop()
    generation = GENERATIONAL.get(kept[-1]) if len(kept) > 1 else None
    if generation:
        kept.pop()
    while len(kept) > 1 and kept[0] in HONORIFICS:
        kept.pop(0)
    # A role before its title: "us sen robert kennedy" -> "robert kennedy".
    role = max((i for i, t in enumerate(kept[:4]) if t in ROLE_TITLES and i < len(kept) - 1), default=None)
    if role is not None:
        kept = kept[role + 1 :]
    if len(kept) == 1 and kept[0] in HONORIFICS:
        return " ".join(tokens)
    return " ".join(kept + ([generation] if generation else []))


@lru_cache(maxsize=1 << 16)
def has_title(text: str) -> bool:
    """Whether a person's name starts with a title or role that `core` drops ("Dr. Anthony
    Fauci", "Dallas Police Officer J.D. Tippit")."""
    tokens = norm(_DOTTED_INITIAL.sub(r"\1. ", text)).split()
    key = core(text, "person").split()
    return len(tokens) > len(key) and bool(tokens) and tokens[0] != key[0]


_WORD_START = re.compile(r"(?<!\S)\S")


def untitled(text: str) -> str:
    """A person's name as written, from where its title or role ends ("German Chancellor
    Angela Merkel" -> "Angela Merkel"); unchanged when it has none, or when only one word
    would be left ("Mr. Clinton" says more than "Clinton")."""
    key = core(text, "person")
    if len(key.split()) < 2 or not has_title(text):
        return text
    for word in _WORD_START.finditer(text):
        rest = text[word.start() :]
        if core(rest, "person") == key and not has_title(rest):
            return rest.strip()
    return text


def person_parts(key: str) -> tuple[str, tuple[str, ...], str, str] | None:
    """A person's core key as (first, middle names, last, generation); None for one word."""
    t = _name(key)
    if len(t) < 2:
        return None
    return t[0], tuple(t[1:-1]), t[-1], key.split()[-1] if len(t) < len(key.split()) else ""


def _name(key: str) -> list[str]:
    t = key.split()
    return t[:-1] if len(t) > 1 and t[-1] in GENERATIONAL else t


def without_generation(key: str) -> str:
    """A person's key without its generation ("king jr" -> "king"): what its short forms
    are looked up by."""
    return " ".join(_name(key))


@lru_cache(maxsize=1 << 16)
def rule_between(a: str, b: str) -> str:
    """Which normalisation made two surface forms one key (for MERGES)."""
    return "exact" if a == b else ("normalised" if norm(a) == norm(b) else "alias: title or suffix")


def is_initials(key: str) -> bool:
    """'j smith', 'j r smith': single letters then one surname."""
    t = _name(key)
    return len(t) >= 2 and all(len(x) == 1 for x in t[:-1]) and len(t[-1]) > 1


def short_keys(key: str, etype: str) -> list[tuple[str, str]]:
    """The short forms a FULL name answers to: [(kind, short key)]. Empty for single tokens."""
    t = _name(key) if etype == "person" else key.split()
    if len(t) < 2:
        return []
    if etype == "person":
        out = [("surname", t[-1]), ("first name", t[0])]
        out.append(("initials", " ".join(x[0] for x in t[:-1]) + " " + t[-1]))
        out.append(("initials", t[0][0] + " " + t[-1]))
        return list(dict.fromkeys(out))
    letters = "".join(x[0] for x in t)
    content = "".join(x[0] for x in t if x not in STOPWORDS)
    return list(dict.fromkeys([("acronym", letters), ("acronym", content)]))


def acronym_source(whole: str) -> str:
    """A normalised organisation name without trailing abbreviated legal suffixes: the words
    whose initials an acronym of the whole name is made of."""
    t = whole.split()
    while len(t) > 1 and t[-1] in ABBREVIATED_SUFFIXES:
        t.pop()
    return " ".join(t)


def short_kind(key: str, etype: str, surface: str) -> str | None:
    """The kind of short form a mention key could be (None: it is a full name)."""
    t = _name(key) if etype == "person" else key.split()
    if etype == "person":
        if len(t) == 1:
            return "single name"
        return "initials" if is_initials(key) else None
    # An acronym is written as one upper-case token ("IBM", "I.B.M."), 2 to 8 letters.
    letters = _DROP.sub("", _POSSESSIVE.sub("", surface.strip()))  # "IBM's" is the acronym too
    if len(t) == 1 and 2 <= len(letters) <= 8 and letters.isupper() and letters.isalpha():
        return "acronym"
    return None
