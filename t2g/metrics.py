"""Scoring graphs against gold: per-example and corpus precision, recall and F1.

An entity is the pair (norm text, norm type), a relation the triple (norm head, norm tail,
norm type); a graph is a set of them, so duplicates collapse. Gold empty and prediction
empty is a perfect answer (F1 = 1): a correct "nothing here" must not be punished.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import astuple, dataclass, field
from functools import lru_cache
from typing import Any

from t2g.graph import Graph

_WS = re.compile(r"\s+")


def normalise(s: str) -> str:
    """Unicode NFKC, casefold, collapse runs of whitespace, strip."""
    # Rewards normalise the same short names thousands of times per GRPO step; long
    # strings (garbage completions) are not worth keeping in the cache.
    return _normalise_cached(s) if len(s) <= 256 else _normalise(s)


def _normalise(s: str) -> str:
    # NFKC again after casefold: casefolding can undo composition ("ß\u0301" folds to
    # "ss\u0301", whose NFKC is "sś"), and without it normalise is not idempotent and
    # two canonically equal spellings could fail to match.
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", s).casefold())
    return _WS.sub(" ", folded).strip()


_normalise_cached = lru_cache(maxsize=1 << 16)(_normalise)


def _items(graph: Graph | Mapping[str, Any], key: str) -> list[Any]:
    if isinstance(graph, Graph):
        return list(getattr(graph, key))
    return list(graph.get(key) or [])


def _get(item: Any, field: str) -> str:
    value = item.get(field, "") if isinstance(item, Mapping) else getattr(item, field, "")
    return value if isinstance(value, str) else str(value)


def entity_set(graph: Graph | Mapping[str, Any], relaxed: bool = False) -> frozenset[tuple[str, ...]]:
    """Entities as a set of (text, type) — or (text,) when relaxed — after normalisation."""
    out = set()
    for e in _items(graph, "entities"):
        text = normalise(_get(e, "text"))
        out.add((text,) if relaxed else (text, normalise(_get(e, "type"))))
    return frozenset(out)


def relation_set(graph: Graph | Mapping[str, Any], relaxed: bool = False) -> frozenset[tuple[str, ...]]:
    """Relations as a set of (head, tail, type) — or (head, tail) when relaxed."""
    out = set()
    for r in _items(graph, "relations"):
        head, tail = normalise(_get(r, "head")), normalise(_get(r, "tail"))
        out.add((head, tail) if relaxed else (head, tail, normalise(_get(r, "type"))))
    return frozenset(out)


@dataclass(frozen=True)
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def precision(self) -> float:
        return 1.0 if self.tp + self.fp == 0 and self.fn == 0 else _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return 1.0 if self.tp + self.fn == 0 and self.fp == 0 else _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float:
        if self.tp + self.fp + self.fn == 0:
            return 1.0  # both empty: a correct "nothing here"
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    def prf(self) -> dict[str, float]:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1}


def _ratio(a: int, b: int) -> float:
    return a / b if b else 0.0


def count(gold: Iterable[tuple[str, ...]], pred: Iterable[tuple[str, ...]]) -> Counts:
    g, p = set(gold), set(pred)
    tp = len(g & p)
    return Counts(tp, len(p) - tp, len(g) - tp)


def f1(gold: Iterable[tuple[str, ...]], pred: Iterable[tuple[str, ...]]) -> float:
    """Per-example F1 of two sets (1.0 when both are empty)."""
    return count(gold, pred).f1


# --- corpus -----------------------------------------------------------------------------

GraphLike = Graph | Mapping[str, Any]
_Items = frozenset[tuple[str, ...]]


@dataclass
class _Tally:
    """Running totals for one kind of item (entities or relations) over a corpus."""

    micro: Counts = Counts()
    relaxed: Counts = Counts()
    f1_sum: float = 0.0
    relaxed_f1_sum: float = 0.0
    # Keyed by normalised type (the last element of a strict item); support is tp + fn.
    per_type: dict[str, Counts] = field(default_factory=dict)

    def add(self, gold: _Items, pred: _Items, gold_relaxed: _Items, pred_relaxed: _Items) -> None:
        c, r = count(gold, pred), count(gold_relaxed, pred_relaxed)
        self.micro += c
        self.relaxed += r
        self.f1_sum += c.f1
        self.relaxed_f1_sum += r.f1
        for t in {item[-1] for item in gold | pred}:
            typed = count((g for g in gold if g[-1] == t), (p for p in pred if p[-1] == t))
            self.per_type[t] = self.per_type.get(t, Counts()) + typed

    def report(self, n: int) -> dict[str, Any]:
        # No examples: nothing to find and nothing found, the same convention as Counts.
        def mean(total: float) -> float:
            return total / n if n else 1.0

        return {
            "micro": self.micro.prf(),
            "mean_f1": mean(self.f1_sum),
            "relaxed": {"micro": self.relaxed.prf(), "mean_f1": mean(self.relaxed_f1_sum)},
            # Types seen only in predictions are listed too (support 0): a model inventing
            # types should show up in the table, not vanish from it.
            "per_type": {t: {**c.prf(), "support": c.tp + c.fn} for t, c in sorted(self.per_type.items())},
        }


def corpus_report(pairs: Iterable[tuple[GraphLike, GraphLike]]) -> dict[str, dict[str, Any]]:
    """Score (gold, prediction) pairs in one pass.

    Returns {"entities": ..., "relations": ...}, each {"micro": {precision, recall, f1},
    "mean_f1", "relaxed": {"micro", "mean_f1"}, "per_type": {type: {precision, recall,
    f1, support}}}. Micro sums TP/FP/FN over examples; mean_f1 averages per-example F1;
    relaxed ignores types (entities by text, relations by head and tail).
    """
    ents, rels, n = _Tally(), _Tally(), 0
    for gold, pred in pairs:
        n += 1
        ents.add(entity_set(gold), entity_set(pred), entity_set(gold, True), entity_set(pred, True))
        rels.add(relation_set(gold), relation_set(pred), relation_set(gold, True), relation_set(pred, True))
    return {"entities": ents.report(n), "relations": rels.report(n)}


# --- comparing two models on the same documents -----------------------------------------


def paired_bootstrap(
    golds: Sequence[GraphLike],
    preds_a: Sequence[GraphLike],
    preds_b: Sequence[GraphLike],
    resamples: int = 2000,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Micro-F1 of model b minus model a on the same documents, with a 95% interval from
    a paired bootstrap over documents (scipy.stats.bootstrap, percentile method).

    Why: on a hundred test documents a few points of relation F1 is within noise; the
    interval says whether b's gain is one. Returns {"entities": {...}, "relations": {...}},
    each {"delta", "low", "high"} in F1 units, and "documents".
    """
    import numpy as np
    from scipy.stats import bootstrap

    if not (len(golds) == len(preds_a) == len(preds_b)):
        raise ValueError(f"paired_bootstrap: {len(golds)} gold, {len(preds_a)} and {len(preds_b)} predictions")
    out: dict[str, Any] = {"documents": len(golds)}
    for kind, items in (("entities", entity_set), ("relations", relation_set)):
        # Per document: tp, fp, fn of each model; micro-F1 is a function of their sums.
        counts = np.array(
            [[astuple(count(items(g), items(p))) for p in (a, b)] for g, a, b in zip(golds, preds_a, preds_b)],
            dtype=float,
        ).reshape(len(golds), 6)

        def delta(ix: np.ndarray, axis: int = -1) -> np.ndarray:
            s = counts[ix].sum(axis=-2)  # (..., 6)  # noqa: B023 (called within this iteration)
            f = [np.divide(2 * s[..., i], 2 * s[..., i] + s[..., i + 1] + s[..., i + 2],
                           out=np.ones_like(s[..., i]), where=s[..., i : i + 3].sum(axis=-1) > 0)
                 for i in (0, 3)]  # fmt: skip
            return f[1] - f[0]

        point = float(delta(np.arange(len(golds))))
        if len(golds) < 2:
            out[kind] = {"delta": point, "low": point, "high": point}
            continue
        ci = bootstrap((np.arange(len(golds)),), delta, n_resamples=resamples, method="percentile",
                       vectorized=True, random_state=np.random.default_rng(seed)).confidence_interval  # fmt: skip
        out[kind] = {"delta": point, "low": float(ci.low), "high": float(ci.high)}
    return out
