"""bench/gpu_train.py runs only on a GPU machine, never in CI: these keep its driver true
to the flows on the CPU, with a recipe cut down to seconds."""

from __future__ import annotations

from pathlib import Path

from bench.gpu_train import run_recipe
from t2g.config import load_recipe
from t2g.dag import plan

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
GOLD = str(CONFIGS / "tiny-gold.yaml")

SMALL = [
    "collect.sources=[{name: s, kind: toyworld, split: seed, n: 40, seed: 1}, {name: t, kind: toyworld, split: test, n: 6, seed: 3}]",
    "extract.splits=[seed]",
    "sft.max_steps=3",
    "sft.tiny.pretrain_steps=2",
    "grpo.max_steps=1",
    "evaluate.limit=3",
]


def test_recipe_runs_every_stage_then_reruns_only_what_an_override_changes(tmp_path: Path):
    work = [f"sft.work_dir={tmp_path / 'work'}", f"grpo.work_dir={tmp_path / 'work'}"]
    store = f"file://{tmp_path / 'store'}"
    first = run_recipe(GOLD, store, SMALL + work, tmp_path / "out")
    assert list(first["stages"]) == ["collect", "extract", "filter", "reason", "sft", "grpo", "evaluate"]
    assert not any(s["hit"] for s in first["stages"].values())
    assert set(first["f1"]) == {"base", "sft", "grpo"}
    assert set(first["comparisons"]) == {"sft - base", "grpo - sft"}
    assert (tmp_path / "out" / "report.md").read_text().startswith("###")
    assert (tmp_path / "out" / "rewards.png").read_bytes()[:4] == b"\x89PNG"

    longer = run_recipe(GOLD, store, SMALL + work + ["grpo.max_steps=2", "evaluate.models=[sft, grpo]"], None)
    hits = {stage: s["hit"] for stage, s in longer["stages"].items()}
    assert hits == {
        "collect": True,
        "extract": True,
        "filter": True,
        "reason": True,
        "sft": True,
        "grpo": False,
        "evaluate": False,
    }
    assert set(longer["f1"]) == {"sft", "grpo"}


def test_sft_continues_the_teacher_in_the_recipe_graph():
    # The driver walks t2g.dag's plan, as the flows do: the teacher feeds extract and sft
    # in the default recipe, and nothing in the gold-labelled one.
    inputs = {n.stage: dict(n.inputs) for n in plan(load_recipe(CONFIGS / "tiny.yaml"))}
    assert inputs["extract"] == {"docs": "collect", "teacher": "teacher"}
    assert inputs["sft"] == {"reasoned": "reason", "teacher": "teacher"}
    assert inputs["evaluate"] == {"docs": "collect", "sft_model": "sft", "grpo_model": "grpo"}
    plain = {n.stage: dict(n.inputs) for n in plan(load_recipe(GOLD))}
    assert "teacher" not in plain and plain["sft"] == {"reasoned": "reason"}
