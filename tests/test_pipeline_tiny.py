"""The whole pipeline through the real `t2g run` command and a Prefect server, on a
cut-down tiny recipe: every stage runs, the F1 table is printed, the reward plot and
report are in the store, and a second run is all cache hits."""

from __future__ import annotations

import json

from t2g.store import Store
from tests.flowrun import SMALL, TINY, run_t2g

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

    store = Store(f"file://{tmp_path}/.t2g/store")
    key = stages["evaluate"]["uri"].rsplit("/", 1)[1]
    report = json.loads(store.read_file("evaluate", key, "report.json"))
    assert set(report["models"]) == {"base", "sft", "grpo"}
    grpo_key = stages["grpo"]["uri"].rsplit("/", 1)[1]
    assert store.read_file("grpo", grpo_key, "rewards.png").startswith(b"\x89PNG")
    assert store.manifest("sft", stages["sft"]["uri"].rsplit("/", 1)[1])["kind"] == "model"

    second = run_t2g(_args(), tmp_path, env)
    assert second.returncode == 0, second.output[-4000:]
    assert all(s["hit"] for s in second.stages.values()), [l for l in second.output.splitlines() if " rows " in l or "cache" in l]
    assert "| grpo |" in second.output
