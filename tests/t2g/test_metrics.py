"""Normalisation, per-example counts and the corpus report."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from t2g.graph import Graph
from t2g.metrics import Counts, corpus_report, count, entity_set, f1, normalise, paired_bootstrap, relation_set

# --- normalise ------------------------------------------------------------------------


@given(st.text())
def test_normalise_is_idempotent(s: str) -> None:
    assert normalise(normalise(s)) == normalise(s)


@given(st.text())
def test_normalise_has_no_outer_or_repeated_whitespace(s: str) -> None:
    n = normalise(s)
    assert n == n.strip()
    assert "  " not in n
    assert not any(c.isspace() and c != " " for c in n)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("  Satya   Nadella ", "satya nadella"),
        ("Satya\t\nNadella", "satya nadella"),
        ("Satya\u00a0Nadella", "satya nadella"),  # no-break space is whitespace after NFKC
        ("MICROSOFT", "microsoft"),
        ("Straße", "strasse"),  # casefold, not lower
        ("ﬁnance", "finance"),  # NFKC expands the ligature
        ("Ｍｉｃｒｏｓｏｆｔ", "microsoft"),  # full-width letters
        ("Cafe\u0301", "café"),  # combining accent composes
        ("ß\u0301", "sś"),  # casefold un-composes; the final NFKC recomposes
        ("", ""),
        (" \t ", ""),
    ],
)
def test_normalise_examples(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


# --- per example ----------------------------------------------------------------------


def test_both_empty_is_perfect() -> None:
    c = count([], [])
    assert (c.precision, c.recall, c.f1) == (1.0, 1.0, 1.0)
    assert f1(entity_set(Graph()), entity_set(Graph())) == 1.0


def test_empty_prediction_against_non_empty_gold_is_zero() -> None:
    c = count([("apple", "company")], [])
    assert c == Counts(tp=0, fp=0, fn=1)
    assert (c.precision, c.recall, c.f1) == (0.0, 0.0, 0.0)


def test_prediction_against_empty_gold_is_zero() -> None:
    c = count([], [("apple", "company")])
    assert (c.precision, c.recall, c.f1) == (0.0, 0.0, 0.0)


def test_duplicates_collapse_after_normalisation() -> None:
    gold = {"entities": [{"text": "Apple", "type": "company"}], "relations": []}
    pred = {
        "entities": [
            {"text": "Apple", "type": "company"},
            {"text": " apple ", "type": "COMPANY"},  # the same entity once normalised
        ],
        "relations": [],
    }
    assert entity_set(pred) == {("apple", "company")}
    assert count(entity_set(gold), entity_set(pred)) == Counts(tp=1, fp=0, fn=0)


def test_sets_accept_graphs_and_mappings_alike() -> None:
    obj = {
        "entities": [{"text": "A", "type": "t"}, {"text": "B", "type": "t"}],
        "relations": [{"head": "A", "tail": "B", "type": "r"}],
    }
    g = Graph.model_validate(obj)
    assert entity_set(g) == entity_set(obj) == {("a", "t"), ("b", "t")}
    assert relation_set(g) == relation_set(obj) == {("a", "b", "r")}
    assert relation_set(g, relaxed=True) == {("a", "b")}


# --- corpus ---------------------------------------------------------------------------


def _g(ents: list[tuple[str, str]], rels: tuple[tuple[str, str, str], ...] | list[tuple[str, str, str]] = ()) -> dict:
    return {
        "entities": [{"text": t, "type": ty} for t, ty in ents],
        "relations": [{"head": h, "tail": t, "type": ty} for h, t, ty in rels],
    }


def test_corpus_micro_differs_from_mean() -> None:
    # Example 1: gold {a/x}, pred {a/x}                 -> TP 1 FP 0 FN 0, F1 1
    # Example 2: gold {b/x, c/y, d/y}, pred {b/y}       -> TP 0 FP 1 FN 3, F1 0
    #   relaxed (text only): gold {b, c, d}, pred {b}  -> TP 1 FP 0 FN 2, F1 2/4
    # micro: TP 1 FP 1 FN 3 -> P 1/2, R 1/4, F1 2/(2+1+3) = 1/3; mean F1 (1+0)/2 = 1/2
    # relaxed micro: TP 2 FP 0 FN 2 -> P 1, R 1/2, F1 4/6; relaxed mean (1 + 1/2)/2 = 3/4
    pairs = [
        (_g([("a", "x")]), _g([("a", "x")])),
        (_g([("b", "x"), ("c", "y"), ("d", "y")]), _g([("b", "y")])),
    ]
    e = corpus_report(pairs)["entities"]
    assert e["micro"] == pytest.approx({"precision": 1 / 2, "recall": 1 / 4, "f1": 1 / 3})
    assert e["mean_f1"] == pytest.approx(1 / 2)
    assert e["relaxed"]["micro"] == pytest.approx({"precision": 1.0, "recall": 1 / 2, "f1": 2 / 3})
    assert e["relaxed"]["mean_f1"] == pytest.approx(3 / 4)
    # type x: gold {a, b}, pred {a}    -> TP 1 FP 0 FN 1: P 1, R 1/2, F1 2/3, support 2
    # type y: gold {c, d}, pred {b}    -> TP 0 FP 1 FN 2: all 0, support 2
    assert e["per_type"]["x"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    assert e["per_type"]["y"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    # No relations anywhere: every example is a correct "nothing here".
    r = corpus_report(pairs)["relations"]
    assert r["micro"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert r["mean_f1"] == 1.0 and r["per_type"] == {}


def test_per_type_keys_are_normalised_and_predicted_only_types_listed() -> None:
    pairs = [(_g([("a", "Person")]), _g([("a", " PERSON "), ("z", "Alien")]))]
    per_type = corpus_report(pairs)["entities"]["per_type"]
    assert set(per_type) == {"person", "alien"}
    assert per_type["person"]["f1"] == 1.0
    assert per_type["alien"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_corpus_accepts_a_generator_and_graph_objects() -> None:
    g = Graph.model_validate(_g([("a", "x")], [("a", "a", "self")]))
    report = corpus_report((g, g) for _ in range(3))
    assert report["relations"]["micro"]["f1"] == 1.0
    assert report["relations"]["per_type"]["self"]["support"] == 3


items = st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from("xy")), max_size=4)


@given(st.lists(st.tuples(items, items), max_size=5))
def test_corpus_scores_are_probabilities_and_self_match_is_perfect(raw: list) -> None:
    pairs = [(_g(g), _g(p)) for g, p in raw]
    e = corpus_report(pairs)["entities"]
    for v in [*e["micro"].values(), e["mean_f1"], *e["relaxed"]["micro"].values()]:
        assert 0.0 <= v <= 1.0
    same = corpus_report([(_g(g), _g(g)) for g, _ in raw])["entities"]
    assert same["micro"]["f1"] == same["mean_f1"] == same["relaxed"]["mean_f1"] == 1.0


graph = st.builds(
    lambda e, r: _g(e, r),
    items,
    st.lists(st.tuples(st.sampled_from("ab"), st.sampled_from("bc"), st.sampled_from("rs")), max_size=3),
)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(graph, graph, graph), min_size=1, max_size=8))
def test_paired_bootstrap_delta_is_the_corpus_f1_difference(raw: list) -> None:
    golds, a, b = (list(x) for x in zip(*raw))
    out = paired_bootstrap(golds, a, b, resamples=200)
    assert out["documents"] == len(raw)
    for kind in ("entities", "relations"):
        f = [corpus_report(zip(golds, preds))[kind]["micro"]["f1"] for preds in (a, b)]
        c = out[kind]
        assert c["delta"] == pytest.approx(f[1] - f[0])
        assert -1.0 <= c["low"] <= c["high"] <= 1.0
        if len(raw) == 1:  # nothing to resample
            assert c["low"] == c["delta"] == c["high"]


def test_paired_bootstrap_interval_excludes_zero_only_for_a_clear_gain() -> None:
    gold = _g([("a", "x"), ("b", "y")], [("a", "b", "r")])
    wrong = _g([("c", "x")], [("a", "c", "r")])
    # b beats a on 30 of 40 documents and ties on the rest: a gain the interval must show.
    clear = paired_bootstrap([gold] * 40, [wrong] * 40, [gold] * 30 + [wrong] * 10)
    assert clear["relations"]["low"] > 0
    # b wins half and loses half: no difference, and an interval around zero.
    mixed = paired_bootstrap([gold] * 40, [gold] * 20 + [wrong] * 20, [wrong] * 20 + [gold] * 20)
    assert mixed["relations"]["delta"] == pytest.approx(0.0)
    assert mixed["relations"]["low"] < 0 < mixed["relations"]["high"]


def test_paired_bootstrap_needs_one_prediction_per_gold() -> None:
    with pytest.raises(ValueError, match="2 gold, 1 and 2 predictions"):
        paired_bootstrap([_g([])] * 2, [_g([])], [_g([])] * 2)
