"""The recipe: one validated YAML file per run, one section per stage.

Every model forbids unknown keys, so a typo fails before anything runs, and the error
names the field (`filter.max_entities: Input should be ...`). `--set a.b=value` overrides
parse their value as YAML and are validated exactly like the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class RecipeError(ValueError):
    """A recipe that cannot run; the message names the file and the field to change."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


class HFSource(_Source):
    kind: Literal["hf"]
    dataset: str = Field(description="hub name or local path, as datasets.load_dataset takes it")
    subset: str | None = None
    hf_split: str = "train"
    text_field: str = "text"
    id_field: str | None = None
    streaming: bool = False
    data_files: list[str] | None = None


class AnnotatedSource(_Source):
    """Interchange JSONL: text plus gold graph (and optionally requested types)."""

    kind: Literal["annotated"]
    path: str


class ToyworldSource(_Source):
    kind: Literal["toyworld"]
    n: int = Field(100, ge=0)
    seed: int = 0


Source = Annotated[
    Union[JsonlSource, ParquetSource, TextSource, HFSource, AnnotatedSource, ToyworldSource],
    Field(discriminator="kind"),
]


class CollectConfig(Section):
    sources: list[Source] = Field(min_length=1)
    max_chars: int = Field(100_000, ge=1, description="longer documents are quarantined")
    near_duplicate_threshold: float | None = Field(
        0.9, gt=0, le=1, description="MinHash Jaccard estimate at or above which a document is a near-duplicate; null disables"
    )
    num_perm: int = Field(128, ge=16, le=1024)
    shingle_words: int = Field(3, ge=1, le=16)

    @model_validator(mode="after")
    def _unique_names(self) -> "CollectConfig":
        names = [s.name for s in self.sources]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"source names must be unique, repeated: {dup}")
        return self


# --- extract -------------------------------------------------------------------------


class ExtractConfig(Section):
    backend: Literal["gold", "transformers", "vllm", "openai"] = "gold"
    # Types requested from documents that bring none: sampled per document from these.
    entity_types: list[str] = []
    relation_types: list[str] = []
    absent_types: int = Field(1, ge=0, description="extra types sampled per document beyond those drawn")
    seed: int = 0
    shard_size: int = Field(256, ge=1)


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
    augment: AugmentConfig = AugmentConfig()

    @model_validator(mode="after")
    def _bounds(self) -> "FilterConfig":
        for low, high in (("min_chars", "max_chars"), ("min_entities", "max_entities"), ("min_relations", "max_relations")):
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"{low} ({getattr(self, low)}) is above {high} ({getattr(self, high)})")
        return self


# --- reason --------------------------------------------------------------------------


class ReasonConfig(Section):
    thinking: bool = False
    backend: Literal["transformers", "vllm", "openai"] = "transformers"
    shard_size: int = Field(64, ge=1)


# --- orchestration -------------------------------------------------------------------


class RetryConfig(Section):
    attempts: int = Field(3, ge=0, description="retries after the first try, transient errors only")
    backoff_s: float = Field(2.0, ge=0, description="first delay; doubles each retry, with jitter")


STAGES = ("collect", "extract", "filter", "reason", "sft", "grpo", "evaluate")


class Recipe(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)
    description: str = ""
    store: str = "file://.t2g/store"
    collect: CollectConfig
    extract: ExtractConfig = ExtractConfig()
    filter: FilterConfig = FilterConfig()
    reason: ReasonConfig = ReasonConfig()
    retries: RetryConfig = RetryConfig()


def load_recipe(path: str | Path, overrides: list[str] | None = None, store: str | None = None) -> Recipe:
    """Read, override and validate a recipe. Raises RecipeError naming file and field."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecipeError(f"recipe {path} does not exist") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise RecipeError(f"recipe {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"recipe {path} must be a mapping of sections, got {type(data).__name__}")
    for item in overrides or []:
        apply_override(data, item)
    if store:
        data["store"] = store
    return validate_recipe(data, source=str(path))


def validate_recipe(data: dict[str, Any], source: str = "recipe") -> Recipe:
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            lines.append(f"  {where}: {err['msg']}")
        raise RecipeError(f"{source} is not a valid recipe:\n" + "\n".join(lines)) from None


def apply_override(data: dict[str, Any], item: str) -> None:
    """Apply `section.key=value` (value parsed as YAML) to a raw recipe mapping."""
    dotted, sep, raw = item.partition("=")
    if not sep or not dotted.strip():
        raise RecipeError(f"override {item!r} must look like section.key=value")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise RecipeError(f"override {item!r}: value is not valid YAML: {exc}") from None
    keys = dotted.strip().split(".")
    node: Any = data
    for i, key in enumerate(keys[:-1]):
        if isinstance(node, list):
            node = _list_item(node, key, keys[: i + 1], item)
            continue
        if not isinstance(node, dict):
            raise RecipeError(f"override {item!r}: {'.'.join(keys[:i])} is not a section")
        node = node.setdefault(key, {})
    last = keys[-1]
    if isinstance(node, list):
        index = _index(node, last, keys, item)
        node[index] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise RecipeError(f"override {item!r}: {'.'.join(keys[:-1])} is not a section")


def _index(node: list, key: str, keys: list[str], item: str) -> int:
    if not key.lstrip("-").isdigit() or not -len(node) <= int(key) < len(node):
        raise RecipeError(f"override {item!r}: {'.'.join(keys)} is not an index of a {len(node)}-item list")
    return int(key)


def _list_item(node: list, key: str, keys: list[str], item: str) -> Any:
    return node[_index(node, key, keys, item)]
