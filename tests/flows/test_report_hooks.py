"""The run report and `t2g run`'s closing text, byte for byte, for a run with every
stage that says something of its own (extract's label quality, the filter's drops and
repairs, a second round's rejection sampling, GRPO's reward plots, the evaluation): the
golden texts were produced by the code before the stages' `report` hooks existed, so
moving the wording into the stage modules changed nothing anyone reads."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pytest

from flows.report import closing_report, render
from t2g.config import load_recipe
from t2g.reporting import ReportHookError
from t2g.stages import STAGES, Input, Stage, registered
from t2g.store import Store

REPO = Path(__file__).resolve().parents[2]
R1 = REPO / "configs" / "tiny-r1.yaml"

VS_GOLD = {
    "pool": {"documents": 10, "entities": {"tp": 6, "fp": 2, "fn": 4}, "relations": {"tp": 1, "fp": 1, "fn": 3}},
    "seed": {"documents": 4, "entities": {"tp": 4, "fp": 0, "fn": 1}, "relations": {"tp": 2, "fp": 0, "fn": 0}},
}
TABLE = [
    {
        "model": "base",
        "entity_f1": 0.1,
        "relation_f1": 0.0,
        "valid_json_rate": 0.5,
        "type_conformity": None,
        "examples": 20,
    },
    {
        "model": "sft",
        "entity_f1": 0.5,
        "relation_f1": 0.25,
        "valid_json_rate": 1.0,
        "type_conformity": 1.0,
        "examples": 20,
    },
]
LLM = {"requests": 14, "cache_hits": 4, "cache_misses": 10, "prompt_tokens_generated": 900, "completion_tokens_generated": 300,
       "prompt_tokens_saved": 200, "completion_tokens_saved": 80, "wall_s": 2.5}  # fmt: skip
SUMMARIES = {
    "collect": {"rows_in": 120, "reasons": {"exact duplicate": 2}},
    "extract": {"rows_in": 118, "not_selected": 4, "rows_out": 114, "backend": "transformers", "vs_gold": VS_GOLD, "llm": LLM},
    "filter": {"rows_in": 114, "kept": 90, "reasons": {"ungrounded entity": 14, "dangling relation": 10},
               "repaired": {"ungrounded entity removed": 6}},
    "reason": {"rows_in": 90, "rows_out": 90},
    "sft": {"steps": 5},
    "grpo": {"steps": 3},
    "sample-2": {"documents": 30, "samples": 120, "model": "grpo", "accepted": 12, "acceptance_rate": 0.4,
                 "mean_best_reward": 0.81, "vs_gold": {"closer": 5, "documents": 12, "same": 4}},
    "sft-2": {"steps": 5},
    "grpo-2": {"steps": 3},
    "evaluate": {"table": TABLE},
}  # fmt: skip
FILES = {
    "grpo": {"rewards.png": b"png"},
    "grpo-2": {"rewards.png": b"png2"},
    "evaluate": {
        "report.md": b"# Evaluation\n\n| model | entity_f1 |\n|---|---|\n| sft | 0.5 |\n\n",
        "report.json": b"{}",
    },
}


def _run(tmp_path, summaries=SUMMARIES):
    uri = f"file://{tmp_path}/store"
    store, recipe = Store(uri), load_recipe(R1, store=uri)
    refs, manifests = {}, {}
    for i, (node, summary) in enumerate(summaries.items()):  # a node's name is its store stage (sample-2)
        ref = store.write(
            node, f"k{i}", pa.table({"x": list(range(i + 1))}), meta={"summary": summary}, files=FILES.get(node)
        )
        refs[node] = {**ref.to_dict(), "hit": i % 2 == 0}
        manifests[node] = store.manifest(node, f"k{i}")
    return recipe, refs, manifests


def test_the_run_report_reads_as_before(tmp_path):
    recipe, refs, manifests = _run(tmp_path)
    md = render(recipe, refs, "configs/tiny-r1.yaml", ["sample.k=4"], manifests)
    assert md.replace(str(tmp_path), "<tmp>") == RUN_REPORT


def test_the_closing_text_reads_as_before(tmp_path):
    recipe, refs, _ = _run(tmp_path)
    assert closing_report(recipe, refs).replace(str(tmp_path), "<tmp>") == CLOSING


RUN_REPORT = "# t2g run: tiny-r1\n\nthe tiny profile plus a rejection-sampling round (sample-2, sft-2, grpo-2), CPU\n\n## Inputs\n\n- recipe: `configs/tiny-r1.yaml`\n- store: `file://<tmp>/store`\n- override: `sample.k=4`\n\n## Artifacts\n\n| stage | rows in | rows out | dropped | cache | artifact |\n|---|---|---|---|---|---|\n| collect | 120 | 1 | 2 | hit | `file://<tmp>/store/collect/k0` |\n| extract | 118 | 2 | 4 | ran | `file://<tmp>/store/extract/k1` |\n| filter | 114 | 3 | 24 | hit | `file://<tmp>/store/filter/k2` |\n| reason | 90 | 4 |  | ran | `file://<tmp>/store/reason/k3` |\n| sft |  | 5 |  | hit | `file://<tmp>/store/sft/k4` |\n| grpo |  | 6 |  | ran | `file://<tmp>/store/grpo/k5` |\n| sample-2 |  | 7 |  | hit | `file://<tmp>/store/sample-2/k6` |\n| sft-2 |  | 8 |  | ran | `file://<tmp>/store/sft-2/k7` |\n| grpo-2 |  | 9 |  | hit | `file://<tmp>/store/grpo-2/k8` |\n| evaluate |  | 10 |  | ran | `file://<tmp>/store/evaluate/k9` |\n\n### Drop reasons\n\n| stage | reason | rows |\n|---|---|---|\n| collect | exact duplicate | 2 |\n| filter | dangling relation | 10 |\n| filter | ungrounded entity | 14 |\n\n### Repaired instead of dropped\n\n| stage | repaired (kept) | rows |\n|---|---|---|\n| filter | ungrounded entity removed | 6 |\n\n### Teacher labels against the documents' gold\n\n| split | documents | entity precision | entity recall | entity f1 | relation precision | relation recall | relation f1 |\n|---|---|---|---|---|---|---|---|\n| pool | 10 | 0.750 | 0.600 | 0.667 | 0.500 | 0.250 | 0.333 |\n| seed | 4 | 1.000 | 0.800 | 0.889 | 1.000 | 1.000 | 1.000 |\n\n### LLM requests\n\n- extract: 14 requests, 4 cache hits (29%), 10 sent; tokens generated 900 prompt + 300 completion, saved 200 prompt + 80 completion; 2.5 s\n\n## Evaluation\n\n| model | entity_f1 | relation_f1 | valid_json_rate | type_conformity | examples |\n|---|---|---|---|---|---|\n| base | 0.100 | 0.000 | 0.500 | None | 20 |\n| sft | 0.500 | 0.250 | 1.000 | 1.000 | 20 |\n\n## Plots\n\n- [rewards.png](file://<tmp>/store/grpo/k5/rewards.png)\n- [rewards.png](file://<tmp>/store/grpo-2/k8/rewards.png)\n"
CLOSING = "\nteacher labels, pool (10 documents, against their gold): entity P/R/F1 0.750 / 0.600 / 0.667, relation 0.500 / 0.250 / 0.333\nteacher labels, seed (4 documents, against their gold): entity P/R/F1 1.000 / 0.800 / 0.889, relation 1.000 / 1.000 / 1.000\nfilter kept 90 of 114 labelled documents, 6 of them repaired (ungrounded entity removed: 6) (dropped: 14 ungrounded entity, 10 dangling relation)\n\nsample-2: 30 documents x 4 answers from the round before's grpo: 12 accepted (40.0%), mean best reward 0.81; against the gold, the kept answer beats the teacher's label on 5 of 12 (41.7%), ties on 4 (file://<tmp>/store/sample-2/k6/report.md)\n\n# Evaluation\n\n| model | entity_f1 |\n|---|---|\n| sft | 0.5 |\n\nreport:      file://<tmp>/store/evaluate/k9/report.md (and report.json; predictions in the parquet parts)\nreward plot: file://<tmp>/store/grpo/k5/rewards.png\nreward plot: file://<tmp>/store/grpo-2/k8/rewards.png (grpo-2)"


# --- the hook: a stage's wording is its own, flows/ only lays the parts out ------------


def typo_hook(summary, node, kind):
    return {"dat": ["a part no report has"]}


def test_a_new_stage_says_its_own_lines_with_no_edit_in_flows(tmp_path, monkeypatch):
    # A test registry: the real one plus `wordcount` (tests/support/extra_stage.py) and its report hook.
    spec = Stage(
        "wordcount",
        "tests.support.extra_stage:word_counts",
        None,
        (Input("docs", "collect"),),
        report="tests.support.extra_stage:word_report",
    )
    monkeypatch.setitem(STAGES, "wordcount", spec)
    recipe, refs, manifests = _run(tmp_path, {**SUMMARIES, "wordcount": {"words": 321}})
    md = render(recipe, refs, "configs/tiny-r1.yaml", [], manifests)
    assert "### Words\n\n321 words in wordcount\n\n### LLM requests" in md  # its data part, before the generic sections
    text = closing_report(recipe, refs)
    # In the data paragraph, after the filter's line (run order), before the paragraph's end.
    assert f"dangling relation)\nwordcount: 321 words ({refs['wordcount']['uri']})\n\nsample-2:" in text


def test_a_hook_answering_an_unknown_part_fails_loudly_and_a_failing_one_is_left_out(tmp_path, monkeypatch):
    recipe, refs, manifests = _run(tmp_path)
    monkeypatch.setitem(STAGES, "sft", replace(STAGES["sft"], report=f"{__name__}:typo_hook"))
    with pytest.raises(ReportHookError, match=r"sft's report hook must return .*parts among .*; got \['dat'\]"):
        render(recipe, refs, "configs/tiny-r1.yaml", [], manifests)
    monkeypatch.undo()
    # evaluate's report.md gone: the hook is left out, so the closing text (results first) is none; nothing raises.
    next(Path(refs["evaluate"]["uri"].removeprefix("file://")).rglob("report.md")).unlink()
    assert closing_report(recipe, refs) == ""


def test_where_prints_go_is_the_registry_s_word():
    assert (
        not registered("evaluate").log_prints
        and not registered("sft").log_prints
        and not registered("grpo-2").log_prints
    )
    assert registered("extract").log_prints and registered("collect").log_prints
