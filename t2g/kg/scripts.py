"""Scripts whose words are not separated by spaces (Chinese, Japanese, Thai, Lao, Khmer,
Myanmar, Tibetan) and Korean, whose particles attach to the noun ("서울에서": "in Seoul").

In these, a word boundary (`\\b`, `(?<!\\w)`) is not a word boundary and a whitespace split is
not a word count: grounding matches names inside runs of them, and chunking counts each of
their characters as a token (about what a subword tokenizer spends on a Han character).
"""

from __future__ import annotations

import re

UNSPACED_CLASS = (
    "\u0e00-\u0eff"  # Thai, Lao
    "\u0f00-\u0fff"  # Tibetan
    "\u1000-\u109f"  # Myanmar
    "\u1100-\u11ff"  # Hangul Jamo
    "\u1780-\u17ff"  # Khmer
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u3130-\u318f"  # Hangul compatibility Jamo
    "\u31f0-\u31ff"  # Katakana phonetic extensions
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uac00-\ud7af"  # Hangul syllables
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\uff66-\uff9f"  # half-width Katakana
    "\U00020000-\U0003134f"  # CJK extensions B-G
)
_UNSPACED = re.compile(f"[{UNSPACED_CLASS}]")


def unspaced(char: str) -> bool:
    """Whether `char` belongs to a script written without spaces between words."""
    return bool(_UNSPACED.match(char))
