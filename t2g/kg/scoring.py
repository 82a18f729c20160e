"""Scoring a resolved graph against gold: B-cubed over gold mentions, edges against gold facts.

- `bcubed(pred, gold)`: pred and gold map a mention key (e.g. (doc id, start, end)) to a
  cluster id. Computed over the GOLD mentions; a gold mention missing from `pred` counts as a
  cluster of its own (so dropping mentions is not free). Per mention m: precision = |pred
  cluster of m ∩ gold cluster of m| / |pred cluster of m|, recall = the same over |gold
  cluster of m|; both averaged over mentions, F1 their harmonic mean (Bagga & Baldwin 1998).
- `edge_scores(edges, node_gold, gold_facts)`: a node stands for the gold entity most of
  its gold mentions belong to (ties: alphabetical); an edge is correct when (head's entity,
  type, tail's entity) is a gold fact. Precision over distinct predicted facts, recall over
  distinct gold facts.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping


def bcubed(pred: Mapping[Hashable, Hashable], gold: Mapping[Hashable, Hashable]) -> dict[str, float]:
    if not gold:
        return {"precision": 1.0, "recall": 1.0, "f1": 1.0, "mentions": 0}
    pred_of = {m: ("cluster", pred[m]) if m in pred else ("alone", m) for m in gold}
    pred_size: Counter = Counter(pred_of.values())
    gold_size: Counter = Counter(gold.values())
    both: Counter = Counter((pred_of[m], gold[m]) for m in gold)
    p = sum(both[(pred_of[m], gold[m])] / pred_size[pred_of[m]] for m in gold) / len(gold)
    r = sum(both[(pred_of[m], gold[m])] / gold_size[gold[m]] for m in gold) / len(gold)
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f, "mentions": len(gold)}


def node_to_gold(mentions: Iterable[tuple[Hashable, str]], gold: Mapping[Hashable, str]) -> dict[str, str]:
    """node id -> the majority gold id of its mentions; mentions is (mention key, node id)."""
    votes: dict[str, Counter] = defaultdict(Counter)
    for key, node in mentions:
        if key in gold:
            votes[node][gold[key]] += 1
    return {n: min(c, key=lambda g: (-c[g], g)) for n, c in votes.items()}


def edge_scores(
    edges: Iterable[tuple[str, str, str]], node_gold: Mapping[str, str], gold_facts: set[tuple[str, str, str]]
) -> dict[str, float]:
    """edges: (head node, type, tail node)."""
    predicted = {(node_gold.get(h), t, node_gold.get(tl)) for h, t, tl in edges}
    hits = len(predicted & gold_facts)
    p = hits / len(predicted) if predicted else 1.0
    r = hits / len(gold_facts) if gold_facts else 1.0
    return {
        "precision": p,
        "recall": r,
        "f1": 2 * p * r / (p + r) if p + r else 0.0,
        "predicted": len(predicted),
        "gold": len(gold_facts),
    }
