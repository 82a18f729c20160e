"""`Recipe`: the whole recipe, one section per stage plus store, retries and
orchestration, with the checks that span sections (rounds, the held-out split, the
`@teacher`/`@reasoner` models)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from t2g.config.data_sections import CollectConfig, ExtractConfig, FilterConfig, ReasonConfig
from t2g.config.round_sections import MAX_ROUNDS, RoundConfig, SampleConfig
from t2g.config.section import REASONER, TEACHER, Section, merged_round
from t2g.config.store_uri import check_store_uri
from t2g.config.train_sections import EvaluateConfig, GrpoConfig, ReasonerConfig, SftConfig, TeacherConfig

# --- orchestration -------------------------------------------------------------------


class RetryConfig(Section):
    attempts: int = Field(3, ge=0, description="retries after the first try, transient errors only")
    backoff_s: float = Field(2.0, ge=0, description="first delay; doubles each retry, with jitter")


class WorkPools(Section):
    """Prefect work pools (deployments/prefect.yaml, `t2g stack up`): CPU stages run on
    `cpu`, GPU stages on `gpu`. The embedded stack uses one process pool for both."""

    cpu: str = Field("t2g-local", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    gpu: str = Field("t2g-local", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class OrchestrationConfig(Section):
    """How stages are mapped onto Prefect: task runner for sharded CPU stages, pools, GPU slots."""

    task_runner: Literal["threads", "dask", "ray"] = Field(
        "threads", description="runs the shards of sharded CPU stages: threads, or a Dask/Ray cluster (extras)"
    )
    max_workers: int = Field(2, ge=1, description="threads, or local Dask/Ray workers when no address is given")
    address: str | None = Field(None, description="an existing Dask scheduler or Ray cluster; null: start a local one")
    filter_shard_size: int | None = Field(
        None, ge=1, description="rows per filter shard, mapped over the task runner; null: filter runs as one task"
    )
    gpu_stages: list[str] = Field(
        [], description="stages that hold a slot of the global concurrency limit `gpu_limit` while they run (strict)"
    )
    gpu_limit: str = Field("gpu", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="global concurrency limit name")
    gpu_slots: int = Field(1, ge=1, description="slots of that limit `t2g stack up` creates (GPUs on the host)")
    pools: WorkPools = WorkPools()


class Recipe(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)
    description: str = ""
    store: str = "file://.t2g/store"
    # The LLM response cache (t2g.llm.cache): a store URI whose `_llm_cache/` holds it;
    # null: the recipe's own store. Recipes that name one store share one cache.
    llm_cache: str | None = Field(None, description="store URI of the LLM response cache; null: the recipe's store")
    collect: CollectConfig
    extract: ExtractConfig = ExtractConfig()
    filter: FilterConfig = FilterConfig()
    reason: ReasonConfig = ReasonConfig()
    teacher: TeacherConfig | None = None
    reasoner: ReasonerConfig | None = None
    sft: SftConfig = SftConfig()
    grpo: GrpoConfig = GrpoConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    # Rejection sampling and further rounds (t2g.rounds): `sample` is every later round's
    # default; each entry of `rounds` is one more round (sample, sft, grpo) after the first.
    sample: SampleConfig = SampleConfig()
    rounds: list[RoundConfig] = Field(
        [], max_length=MAX_ROUNDS, description="rounds after the first, each overriding the one before"
    )
    retries: RetryConfig = RetryConfig()
    orchestration: OrchestrationConfig = OrchestrationConfig()

    def round_section(self, name: str, round: int) -> Section:
        """Section `name` (sample, sft or grpo) as round `round` (2, 3, …) runs it: the
        round before's (round 1: the recipe's own) with this round's overrides merged over
        it. A sample section without `checks` takes the recipe's filter section."""
        if not 2 <= round <= len(self.rounds) + 1:
            raise ValueError(f"round {round}: this recipe has rounds 1 to {len(self.rounds) + 1}")
        base = getattr(self, name) if round == 2 else self.round_section(name, round - 1)
        merged = merged_round(base, getattr(self.rounds[round - 2], name))
        if isinstance(merged, SampleConfig) and merged.checks is None:
            merged = merged.model_copy(update={"checks": self.filter})
        return merged

    @field_validator("store")
    @classmethod
    def _store_inside_its_root(cls, store: str) -> str:
        return check_store_uri(store)

    @field_validator("llm_cache")
    @classmethod
    def _cache_inside_its_root(cls, uri: str | None) -> str | None:
        return None if uri is None else check_store_uri(uri)

    @model_validator(mode="after")
    def _rounds_valid(self) -> Recipe:
        if self.sft.start != "base":
            raise ValueError(
                'sft.start: "previous" means the round before\'s model; set it in a later round (rounds[i].sft)'
            )
        for r in range(2, len(self.rounds) + 2):
            for name in RoundConfig.model_fields:
                try:
                    self.round_section(name, r)
                except ValidationError as exc:
                    err = exc.errors()[0]
                    where = ".".join(str(p) for p in err["loc"])
                    raise ValueError(
                        f"rounds.{r - 2}.{name}{'.' + where if where else ''}: {err['msg']} (round {r})"
                    ) from None
        return self

    @model_validator(mode="after")
    def _evaluate_split_held_out(self) -> Recipe:
        # Whatever extract labels flows into SFT and GRPO; labelling the evaluate split
        # would train the student on its own test documents and inflate every score.
        held_out = self.evaluate.split
        labelled = self.extract.splits
        if any(s.split == held_out for s in self.collect.sources) and (labelled is None or held_out in labelled):
            others = sorted({s.split for s in self.collect.sources} - {held_out})
            raise ValueError(
                f"extract.splits {'labels every split' if labelled is None else labelled}, so the student would "
                f"train on the evaluate split {held_out!r}: set extract.splits to the training splits"
                + (f" (e.g. {others})" if others else "")
            )
        if self.teacher is None and TEACHER in (self.extract.model, self.sft.model):
            which = "extract.model" if self.extract.model == TEACHER else "sft.model"
            raise ValueError(
                f'{which} is "{TEACHER}" but the recipe has no teacher section: add one (see configs/tiny.yaml)'
            )
        if self.reasoner is not None and self.reasoner.model == TEACHER and self.teacher is None:
            raise ValueError(
                f'reasoner.model is "{TEACHER}" but the recipe has no teacher section: add one, or set reasoner.model: tiny'
            )
        if self.reason.thinking and self.reason.model == REASONER and self.reasoner is None:
            raise ValueError(
                f'reason.model is "{REASONER}" but the recipe has no reasoner section: add one (see configs/tiny-think.yaml)'
            )
        for which, section in (("teacher", self.teacher), ("reasoner", self.reasoner)):
            if section is not None and section.split == held_out:
                raise ValueError(
                    f"{which}.split is the evaluate split {held_out!r}: the {which} would learn the test documents' "
                    f"gold; give the {which} its own split (e.g. seed)"
                )
        return self
