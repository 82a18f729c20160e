"""The whole pipeline through the real `t2g run` command and a Prefect server, on a
cut-down tiny recipe: every stage runs, the F1 table is printed, the reward plot and
report are in the store, and a second run is all cache hits."""

from __future__ import annotations

import json

from t2g import counts
from t2g.stages import STAGES
from t2g.store import Store
from tests.support.flowrun import SMALL, TINY, run_t2g

CUT = [
    *SMALL,
    "sft.tiny={vocab_size: 400, hidden_size: 32, layers: 1, heads: 1, pretrain_steps: 2}",
    "sft.max_steps=3",
    "sft.batch_size=4",
    "grpo.max_steps=2",
    "grpo.batch_size=4",
    "grpo.num_generations=2",
    "grpo.max_completion_length=12",
    "evaluate.limit=4",
    "evaluate.max_new_tokens=12",
]


def _args() -> list[str]:
    args = ["run", "--config", str(TINY)]
    for item in CUT:
        args += ["--set", item]
    return args


def test_tiny_pipeline_end_to_end(tmp_path, prefect_server):
    env = prefect_server.env()
    first = run_t2g(_args(), tmp_path, env)
    assert first.returncode == 0, first.output[-4000:]
    stages = first.stages
    assert {"collect", "extract", "filter", "reason", "sft", "grpo", "evaluate"} <= set(stages), first.output[-3000:]
    assert "| grpo |" in first.output and "reward plot:" in first.output
    # Long phases report progress in the run's log (terminal and UI): the student's copy
    # warm-up and its training steps.
    assert "copy warm-up: step 2/2 (100%)" in first.output and "sft training: step 3/3 (100%)" in first.output, (
        first.output[-3000:]
    )
    # Every row-wise stage's counts add up on their own: rows in = each named reason +
    # rows out - variants (the counts artifact shows exactly these rows).
    store = Store(f"file://{tmp_path}/.t2g/store")
    for stage, ref in stages.items():
        summary = store.manifest(stage, ref["uri"].rsplit("/", 1)[1])["summary"]
        table = counts.table(summary, ref["rows"], {}, STAGES[stage].row_wise)
        if STAGES[stage].row_wise:
            assert counts.balance(summary, ref["rows"]) == 0, (stage, table)
            assert not any(r["what"] == "unaccounted for" for r in table)
            assert sum(r["count"] for r in table[:-1]) == ref["rows"], (stage, table)

    store = Store(f"file://{tmp_path}/.t2g/store")
    key = stages["evaluate"]["uri"].rsplit("/", 1)[1]
    report = json.loads(store.read_file("evaluate", key, "report.json"))
    assert set(report["models"]) == {"base", "sft", "grpo"}
    grpo_key = stages["grpo"]["uri"].rsplit("/", 1)[1]
    assert store.read_file("grpo", grpo_key, "rewards.png").startswith(b"\x89PNG")
    assert store.manifest("sft", stages["sft"]["uri"].rsplit("/", 1)[1])["kind"] == "model"

    second = run_t2g(_args(), tmp_path, env)
    assert second.returncode == 0, second.output[-4000:]
    assert all(s["hit"] for s in second.stages.values()), [
        line for line in second.output.splitlines() if " rows " in line or "cache" in line
    ]
    assert "| grpo |" in second.output


def test_the_default_recipe_bootstraps_a_teacher_that_labels_the_pool(tmp_path, prefect_server):
    """configs/tiny.yaml (what `make demo` runs), cut down, up to extract: the teacher is a
    model artifact trained on the seed split, extract labels seed and pool with it through
    the transformers backend, and its labels are scored against the hidden gold."""
    default = TINY.with_name("tiny.yaml")
    cut = [
        *SMALL,
        "teacher.tiny={vocab_size: 400, hidden_size: 32, layers: 1, heads: 1, pretrain_steps: 2}",
        "teacher.max_steps=2",
        "teacher.batch_size=4",
        "extract.max_new_tokens=24",
    ]
    args = ["run", "--config", str(default), "--until", "extract"]
    for item in cut:
        args += ["--set", item]
    run = run_t2g(args, tmp_path, prefect_server.env())
    assert run.returncode == 0, run.output[-4000:]
    assert set(run.stages) == {"collect", "teacher", "extract"}, run.output[-3000:]
    store = Store(f"file://{tmp_path}/.t2g/store")
    key = lambda stage: run.stages[stage]["uri"].rsplit("/", 1)[1]  # noqa: E731
    assert store.manifest("teacher", key("teacher"))["kind"] == "model"
    extracted = store.read("extract", key("extract"))
    assert set(extracted.column("split").to_pylist()) == {"seed", "pool"}
    assert set(extracted.column("model").to_pylist()) == {"@teacher"}
    scored = store.manifest("extract", key("extract"))["summary"]["vs_gold"]
    splits = extracted.column("split").to_pylist()  # collect drops a few near-duplicates
    assert {split: s["documents"] for split, s in scored.items()} == {
        "seed": splits.count("seed"),
        "pool": splits.count("pool"),
    }
