"""The resolution benchmark's promises at small scale (the figures themselves: `make bench`):
B-cubed F1 >= 0.95 with gold mentions, above exact matching, no node mixing types, the
shared-surname pair apart, and the edges equal to the gold facts."""

from __future__ import annotations

from bench.graph_resolution import GOAL_F1, quality


def test_resolution_quality_on_the_identities_world():
    q = quality(150)
    assert q["f1"] >= GOAL_F1 > q["exact_f1"], q["bcubed"]
    assert q["cross_type_nodes"] == 0
    assert q["shared_surname_pair_apart"], q["shared_surname_pair"]
    assert q["edges_vs_gold_facts"]["precision"] == 1.0, q["edges_vs_gold_facts"]
    assert q["meets_goal"]
