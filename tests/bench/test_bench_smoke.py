"""Every benchmark still runs: `make bench` runs only between releases, so without these a
change to the recipe schema, the CLI or the stack breaks a benchmark unnoticed. Each
benchmark in bench.__main__.BENCHMARKS runs at its smoke size (seconds) and must return
its figures; a benchmark added to the list is covered here without a new test."""

from __future__ import annotations

import json
from numbers import Number

import pytest

from bench.__main__ import BENCHMARKS, EXPERIMENTS, RESULTS, main, run_one
from bench.lockfile import lock_id

# The figures each benchmark promises (a benchmark not listed must still return some).
FIGURES = {
    "rewards": {"ratio", "t2g_s", "baseline_s", "n"},
    "cache": {"first_s", "cached_rerun_s", "stages", "cache_hits", "goal_s", "meets_goal", "first_stages_s", "machine"},
    "load": {"documents", "peak_rss_mb", "under_limit", "docs_per_s", "stages"},
    "stack": {"stack_up_s", "deployment_run_until_filter_s", "stack_down_s"},
    "sft": {"t2g", "seed_style", "speedup", "mean_tokens_per_example"},
    "graph": {"documents", "peak_rss_mb", "resolve_export_docs_per_s", "incremental"},
    "graph_resolution": {"scale", "f1", "exact_f1", "cross_type_nodes", "meets_goal"},
    "drift": {"moved", "moves_figures", "figure_packages_moved", "packages"},
    "graph_quality": {"long_documents", "corpus_graph", "context_tokens"},
    "suite": {"commit", "exit", "wall_s", "cpu_s", "counts", "pytest_s", "machine"},
}


@pytest.mark.parametrize("name", BENCHMARKS + EXPERIMENTS)
def test_benchmark_runs_at_smoke_size(name):
    figures = run_one(name, smoke=True)
    assert isinstance(figures, dict) and figures, figures
    assert FIGURES.get(name, set()) <= set(figures), f"{name} lacks {FIGURES[name] - set(figures)}: {figures}"
    json.dumps(figures)  # results.json must be able to hold them
    if name == "cache":  # the rerun did no stage work
        assert figures["stages"] >= 3 and figures["cache_hits"] == figures["stages"], figures
        assert figures["machine"]["matmul_gflops"] > 0 and figures["machine"]["cores"] >= 1, figures
        assert {"collect", "extract", "filter"} <= set(figures["first_stages_s"]), (
            figures
        )  # each stage's wall, from the log
    if name == "load":
        assert all(s["rows"] > 0 for s in figures["stages"].values()) and figures["under_limit"], figures
    if name == "think":  # the tiny reasoner ran through the real reason stage: every row accounted for
        reason = figures["reason"]
        assert reason["rows_in"] == reason["rows_out"] + sum(reason["reasons"].values()) and reason["rows_in"] > 0, (
            figures
        )
    if name == "graph":  # +10% documents: only their chunks asked, old ids kept, exports as a fresh build
        inc = figures["incremental"]
        assert inc["only_new_chunks_requested"] and inc["exports_equal_scratch"], figures
        assert inc["old_node_ids_unchanged"] == inc["old_nodes"] > 0, figures
    if name == "drift":  # smoke: the lock against itself, offline
        assert figures["moved"] == {} and figures["packages"] > 100, figures
    if name == "graph_quality":  # a random tiny model: the figures' shape, not their values
        long, corpus = figures["long_documents"], figures["corpus_graph"]
        assert long["documents"] >= 1, figures  # the smoke corpus holds a document past the context
        for way in ("chunked", "parts_alone", "truncated", "truncated_grounded_in_whole_document"):
            assert 0.0 <= long[way]["mention_recall"] <= 1.0 and 0.0 <= long[way]["entity_recall"] <= 1.0, figures
        assert corpus["span_equals_text"] == 1.0 and 0.0 <= corpus["edges_vs_gold_facts"]["recall"] <= 1.0, figures
    if name == "suite":  # a clean clone's tests ran and passed
        assert figures["exit"] == 0 and figures["counts"]["passed"] > 0, figures
    if name == "stack":
        assert all(isinstance(v, Number) for k, v in figures.items() if k.endswith("_s")), figures


def test_smoke_figures_go_where_asked_and_never_into_results_json(tmp_path, monkeypatch):
    before = RESULTS.read_bytes() if RESULTS.exists() else None
    monkeypatch.delenv("T2G_BENCH_RESULTS", raising=False)
    assert main(["--smoke", "rewards"]) == 0
    assert (RESULTS.read_bytes() if RESULTS.exists() else None) == before

    out = tmp_path / "results.json"
    out.write_text(json.dumps({"kept": {"x": 1}}))
    monkeypatch.setenv("T2G_BENCH_RESULTS", str(out))
    assert main(["--smoke", "rewards"]) == 0
    saved = json.loads(out.read_text())
    assert saved["kept"] == {"x": 1} and saved["rewards"]["n"] > 0
    # The entry names the lock it was measured under, or says how the tree differs from it.
    lock = saved["rewards"]["lock"]
    assert lock == lock_id() if lock is not None else saved["rewards"]["lock_differs"], saved["rewards"]
    assert main(["--smoke", "nope"]) == 2
