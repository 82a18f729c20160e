"""The data stages' sections: collect (and its sources), extract, filter, reason."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from t2g.config.llm_section import LLMSection
from t2g.config.section import Section
from t2g.llm.registry import LabelBackend, LLMBackend  # the registered LLM backends, read at validation

# --- collect -------------------------------------------------------------------------


class _Source(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)
    split: str = Field("train", pattern=r"^[A-Za-z0-9_-]+$", description="tag carried by every document")
    limit: int | None = Field(None, ge=1, description="read at most this many rows")


class FileSource(_Source):
    path: str
    text_field: str = "text"
    id_field: str | None = Field(None, description="keep the source's own id in metadata")


class JsonlSource(FileSource):
    kind: Literal["jsonl"]


class ParquetSource(FileSource):
    kind: Literal["parquet"]


class TextSource(_Source):
    """A plain-text file (one document a line) or a folder of .txt files (one each)."""

    kind: Literal["text"]
    path: str
    follow_symlinks: bool = Field(False, description="a folder's symlinks are read, if they lead inside the folder")


class HFSource(_Source):
    kind: Literal["hf"]
    dataset: str = Field(description="hub name or local path, as datasets.load_dataset takes it")
    subset: str | None = None
    hf_split: str = "train"
    text_field: str = "text"
    id_field: str | None = None
    streaming: bool = False
    data_files: list[str] | None = None
    revision: str | None = Field(None, description="hub dataset commit, tag or branch; null: unpinned, never cached")


class AnnotatedSource(_Source):
    """Interchange JSONL: text plus gold graph (and optionally requested types)."""

    kind: Literal["annotated"]
    path: str


class ToyworldSource(_Source):
    kind: Literal["toyworld"]
    n: int = Field(100, ge=0)
    seed: int = 0
    # The shape of documents (t2g.toyworld.World); the cast of names is the same whatever
    # these say, so sources with different shapes still share one world.
    max_facts: int = Field(2, ge=1, description="fact sentences per document, at most")
    distractor_rate: float = Field(0.5, ge=0, le=1, description="chance of a sentence with nothing to extract")


Source = Annotated[
    JsonlSource | ParquetSource | TextSource | HFSource | AnnotatedSource | ToyworldSource,
    Field(discriminator="kind"),
]


class CollectConfig(Section):
    sources: list[Source] = Field(min_length=1)
    max_chars: int = Field(100_000, ge=1, description="longer documents are quarantined")
    near_duplicate_threshold: float | None = Field(
        0.9,
        gt=0,
        le=1,
        description="MinHash Jaccard estimate at or above which a document is a near-duplicate; null disables",
    )
    num_perm: int = Field(128, ge=16, le=1024)
    shingle_words: int = Field(3, ge=1, le=16)

    @model_validator(mode="after")
    def _unique_names(self) -> CollectConfig:
        names = [s.name for s in self.sources]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"source names must be unique, repeated: {dup}")
        return self


# --- extract -------------------------------------------------------------------------


class ExtractConfig(LLMSection):
    backend: LabelBackend = "gold"
    # Types requested from documents that bring none: sampled per document from these.
    entity_types: list[str] = []
    relation_types: list[str] = []
    absent_types: int = Field(1, ge=0, description="extra types sampled per document beyond those drawn")
    seed: int = 0
    shard_size: int = Field(256, ge=1)
    splits: list[str] | None = Field(None, description="label only documents of these splits; null: all")


# --- filter --------------------------------------------------------------------------


class AugmentConfig(Section):
    variants: int = Field(1, ge=0, description="extra type-subset variants per kept example")
    keep_types: float = Field(0.6, gt=0, le=1, description="share of present types kept in a variant")
    negative_types: int = Field(1, ge=0, description="absent types added to a variant's request")
    seed: int = 0


class FilterConfig(Section):
    min_chars: int = Field(20, ge=0)
    max_chars: int = Field(20_000, ge=1)
    min_entities: int = Field(1, ge=0)
    max_entities: int = Field(50, ge=0)
    min_relations: int = Field(0, ge=0)
    max_relations: int = Field(50, ge=0)
    # What an ungrounded teacher entity (its text not in the document) costs: the whole
    # document ("drop"), or only that entity and the relations naming it ("repair"; the
    # document is kept if the rest passes every other check, counted as repaired).
    ungrounded: Literal["drop", "repair"] = "drop"
    augment: AugmentConfig = AugmentConfig()

    @model_validator(mode="after")
    def _bounds(self) -> FilterConfig:
        for low, high in (
            ("min_chars", "max_chars"),
            ("min_entities", "max_entities"),
            ("min_relations", "max_relations"),
        ):
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"{low} ({getattr(self, low)}) is above {high} ({getattr(self, high)})")
        return self


# --- reason --------------------------------------------------------------------------


class ReasonConfig(LLMSection):
    thinking: bool = False
    backend: LLMBackend = "transformers"
    shard_size: int = Field(64, ge=1)
    max_think_chars: int = Field(8000, ge=1, description="longer reasoning is dropped")
    max_new_tokens: int = Field(2048, ge=1)
    temperature: float = Field(0.6, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    seed: int = 0
