"""Sentence spans of a text: a small, documented regex splitter (the default) or pysbd.

A splitter is any `Callable[[str], list[tuple[int, int]]]` returning spans that tile the text
(each sentence keeps its trailing whitespace), so chunk offsets stay exact whatever splits.

The regex rule: a sentence ends after `.`, `!` or `?` (plus closing quotes or brackets) when
whitespace follows and the next character opens a sentence (an upper-case letter of any
script, a digit, or an opening quote before one), and after a full-width `。`, `！` or `？`
whatever follows. It does not end after a common abbreviation (Mr., Dr., Inc., e.g., ...) or a
single capital initial ("J. Smith"), so a person's name is never cut in two. pysbd (PyPI) knows
far more abbreviations and languages; `pysbd_splitter()` uses it when installed. Known limit of
the regex: a sentence ending in an abbreviation ("... of Acme Inc. He said") is not cut there.
"""

from __future__ import annotations

import re
from collections.abc import Callable

Splitter = Callable[[str], list[tuple[int, int]]]

ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st mt no vs etc inc ltd corp co jan feb mar apr jun jul aug sep sept "
    "oct nov dec gen col capt lt sgt rev gov sen rep pres fig al e.g i.e approx dept est".split()
)
# `next`: the character that must open the next sentence (checked in code: any script's
# capitals, which a character class cannot name); `full`: a full-width stop, which ends a
# sentence whatever follows (Chinese and Japanese put no space after it).
_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s+[\"'“‘(\[]?(?P<next>\w))|(?P<full>[。！？]+[」』”’）)]*)")
_WORD_BEFORE = re.compile(r"([\w.]+)$")


def regex_sentences(text: str) -> list[tuple[int, int]]:
    """Spans (start, end) tiling `text`; see the module docstring for the rule."""
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _END.finditer(text):
        if m.group("full") is None:
            opener = m.group("next")
            if not (opener.isupper() or opener.isdigit()):
                continue
            if m.group().startswith(".") and _is_abbreviation(text[start : m.start()]):
                continue
        end = m.end()
        while end < len(text) and text[end].isspace():
            end += 1
        spans.append((start, end))
        start = end
    if start < len(text):
        spans.append((start, len(text)))
    return spans


def _is_abbreviation(before: str) -> bool:
    word = _WORD_BEFORE.search(before)
    if not word:
        return False
    w = word.group(1)
    return w.lower() in ABBREVIATIONS or (len(w) == 1 and w.isupper())


def pysbd_splitter(language: str = "en") -> Splitter:
    """A splitter backed by pysbd (must be installed); spans tile the text like the default."""
    import pysbd  # optional dependency

    seg = pysbd.Segmenter(language=language, clean=False, char_span=True)

    def split(text: str) -> list[tuple[int, int]]:
        spans, start = [], 0
        for s in seg.segment(text):
            if s.end > start:
                spans.append((start, s.end))
                start = s.end
        if start < len(text):
            spans.append((start, len(text)))
        return spans

    return split
