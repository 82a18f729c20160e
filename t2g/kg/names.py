"""Name normalisation and the alias forms entity resolution matches on.

- `norm`: case-folded, diacritics removed (unicodedata NFKD), dots and apostrophes dropped
  ("I.B.M." -> "ibm", "O'Neil" -> "oneil"), other punctuation as spaces, whitespace collapsed.
- `core`: `norm` without leading honorifics and titles (HONORIFICS: "Dr", "President",
  "Chancellor", "CEO", ...), trailing generational suffixes ("Jr", "III") and, for
  organisations, legal suffixes (LEGAL_SUFFIXES: "Inc", "Ltd", "GmbH", ...), a web suffix
  glued to the name ("Amazon.com", "Booking.com": ".com", ".net", ".org", ...) and a leading
  "the". If stripping would leave nothing, the name is kept as it was ("President" alone).
- Short forms, which are matched against full names rather than with each other:
  a person's single token (a surname or first name: "Merkel", "Angela"), a person's initials
  with a surname ("J. Smith" -> "j smith"), and for other types an acronym ("IBM" for
  "International Business Machines"; initials of every word, and of the words that are not
  "of/and/the/for/&").
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
GENERATIONAL = frozenset("jr sr ii iii iv phd md esq".split())
LEGAL_SUFFIXES = frozenset(
    "inc incorporated ltd limited llc llp plc corp corporation co company gmbh ag sa sas srl bv nv "
    "oy ab asa spa kk pty group holdings".split()
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


@lru_cache(maxsize=1 << 16)
def core(text: str, etype: str) -> str:
    if etype not in ("person", "date"):
        text = _WEB_SUFFIX.sub("", text)  # "Amazon.com Inc." is Amazon; norm would make it "amazoncom"
    tokens = norm(text).split()
    kept = list(tokens)
    if etype == "person":
        while len(kept) > 1 and kept[0] in HONORIFICS:
            kept.pop(0)
        while len(kept) > 1 and kept[-1] in GENERATIONAL:
            kept.pop()
        if len(kept) == 1 and kept[0] in HONORIFICS:
            kept = tokens
    elif etype != "date":
        if len(kept) > 1 and kept[0] == "the":
            kept.pop(0)
        while len(kept) > 1 and kept[-1] in LEGAL_SUFFIXES:
            kept.pop()
    return " ".join(kept)


@lru_cache(maxsize=1 << 16)
def rule_between(a: str, b: str) -> str:
    """Which normalisation made two surface forms one key (for MERGES)."""
    return "exact" if a == b else ("normalised" if norm(a) == norm(b) else "alias: title or suffix")


def is_initials(key: str) -> bool:
    """'j smith', 'j r smith': single letters then one surname."""
    t = key.split()
    return len(t) >= 2 and all(len(x) == 1 for x in t[:-1]) and len(t[-1]) > 1


def short_keys(key: str, etype: str) -> list[tuple[str, str]]:
    """The short forms a FULL name answers to: [(kind, short key)]. Empty for single tokens."""
    t = key.split()
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


def short_kind(key: str, etype: str, surface: str) -> str | None:
    """The kind of short form a mention key could be (None: it is a full name)."""
    t = key.split()
    if etype == "person":
        if len(t) == 1:
            return "single name"
        return "initials" if is_initials(key) else None
    # An acronym is written as one upper-case token ("IBM", "I.B.M."), 2 to 8 letters.
    letters = _DROP.sub("", surface.strip())
    if len(t) == 1 and 2 <= len(letters) <= 8 and letters.isupper() and letters.isalpha():
        return "acronym"
    return None
