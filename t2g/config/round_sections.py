"""Later rounds (t2g.rounds): rejection sampling's section and the overrides of each
round after the first."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from t2g.config.data_sections import FilterConfig
from t2g.config.llm_section import LLMSection
from t2g.config.section import Section
from t2g.llm.registry import LocalBackend  # the registered LLM backends, read at validation


class SampleConfig(LLMSection):
    """Rejection sampling (t2g.stages.sample): `k` answers per labelled document from the
    round before's model, scored with the registered rewards against the teacher's label
    and checked like the filter checks labels; the best one is kept when it reaches
    `min_reward`. Runs in later rounds only (`rounds`); this section is their default."""

    model: Literal["grpo", "sft"] = Field("grpo", description="which model of the round before answers")
    backend: LocalBackend = "transformers"
    k: int = Field(4, ge=1, le=64, description="answers sampled per document")
    max_new_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.8, ge=0)
    seed: int = 0
    constrained: bool = Field(False, description="JSON-schema constrained sampling (never with thinking rows)")
    splits: list[str] | None = Field(None, description="sample documents of these splits; null: every labelled split")
    limit: int | None = Field(
        None, ge=1, description="sample at most this many documents (a fixed pseudo-random subset)"
    )
    dropped: bool = Field(False, description="also sample the documents the filter dropped (filter-dropped)")
    rewards: list[str] = ["f1_entities", "f1_relations"]
    reward_weights: list[float] | None = Field(None, description="one per reward; null: all 1")
    min_reward: float = Field(0.8, ge=0, le=1, description="the weighted mean reward the best answer must reach")
    consensus: float | None = Field(
        None,
        gt=0,
        le=1,
        description="documents without a usable teacher label: keep the answer agreeing best "
        "with the other samples (mean reward against them) when it reaches this; null: reject them",
    )
    checks: FilterConfig | None = Field(
        None, description="the label checks answers must pass; null: the recipe's filter section"
    )

    @model_validator(mode="after")
    def _sampling(self) -> SampleConfig:
        if self.k > 1 and self.temperature == 0:
            raise ValueError(
                f"k={self.k} answers at temperature 0 are {self.k} copies of one: raise temperature or set k: 1"
            )
        if self.reward_weights is not None and len(self.reward_weights) != len(self.rewards):
            raise ValueError(
                f"reward_weights has {len(self.reward_weights)} values for {len(self.rewards)} rewards {self.rewards}"
            )
        if self.reward_weights is not None and sum(self.reward_weights) <= 0:
            raise ValueError("reward_weights must have a positive sum")
        return self


class RoundConfig(Section):
    """One round after the first: overrides of the round before's sections (the recipe's
    own for round 2), merged key by key like `extends`. `{}` repeats the round before."""

    sample: dict[str, Any] = {}
    sft: dict[str, Any] = {}
    grpo: dict[str, Any] = {}


MAX_ROUNDS = 16  # rounds after the first
