"""Grounding: every mention is its surface text in the source (property), longest names first,
word boundaries, drops counted by reason, evidence sentences, window merging."""

from __future__ import annotations

import unicodedata
from collections import Counter

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from t2g.kg.chunking import chunk_document
from t2g.kg.grounding import ground_chunk, ground_table, merge_windows
from t2g.kg.tables import CHUNKS, MENTIONS

ET, RT = ["person", "organisation", "location"], ["works_for", "born_in"]
NAMES = ["John Smith", "Smith", "Mary Smith", "Acme", "Acme Corp", "Paris", "Jordan", "Art", "Martin", "é"]


def whole(doc_id: str, text: str) -> dict:
    return {"doc_id": doc_id, "chunk_id": f"{doc_id}#0", "chunk_index": 0, "start": 0, "end": len(text), "text": text}


def test_longest_name_first_and_every_occurrence():
    text = "John Smith met Smith. Later John Smith left. Martin saw Art."
    graph = {
        "entities": [
            {"text": "Smith", "type": "person"},
            {"text": "John Smith", "type": "person"},
            {"text": "Art", "type": "person"},
        ]
    }
    mentions, _, dropped = ground_chunk(whole("d", text), graph, ET, RT)
    got = [(m["start"], m["text"], m["name"]) for m in mentions]
    assert got == [
        (0, "John Smith", "John Smith"),
        (15, "Smith", "Smith"),
        (28, "John Smith", "John Smith"),
        (56, "Art", "Art"),
    ]  # no "Art" inside "Martin", no "Smith" inside "John Smith"
    assert not dropped


def test_drops_are_counted_by_reason_and_subsumed_names_fold_into_the_longer_one():
    text = "John Smith works for Acme Corp now. He was born in Paris."
    graph = {
        "entities": [
            {"text": "John Smith", "type": "person"},
            {"text": "Smith", "type": "person"},
            {"text": "Acme Corp", "type": "organisation"},
            {"text": "Jolie", "type": "person"},
            {"text": "Paris", "type": "city"},
            {"text": "Acme", "type": "location"},
        ],
        "relations": [
            {"head": "Smith", "tail": "Acme Corp", "type": "works_for"},
            {"head": "Jolie", "tail": "Acme Corp", "type": "works_for"},
            {"head": "John Smith", "tail": "Paris", "type": "born_in"},
            {"head": "John Smith", "tail": "Acme Corp", "type": "ceo_of"},
        ],
    }
    mentions, relations, dropped = ground_chunk(whole("d", text), graph, ET, RT)
    assert [m["text"] for m in mentions] == ["John Smith", "Acme Corp"]
    assert dropped == Counter(
        {
            "entity: ungrounded": 1,
            "entity: unrequested type": 1,
            "entity: subsumed": 1,
            "relation: dangling": 2,
            "relation: unrequested type": 1,
        }
    )
    # "Smith" occurs only inside "John Smith" (same type): the relation naming it is kept on it.
    assert [(r["head"], r["tail"], text[r["start"] : r["end"]]) for r in relations] == [
        ("John Smith", "Acme Corp", "John Smith works for Acme Corp now.")
    ]


def test_names_in_scripts_without_spaces_are_found_inside_their_runs():
    text = "習近平が東京を訪問した。서울에서 김정은을 만났다."
    graph = {"entities": [{"text": "東京", "type": "location"}, {"text": "서울", "type": "location"},
                          {"text": "習近平", "type": "person"}, {"text": "김정은", "type": "person"}]}  # fmt: skip
    mentions, _, dropped = ground_chunk(whole("d", text), graph, ET, RT)
    assert sorted(m["text"] for m in mentions) == ["東京", "習近平", "김정은", "서울"] and not dropped
    assert all(text[m["start"] : m["end"]] == m["text"] for m in mentions)


def test_case_insensitive_only_as_a_fallback():
    text = "ACME hired Acme's rival."
    mentions, _, _ = ground_chunk(whole("d", text), {"entities": [{"text": "acme", "type": "organisation"}]}, ET, RT)
    assert [m["text"] for m in mentions] == ["ACME", "Acme"]  # no exact occurrence: both surfaces, as written
    mentions, _, _ = ground_chunk(whole("d", text), {"entities": [{"text": "Acme", "type": "organisation"}]}, ET, RT)
    assert [m["text"] for m in mentions] == ["Acme"]


def test_evidence_is_the_sentence_holding_both_else_the_shortest_run():
    text = "Mary Smith was born in Paris. The weather was mild. Acme hired her. John Smith works for Acme."
    graph = {
        "entities": [
            {"text": n, "type": t}
            for n, t in [
                ("Mary Smith", "person"),
                ("Paris", "location"),
                ("Acme", "organisation"),
                ("John Smith", "person"),
            ]
        ],
        "relations": [
            {"head": "John Smith", "tail": "Acme", "type": "works_for"},
            {"head": "Mary Smith", "tail": "Acme", "type": "works_for"},
            {"head": "Mary Smith", "tail": "Paris", "type": "born_in"},
        ],
    }
    _, relations, _ = ground_chunk(whole("d", text), graph, ET, RT)
    ev = [text[r["start"] : r["end"]] for r in relations]
    assert ev == [
        "John Smith works for Acme.",
        "Mary Smith was born in Paris. The weather was mild. Acme hired her.",
        "Mary Smith was born in Paris.",
    ]


def test_overlapping_windows_merge():
    text = "John Smith met Mary Smith. " * 6
    chunks = chunk_document("d", text, 12, 6)
    assert len(chunks) > 2
    answer = {"entities": [{"text": "John Smith", "type": "person"}, {"text": "Mary Smith", "type": "person"}]}
    mentions, _, _ = ground_table(pa.Table.from_pylist(chunks, schema=CHUNKS), [answer] * len(chunks), ET, RT)
    assert mentions.num_rows == 12  # each occurrence once, however many windows saw it
    # a window that began mid-name saw "Smith" alone: it folds into the full span
    extra = {
        "doc_id": "d",
        "chunk_id": "d#1",
        "start": 5,
        "end": 10,
        "text": "Smith",
        "type": "person",
        "name": "Smith",
    }
    merged, _ = merge_windows(
        pa.concat_tables([mentions, pa.Table.from_pylist([extra], schema=MENTIONS)]), _empty_relations()
    )
    assert merged.num_rows == 12


def _empty_relations():
    from t2g.kg.tables import RELATIONS

    return RELATIONS.empty_table()


_filler = st.sampled_from(["met", "and", "in", "the", "x", "Smithy", "Parisian", "ohn", ".", ",", "(", ")"])
_token = st.one_of(st.sampled_from(NAMES), st.sampled_from(NAMES).map(str.lower), _filler)


@settings(max_examples=120, deadline=None)
@given(
    st.lists(_token, max_size=40), st.sets(st.sampled_from(NAMES + ["Nowhere"])), st.integers(4, 30), st.integers(0, 3)
)
def test_every_mention_is_its_surface_text_in_the_source(tokens, names, max_tokens, overlap):
    """The acceptance property: 100% of mentions have doc[start:end] == text, inside their chunk."""
    text = " ".join(tokens)
    chunks = chunk_document("doc", text, max_tokens, min(overlap, max_tokens - 1))
    answer = {"entities": [{"text": n, "type": "person" if i % 2 else "location"} for i, n in enumerate(sorted(names))]}
    rows = []
    for c in chunks:
        mentions, _, _ = ground_chunk(c, answer, ET, RT)
        for m in mentions:
            assert text[m["start"] : m["end"]] == m["text"]
            assert c["start"] <= m["start"] < m["end"] <= c["end"]
            assert m["text"].casefold() == m["name"].casefold()
        rows += mentions
    merged, _ = merge_windows(pa.Table.from_pylist(rows, schema=MENTIONS), _empty_relations())
    for m in merged.to_pylist():
        assert text[m["start"] : m["end"]] == m["text"]
    spans = sorted({(m["start"], m["end"]) for m in merged.to_pylist()})
    for (s1, e1), (s2, e2) in zip(spans, spans[1:]):
        assert not (s1 <= s2 and e2 <= e1)  # no kept mention nested in another


def test_a_name_never_cuts_a_letter_from_its_combining_marks():
    # In decomposed text (NFD: PDF extractions, macOS files) "Zoë" is "Zoe" + U+0308 and "école"
    # is "e" + U+0301 + "cole". A combining mark is no word character to `\b`, so "Zoe" and
    # "cole" were grounded there: mentions whose text is half a letter, of names the text does not hold.
    text = "Zoe\u0308 met Zoe. The e\u0301cole and the cole."
    graph = {"entities": [{"text": "Zoe", "type": "person"}, {"text": "cole", "type": "location"}]}
    mentions, _, dropped = ground_chunk(whole("d", text), graph, ET, RT)
    assert [(m["start"], m["text"]) for m in mentions] == [(9, "Zoe"), (33, "cole")]
    thai = (
        "\u0e2a\u0e21\u0e0a\u0e32\u0e22 \u0e2a\u0e21\u0e0a\u0e32\u0e22\u0e35"  # a name, then it with a vowel sign after
    )
    mentions, _, _ = ground_chunk(whole("t", thai), {"entities": [{"text": thai[:5], "type": "person"}]}, ET, RT)
    assert [(m["start"], m["end"]) for m in mentions] == [(0, 5)]


def test_a_composed_name_is_found_in_decomposed_text_and_the_reverse():
    # Models answer composed (NFC); texts from PDFs and macOS files are often decomposed (NFD).
    # Every accented name was dropped as ungrounded. The mention keeps the text's own form.
    nfd = "Jose\u0301 Marti\u0301 met Zoe\u0308 in Sa\u0303o Paulo."
    graph = {"entities": [{"text": "José Martí", "type": "person"}, {"text": "Zoë", "type": "person"},
                          {"text": "São Paulo", "type": "location"}]}  # fmt: skip
    mentions, _, dropped = ground_chunk(whole("d", nfd), graph, ET, RT)
    assert [(m["text"], m["name"]) for m in mentions] == [
        ("Jose\u0301 Marti\u0301", "José Martí"), ("Zoe\u0308", "Zoë"), ("Sa\u0303o Paulo", "São Paulo")
    ]  # fmt: skip
    assert all(nfd[m["start"] : m["end"]] == m["text"] for m in mentions) and not dropped
    nfc = unicodedata.normalize("NFC", nfd)
    decomposed = {"entities": [{"text": unicodedata.normalize("NFD", "José Martí"), "type": "person"}]}
    mentions, _, _ = ground_chunk(whole("c", nfc), decomposed, ET, RT)
    assert [m["text"] for m in mentions] == ["José Martí"]
