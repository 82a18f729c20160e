"""The stage registry: each stage's function, its recipe section and the modules whose
source is its code version (see t2g.stage.code_version)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from t2g.stage import StageResult


@dataclass(frozen=True)
class Stage:
    name: str
    function: str  # "module:attr", imported on use so the registry stays cheap
    section: str  # the recipe section that configures it
    modules: tuple[str, ...]  # code that shapes the output
    side: tuple[str, ...] = ()  # side artifacts, stored as <name>-<side>

    def load(self) -> Callable[..., StageResult]:
        module, attr = self.function.split(":")
        return getattr(importlib.import_module(module), attr)


STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage(
            "collect",
            "t2g.stages.collect:collect",
            "collect",
            (
                "t2g.stages.collect",
                "t2g.sources",
                "t2g.toyworld",
                "t2g.metrics",
                "t2g.graph",
            ),
            side=("quarantine",),
        ),
        Stage(
            "extract",
            "t2g.stages.extract:extract",
            "extract",
            ("t2g.stages.extract", "t2g.graph", "t2g.prompts", "t2g.llm"),
        ),
        Stage(
            "filter",
            "t2g.stages.filter:filter_graphs",
            "filter",
            ("t2g.stages.filter", "t2g.graph", "t2g.metrics"),
            side=("dropped",),
        ),
        Stage(
            "reason",
            "t2g.stages.reason:reason",
            "reason",
            ("t2g.stages.reason", "t2g.graph", "t2g.prompts", "t2g.llm"),
            side=("dropped",),
        ),
        # Training: t2g.training and the prompt shape what is learnt; t2g.tiny what a
        # "tiny" base is (evaluation rebuilds it); t2g.distributed how the model is saved.
        Stage(
            "teacher",
            "t2g.stages.teacher:teacher",
            "teacher",
            ("t2g.stages.teacher", "t2g.stages.sft", "t2g.training", "t2g.distributed", "t2g.prompts", "t2g.tiny", "t2g.graph"),
        ),
        Stage(
            "sft",
            "t2g.stages.sft:sft",
            "sft",
            ("t2g.stages.sft", "t2g.training", "t2g.distributed", "t2g.prompts", "t2g.tiny"),
        ),
        Stage(
            "grpo",
            "t2g.stages.grpo:grpo",
            "grpo",
            ("t2g.stages.grpo", "t2g.training", "t2g.distributed", "t2g.prompts", "t2g.rewards", "t2g.graph", "t2g.metrics"),
            side=("rewards",),
        ),
        Stage(
            "evaluate",
            "t2g.stages.evaluate:evaluate",
            "evaluate",
            (
                "t2g.stages.evaluate", "t2g.inference", "t2g.evaluation", "t2g.metrics", "t2g.graph", "t2g.prompts",
                "t2g.training", "t2g.tiny",
            ),  # fmt: skip
        ),
    )
}
