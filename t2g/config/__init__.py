"""The recipe: one validated YAML file per run, one section per stage.

Every model forbids unknown keys, so a typo fails before anything runs, and the error
names the field (`filter.max_entities: Input should be ...`). `--set a.b=value` overrides
parse their value as YAML and are validated exactly like the file.

Modules: `section` (the base of every section, how sections merge), `data_sections`
(collect, extract, filter, reason), `llm_section` (how a stage reaches an LLM, which
variable may hold its key), `train_sections` (teacher, reasoner, sft, grpo, evaluate),
`round_sections` (sample, later rounds), `recipe` (the whole `Recipe`), `loading` (the
file, `extends`, `--set`, validation) and `store_uri` (`{date}`, the root check).
Every public name is re-exported here: t2g.config stays the one place recipes come from.
"""

from __future__ import annotations

from t2g.config.data_sections import (
    AnnotatedSource,
    AugmentConfig,
    CollectConfig,
    ExtractConfig,
    FileSource,
    FilterConfig,
    HFSource,
    JsonlSource,
    ParquetSource,
    ReasonConfig,
    Source,
    TextSource,
    ToyworldSource,
)
from t2g.config.llm_section import API_KEY_ENV_PATTERN, CREDENTIAL_PREFIXES, LLMSection, Price, check_api_key_env
from t2g.config.loading import MAX_ERRORS_SHOWN, MAX_EXTENDS, apply_override, load_recipe, read_recipe, validate_recipe
from t2g.config.recipe import OrchestrationConfig, Recipe, RetryConfig, WorkPools
from t2g.config.round_sections import MAX_ROUNDS, RoundConfig, SampleConfig
from t2g.config.section import REASONER, TEACHER, Section, merge_sections, merged_round, section_fields
from t2g.config.store_uri import check_store_uri, dated_store, utc_now
from t2g.config.train_sections import (
    EvaluateConfig,
    GrpoConfig,
    LaunchSettings,
    LoraSettings,
    ReasonerConfig,
    SftConfig,
    SupervisedSection,
    TeacherConfig,
    TinyModelConfig,
    TrainSection,
    check_trl_fields,
)
from t2g.recipe_input import (
    MAX_DEPTH,
    MAX_NODES,
    MAX_OVERRIDE_KEYS,
    MAX_RECIPE_BYTES,
    RecipeError,
    check_deployment_overrides,
    check_recipe_path,
    load_yaml,
    parse_override,
    read_recipe_text,
    shown,
    yaml_error,
)

__all__ = [
    # sections
    "Section", "TEACHER", "REASONER", "merge_sections", "section_fields", "merged_round",
    "AnnotatedSource", "FileSource", "HFSource", "JsonlSource", "ParquetSource", "Source", "TextSource",
    "ToyworldSource", "CollectConfig", "ExtractConfig", "AugmentConfig", "FilterConfig", "ReasonConfig",
    "Price", "LLMSection", "API_KEY_ENV_PATTERN", "CREDENTIAL_PREFIXES", "check_api_key_env",
    "TinyModelConfig", "LoraSettings", "LaunchSettings", "TrainSection", "SupervisedSection", "TeacherConfig",
    "ReasonerConfig", "SftConfig", "GrpoConfig", "EvaluateConfig", "check_trl_fields",
    "SampleConfig", "RoundConfig", "MAX_ROUNDS",
    "RetryConfig", "WorkPools", "OrchestrationConfig", "Recipe",
    # loading
    "MAX_EXTENDS", "MAX_ERRORS_SHOWN", "load_recipe", "read_recipe", "validate_recipe", "apply_override",
    "check_store_uri", "dated_store", "utc_now",
    # the input guards (t2g.recipe_input)
    "MAX_DEPTH", "MAX_NODES", "MAX_OVERRIDE_KEYS", "MAX_RECIPE_BYTES", "RecipeError", "check_deployment_overrides",
    "check_recipe_path", "load_yaml", "parse_override", "read_recipe_text", "shown", "yaml_error",
]  # fmt: skip
