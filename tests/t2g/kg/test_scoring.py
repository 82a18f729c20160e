"""B-cubed and edge scores on hand-computed cases."""

from __future__ import annotations

import pytest

from t2g.kg.scoring import bcubed, edge_scores, node_to_gold


def test_bcubed_hand_computed():
    gold = {1: "A", 2: "A", 3: "A", 4: "B", 5: "B"}
    assert bcubed(dict(gold), gold)["f1"] == 1.0
    merged = {m: "x" for m in gold}  # one cluster: precision (3*3/5 + 2*2/5)/5 = 13/25, recall 1
    s = bcubed(merged, gold)
    assert s["precision"] == pytest.approx(13 / 25) and s["recall"] == 1.0
    split = {m: m for m in gold}  # singletons: precision 1, recall (3*1/3 + 2*1/2)/5 = 2/5
    s = bcubed(split, gold)
    assert s["precision"] == 1.0 and s["recall"] == pytest.approx(2 / 5)
    # a gold mention the prediction lacks is a singleton, never a free pass
    assert bcubed({1: "x", 2: "x"}, gold)["recall"] < 1.0


def test_edges_after_mapping_nodes_to_their_majority_entity():
    node_gold = node_to_gold([(1, "n1"), (2, "n1"), (3, "n1"), (4, "n2")], {1: "A", 2: "A", 3: "B", 4: "C"})
    assert node_gold == {"n1": "A", "n2": "C"}
    s = edge_scores(
        [("n1", "r", "n2"), ("n2", "r", "n1"), ("n1", "r", "nX")], node_gold, {("A", "r", "C"), ("C", "s", "A")}
    )
    assert s["precision"] == pytest.approx(1 / 3) and s["recall"] == pytest.approx(1 / 2)
