"""What a stage task runs inside: its Secret blocks are read once per task run."""

from __future__ import annotations

from types import SimpleNamespace

from prefect import flow, task

from t2g.config import load_recipe
from t2g.llm import resolve_api_key
from tasks import stage_task
from tests.support.flowrun import REPO


def test_a_secret_block_is_read_once_per_task_run(prefect_api, monkeypatch):
    reads: list[str] = []
    monkeypatch.setattr(stage_task, "secret", lambda name: reads.append(name) or f"key-of-{name}")
    recipe = load_recipe(REPO / "configs" / "tiny.yaml")
    cfg = SimpleNamespace(api_key_block="teacher-key", api_key_env=None)

    @task
    def generate_five_times() -> list[str]:  # a stage asks for its key at each generate call
        with stage_task.stage_context(recipe, "extract"):
            return [resolve_api_key(cfg) for _ in range(5)]

    @flow
    def two_task_runs() -> list[list[str]]:
        return [generate_five_times(), generate_five_times()]

    assert two_task_runs() == [["key-of-teacher-key"] * 5] * 2
    assert reads == ["teacher-key"] * 2  # once per task run: a rotated key is read by the next run
