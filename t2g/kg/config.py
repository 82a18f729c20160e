"""The recipe sections of the corpus-graph stages (chunk, graph, resolve, export) and the
recipe that may carry them.

They live here, not in t2g.config, on purpose: t2g.config is part of every existing
stage's code version (t2g.stage.import_closure), so a section added there would change
the cache key of every artifact of every recipe. A recipe that names none of these
sections loads as the plain `Recipe` (nothing about it changes); one that names any of
them loads as `GraphRecipe`, which adds the four optional sections (null: no node, as the
registry treats every optional section).
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args

from pydantic import Field, model_serializer, model_validator

from t2g.config import CollectConfig, LLMSection, Recipe, Section, Source, read_recipe, validate_recipe
from t2g.llm.registry import LLMBackend

GRPO = "@grpo"  # graph.model: the GRPO model the same recipe trains (round 1's)
GRAPH_SECTIONS = ("corpus", "chunk", "graph", "resolve", "export")
FORMATS = ("graphml", "neo4j", "html", "embedded")


class IdentitiesSource(Section):
    """The toy world with identities (t2g.kg.identities): the same entities named many ways
    across documents, some documents long; gold mentions and facts ride along as the gold graph."""

    kind: Literal["identities"]
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)
    split: str = Field("corpus", pattern=r"^[A-Za-z0-9_-]+$", description="tag carried by every document")
    limit: int | None = Field(None, ge=1, description="read at most this many rows")
    n: int = Field(200, ge=0)
    seed: int = 0
    world_seed: int = Field(0, description="the cast of names (t2g.kg.identities.World.seed)")
    long_every: int = Field(10, ge=0, description="every n-th document is long (0: none)")


CorpusSource = Annotated[Union[(*get_args(get_args(Source)[0]), IdentitiesSource)], Field(discriminator="kind")]


class CorpusConfig(CollectConfig):
    """The corpus's own collect: every collect source kind, plus `identities`."""

    sources: list[CorpusSource] = Field(min_length=1)


class ChunkConfig(Section):
    """Token-aware windows of each document (t2g.kg.chunking), with character offsets.

    The documents are the recipe's `corpus` section's (a collect of its own: appending a
    graph to a training recipe then leaves the training recipe's collect, and everything
    trained from it, cached), or with `documents: collect` the training collect's,
    restricted to `splits`."""

    documents: Literal["corpus", "collect"] | None = Field(
        None,
        description="whose documents: the corpus section's or collect's; null: corpus when the recipe has one, else collect",
    )
    splits: list[str] | None = Field(None, description="chunk only documents of these splits; null: all")
    max_tokens: int = Field(256, ge=8, description="tokens per window, at most")
    overlap_tokens: int = Field(32, ge=0, description="tokens shared by consecutive windows")
    tokenizer: str | None = Field(
        None, description="a model folder or hub name whose tokenizer counts tokens; null: whitespace-separated words"
    )

    @model_validator(mode="after")
    def _overlap_below_window(self) -> ChunkConfig:
        if self.overlap_tokens >= self.max_tokens:
            raise ValueError(f"overlap_tokens ({self.overlap_tokens}) must be below max_tokens ({self.max_tokens})")
        return self


class GraphConfig(LLMSection):
    """Graph extraction over chunks with any t2g.llm backend: the LLM settings are
    extract's (LLMSection); `model` may also be "@grpo"."""

    backend: LLMBackend = "transformers"
    entity_types: list[str] = Field(min_length=1)
    relation_types: list[str] = []
    seed: int = 0
    shard_size: int = Field(256, ge=1, description="chunks per cached LLM shard")
    constrained: bool = Field(
        True, description="ask for the graph JSON schema (constrained decoding where the backend has it)"
    )

    @model_validator(mode="after")
    def _model_named(self) -> GraphConfig:
        if not self.model:
            raise ValueError(
                f'model: name a model folder, hub name, served model or "{GRPO}" (the recipe\'s GRPO model)'
            )
        return self


class JudgeConfig(LLMSection):
    """The judge of uncertain fuzzy pairs (t2g.kg.judge): any t2g.llm backend, with the LLM
    settings graph and extract take (LLMSection), asked one small question per pair."""

    backend: Literal["transformers", "vllm", "openai"] = "transformers"
    threshold: float = Field(
        0.75, gt=0, lt=1, description="pairs scoring from here to resolve.fuzzy_threshold are asked"
    )
    context_sentences: int = Field(1, ge=0, le=5, description="sentences quoted per name (each from another document)")
    max_new_tokens: int = Field(32, ge=1, description='the answer is {"same": true} or {"same": false}')
    seed: int = 0
    constrained: bool = Field(
        True, description="ask for the answer's JSON schema (constrained decoding where the backend has it)"
    )

    @model_validator(mode="after")
    def _a_model_it_can_reach(self) -> JudgeConfig:
        if not self.model or self.model.startswith("@"):
            raise ValueError(
                "model: name a model folder, hub name or served model (the recipe's own models are not judges)"
            )
        return self


class ResolveConfig(Section):
    """Entity resolution (t2g.kg.resolve): exact, alias rules, fuzzy, an optional LLM judge;
    never across types."""

    fuzzy_threshold: float = Field(
        0.9, gt=0, le=1, description="character n-gram similarity at or above which names merge (t2g.kg.resolve)"
    )
    judge: JudgeConfig | None = Field(None, description="null: pairs below fuzzy_threshold stay apart")
    # How the stage runs, not what it gives (the same nodes for any value): left out of the
    # dump, so out of the key, like a training section's `launch`.
    shard_size: int | None = Field(
        None, ge=1, exclude=True,
        description="blocking-key rows per shard of fuzzy pairs, on the recipe's task runner; null: one task",
    )  # fmt: skip

    @model_validator(mode="after")
    def _judge_below_fuzzy(self) -> ResolveConfig:
        if self.judge is not None and self.judge.threshold >= self.fuzzy_threshold:
            raise ValueError(
                f"judge.threshold ({self.judge.threshold}) must be below fuzzy_threshold ({self.fuzzy_threshold})"
            )
        return self

    @model_serializer(mode="wrap")
    def _judge_only_when_set(self, handler: Any) -> dict[str, Any]:
        out = handler(self)
        if self.judge is None:
            out.pop("judge", None)  # a recipe without a judge keeps the key it had before judges
        return out


class BlockPairsConfig(Section):
    """The settings the sharded fuzzy pairs depend on (the `resolve-blocks` and
    `resolve-pairs` nodes; derived from `resolve`, never written in a recipe)."""

    fuzzy_threshold: float
    judge_threshold: float | None = None  # None: no judge, uncertain pairs are not kept


class ExportConfig(Section):
    formats: list[Literal["graphml", "neo4j", "html", "embedded"]] = Field(
        ["graphml", "neo4j", "html"], min_length=1, description="files written into the export artifact"
    )


class GraphRecipe(Recipe):
    """A recipe with the corpus-graph stages. Without `chunk` and the others set it runs
    exactly as a Recipe does."""

    corpus: CorpusConfig | None = None
    chunk: ChunkConfig | None = None
    graph: GraphConfig | None = None
    resolve: ResolveConfig | None = None
    export: ExportConfig | None = None

    @property
    def resolve_blocks(self) -> BlockPairsConfig | None:
        """The section of the nodes that compute fuzzy pairs by shards of blocking keys:
        present only with `resolve.shard_size` (else resolve computes them itself)."""
        if self.resolve is None or self.resolve.shard_size is None:
            return None
        judge = self.resolve.judge
        return BlockPairsConfig(
            fuzzy_threshold=self.resolve.fuzzy_threshold, judge_threshold=judge.threshold if judge else None
        )

    @model_validator(mode="after")
    def _corpus_split_exists(self) -> GraphRecipe:
        if self.chunk is None:
            return self
        if self.chunk.documents is None:  # resolved here, so the chunk key says whose documents
            documents = "corpus" if self.corpus is not None else "collect"
            object.__setattr__(self, "chunk", self.chunk.model_copy(update={"documents": documents}))
        which = self.corpus if self.chunk.documents == "corpus" else self.collect
        if which is None:
            raise ValueError(
                "chunk.documents is corpus but the recipe has no corpus section: add one (see configs/tiny-graph.yaml) "
                "or set chunk.documents: collect"
            )
        if self.chunk.splits is not None:
            have = {s.split for s in which.sources}
            if not have & set(self.chunk.splits):
                raise ValueError(
                    f"chunk.splits {self.chunk.splits} names no split of {self.chunk.documents}.sources (they have "
                    f"{sorted(have)}): tag a source with one of them (split: corpus) or change chunk.splits"
                )
        return self


def load_recipe(
    path: str | Path, overrides: list[str] | None = None, store: str | None = None, now: datetime.datetime | None = None
) -> Recipe:
    """t2g.config.load_recipe, validated as a GraphRecipe when the recipe names a graph
    section (after extends and overrides), else as the plain Recipe."""
    return validate(read_recipe(path, overrides, store, now), source=str(path))


def validate(data: dict[str, Any], source: str = "recipe") -> Recipe:
    graph = any(data.get(name) is not None for name in GRAPH_SECTIONS)
    if not graph:  # `chunk: null` and the like: the plain recipe, which has no such keys
        data = {k: v for k, v in data.items() if k not in GRAPH_SECTIONS}
    return validate_recipe(data, source, GraphRecipe if graph else Recipe)
