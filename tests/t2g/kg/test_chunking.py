"""Chunking: exact offsets, full coverage, every window in budget, overlap bounded (properties)."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from t2g.kg.chunking import chunk_document, chunk_table, words
from t2g.kg.sentences import regex_sentences
from t2g.kg.tables import CHUNKS


def chars4(text: str) -> int:
    """A tokenizer-like counter: ~4 characters a token, so long words must be cut."""
    return (len(text) + 3) // 4


_word = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHÉé0123456789", min_size=1, max_size=30)
_sentence = st.lists(_word, min_size=1, max_size=25).map(lambda ws: " ".join(ws).capitalize() + ".")
_docs = st.lists(_sentence, min_size=0, max_size=12).flatmap(
    lambda ss: st.lists(st.sampled_from([" ", "  ", "\n", " \n\n"]), min_size=len(ss), max_size=len(ss)).map(
        lambda seps: "".join(s + sep for s, sep in zip(ss, seps))
    )
)


def check(text: str, chunks: list[dict], max_tokens: int, overlap: int, count) -> None:
    if not text:
        assert chunks == []
        return
    assert chunks[0]["start"] == 0 and chunks[-1]["end"] == len(text)
    for i, c in enumerate(chunks):
        assert c["text"] == text[c["start"] : c["end"]]
        assert c["chunk_index"] == i and c["chunk_id"] == f"d#{i}"
        assert count(c["text"]) <= max_tokens
        assert c["end"] > c["start"]
    for a, b in zip(chunks, chunks[1:]):
        assert a["start"] < b["start"] <= a["end"] < b["end"]  # progress, no gap
        assert count(text[b["start"] : a["end"]]) <= overlap


@settings(max_examples=60, deadline=None)
@given(_docs, st.integers(1, 60), st.data())
def test_chunks_exact_cover_budget_overlap_words(text, max_tokens, data):
    overlap = data.draw(st.integers(0, max_tokens - 1))
    check(text, chunk_document("d", text, max_tokens, overlap, words), max_tokens, overlap, words)


@settings(max_examples=60, deadline=None)
@given(_docs, st.integers(1, 40), st.data())
def test_chunks_exact_cover_budget_overlap_chars(text, max_tokens, data):
    overlap = data.draw(st.integers(0, max_tokens - 1))
    check(text, chunk_document("d", text, max_tokens, overlap, chars4), max_tokens, overlap, chars4)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300), st.integers(1, 20))
def test_any_text_is_covered(text, max_tokens):
    check(text, chunk_document("d", text, max_tokens, max_tokens // 2, chars4), max_tokens, max_tokens // 2, chars4)


def test_windows_cut_at_sentences_and_overlap_by_whole_sentences():
    sents = [f"Sentence number {i} has five words." for i in range(10)]  # 6 words each
    text = " ".join(sents)
    chunks = chunk_document("d", text, 20, 7, words)
    starts = {s for s, _ in regex_sentences(text)}
    assert len(chunks) > 2
    for c in chunks:
        assert c["start"] in starts  # every window opens on a sentence
        assert c["text"].rstrip().endswith(".")  # and closes on one
    for a, b in zip(chunks, chunks[1:]):
        assert b["start"] < a["end"]  # one whole sentence (6 words <= 7) is shared


def test_a_sentence_longer_than_the_window_is_cut_at_words():
    text = " ".join(["word"] * 50) + "."
    chunks = chunk_document("d", text, 8, 2, words)
    assert all(words(c["text"]) <= 8 for c in chunks)
    assert all(c["start"] == 0 or text[c["start"] - 1] == " " for c in chunks)


def test_sentence_splitter_keeps_names_and_abbreviations_whole():
    text = "Dr. J. Smith met Mr. Jones at Acme Inc. in Paris. Then he left! Did he? Yes."
    got = [text[s:e].strip() for s, e in regex_sentences(text)]
    assert got == ["Dr. J. Smith met Mr. Jones at Acme Inc. in Paris.", "Then he left!", "Did he?", "Yes."]


def test_sentences_of_other_scripts_end_where_their_capitals_and_full_stops_say():
    ru = "Путин прибыл в Москву. Он сказал «да». ещё не конец."
    assert [ru[s:e] for s, e in regex_sentences(ru)] == ["Путин прибыл в Москву. ", "Он сказал «да». ещё не конец."]
    ja = "習近平が東京を訪問した。首相と会談した！「はい」と言った。"
    assert [ja[s:e] for s, e in regex_sentences(ja)] == [
        "習近平が東京を訪問した。",
        "首相と会談した！",
        "「はい」と言った。",
    ]


def test_a_text_without_spaces_is_counted_and_cut_by_its_characters():
    text = "習近平が東京を訪問した" * 30  # one "word" to a whitespace split
    assert words(text) == len(text) and words("Hello wörld 東京") == 4 and words("a b") == 2
    chunks = chunk_document("d", text, 50, 10, words)
    check(text, chunks, 50, 10, words)
    assert len(chunks) >= len(text) // 50


def test_chunk_table_and_bad_arguments():
    docs = pa.table({"id": ["a", "b"], "text": ["One. Two.", ""]})
    table = chunk_table(docs, 5, 1)
    assert table.schema == CHUNKS and table.column("doc_id").to_pylist() == ["a"]
    with pytest.raises(ValueError, match="missing \\['text'\\]"):
        chunk_table(pa.table({"id": ["a"]}), 5, 1)
    with pytest.raises(ValueError, match="overlap_tokens"):
        chunk_document("d", "x", 5, 5)
    with pytest.raises(ValueError, match="too small"):
        chunk_document("d", "abc", 1, 0, lambda t: len(t) + 1)


@pytest.mark.parametrize("text", ["中" * 60_000, "x" * 60_000])
def test_a_long_word_is_cut_in_time_linear_in_its_length(text):
    # A word over the budget is cut into the longest pieces that fit. The search for each
    # piece counted prefixes up to the rest of the word: quadratic, a 5 MB text with no space
    # and no full stop (or a base64 blob under a tokenizer) took hours. Counted characters
    # stay within a constant times the text now.
    counted = 0

    def counting(t: str) -> int:
        nonlocal counted
        counted += len(t)
        return chars4(t) if t.isascii() else words(t)

    chunks = chunk_document("d", text, 64, 8, counting)
    check(text, chunks, 64, 8, counting)
    assert counted < 40 * len(text), counted / len(text)
