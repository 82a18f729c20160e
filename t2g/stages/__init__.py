"""The stage registry: the DAG as data.

Each entry says everything the orchestration needs to know about a stage, and nothing is
wired anywhere else: the function to run, the recipe section that configures it, its named
inputs (which stage's artifact feeds which parameter of the function, and under what
recipe condition), its side outputs, how it is sharded and whether it can use a GPU.
t2g.dag computes the graph of a recipe from these entries; the flows walk that graph.

Adding a stage is one module with its function plus one entry here. The code version of a
stage (part of its cache key) is derived from its module and every t2g module it imports
(t2g.stage.code_version), so it needs no list kept by hand.

Rounds (R1's rejection sampling, then SFT and RL again): a stage marked `rounds="every"`
runs again in each later round of a recipe (`rounds`), one marked "later" in later rounds
only; the node of round r > 1 is `<stage>-<r>` (t2g.rounds) and `registered` finds the
entry it runs. An input says which round's artifact it takes (`Input.round`).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from t2g import rounds as _rounds
from t2g.config import REASONER, TEACHER
from t2g.reporting import Kind, ReportNode, checked
from t2g.stage import StageResult, code_version, import_closure


@dataclass(frozen=True)
class Input:
    """One named input: the artifact of `stage` is passed as the function's `param`.

    `when` (section config -> bool): the input exists only when it says so (extract takes
    the teacher only when extract.model is "@teacher"). `optional`: the stage also runs
    without it (evaluate-only scores an SFT model that has no GRPO successor). `side`: the
    stage's side artifact of that name (`filter-dropped`) instead of its main one.

    `round`, for an input from a stage that runs in several rounds: "same" takes the node
    of this node's round (none in a round where that stage has no node: round 1's sft
    takes no samples), "previous" the round before's (none in round 1), "each" every
    round's, as `param`, `param_2`, … (t2g.rounds.round_param)."""

    param: str
    stage: str
    when: Callable[[Any], bool] | None = None
    optional: bool = False
    side: str | None = None
    round: Literal["same", "previous", "each"] = "same"

    def active(self, section: Any) -> bool:
        return self.when is None or bool(self.when(section))


@dataclass(frozen=True)
class Stage:
    name: str
    function: str  # "module:attr", imported on use so the registry stays cheap
    # The recipe section that configures it; when the recipe sets that section to null
    # the stage has no node. None: a stage without settings (it gets {}).
    section: str | None
    inputs: tuple[Input, ...] = ()  # the first is the one a sharded stage is cut along
    side: tuple[str, ...] = ()  # side artifacts, stored as <name>-<side>
    # "llm": one cached task per shard of prompts; "rows": row shards on the recipe's task
    # runner (Dask, Ray, threads). `shard_size(recipe)`: rows per shard, None: not sharded.
    sharding: Literal["llm", "rows"] | None = None
    shard_size: Callable[[Any], int | None] | None = None
    gpu: bool = False  # trains or generates with a model: may hold a GPU slot
    # A stage whose output is a model folder (downstream stages receive a local path).
    model: bool = False
    # Output rows are input rows kept, dropped with a reason or added as variants (t2g.counts);
    # False for stages whose output is a training log or predictions.
    row_wise: bool = True
    # "module:attr", called with the stage's section when the recipe's graph is built
    # (before any stage runs); raises ValueError naming the field to change.
    check: str | None = None
    # "module:attr", called with the stage's section: {input name: fingerprint} for every
    # file, folder or hub object the section names outside the store (t2g.fingerprint).
    # Fingerprints join the stage's key; None (an unpinned hub object) means never cached.
    external: str | None = None
    # "once": a node in round 1 only; "every": also in each later round of the recipe, with
    # the round's merged section (Recipe.round_section); "later": in later rounds only.
    rounds: Literal["once", "every", "later"] = "once"
    # "module:attr", called with a node's summary, a view of the node and the report's
    # kind: what the stage says about its output in the run's reports, {part: lines}
    # (t2g.reporting). None: the generic rows only (counts, drop reasons, plots).
    report: str | None = None
    # Its function prints so much (model loading, generation) that the task keeps prints
    # out of the run log; a stage whose output is a model folder (trainers) always does.
    quiet: bool = False

    @property
    def log_prints(self) -> bool:
        return not (self.model or self.quiet)

    def report_parts(self, summary: dict[str, Any], node: ReportNode, kind: Kind) -> dict[str, list[str]]:
        return checked(_attr(self.report)(summary, node, kind), self.name) if self.report else {}

    def in_round(self, round: int) -> bool:
        return round == 1 if self.rounds == "once" else round > 1 if self.rounds == "later" else round >= 1

    def load(self) -> Callable[..., StageResult]:
        return _attr(self.function)

    def check_section(self, section: Any) -> None:
        if self.check:
            _attr(self.check)(section)

    def externals(self, section: Any) -> dict[str, str | None]:
        """The fingerprints of what `section` names outside the store ({} without a hook;
        a plain dict section, as scripts pass, names nothing the hook can read)."""
        if not self.external or isinstance(section, dict):
            return {}
        return dict(_attr(self.external)(section))

    @property
    def module(self) -> str:
        return self.function.split(":")[0]

    def code_version(self) -> str:
        """The digest of every module the stage's output depends on (its cache key's code)."""
        return module_version(self.module)

    def active_inputs(self, section: Any) -> tuple[Input, ...]:
        return tuple(i for i in self.inputs if i.active(section))

    def shards(self, recipe: Any) -> int | None:
        """Rows per shard under this recipe; None when the stage runs as one task."""
        return self.shard_size(recipe) if self.sharding and self.shard_size else None


@functools.cache
def module_version(module: str) -> str:
    """The code version of `module` and all it imports (t2g.stage.code_version), read once
    per process: a process runs the code it started with. Kept here, in the registry (not
    stage code), so that remembering it changed no stage's key. A test that edits a module
    to see a version move calls `module_version.cache_clear()`."""
    return code_version(*import_closure(module))


def _attr(ref: str) -> Any:
    module, attr = ref.split(":")
    return getattr(importlib.import_module(module), attr)


def _uses_teacher(section: Any) -> bool:
    return getattr(section, "model", None) == TEACHER


def _uses_reasoner(section: Any) -> bool:
    return bool(getattr(section, "thinking", False)) and getattr(section, "model", None) == REASONER


def _uses_grpo(section: Any) -> bool:
    return getattr(section, "model", None) == "@grpo"  # t2g.kg.config.GRPO (not imported: the registry stays cheap)


def _from_base(section: Any) -> bool:
    return getattr(section, "start", "base") == "base"


def _registry(*stages: Stage) -> dict[str, Stage]:
    return {s.name: s for s in stages}


def registered(name: str, registry: dict[str, Stage] | None = None) -> Stage:
    """The registry entry node `name` runs: the stage of that name, or for a later
    round's node (`sft-2`) the stage it repeats. KeyError when there is none."""
    registry = STAGES if registry is None else registry
    if name in registry:
        return registry[name]
    stage, round = _rounds.parse(name)
    if stage in registry and round > 1 and registry[stage].in_round(round):
        return registry[stage]
    raise KeyError(name)


STAGES: dict[str, Stage] = _registry(
    Stage(
        "collect",
        "t2g.stages.collect:collect",
        "collect",
        side=("quarantine",),
        external="t2g.fingerprint:collect_inputs",
    ),
    # The tiny teacher: a model bootstrapped on collect's gold documents of one split.
    Stage(
        "teacher",
        "t2g.stages.teacher:teacher",
        "teacher",
        (Input("docs", "collect"),),
        gpu=True,
        model=True,
        row_wise=False,
    ),
    Stage(
        "extract",
        "t2g.stages.extract:extract",
        "extract",
        (Input("docs", "collect"), Input("teacher", "teacher", when=_uses_teacher)),
        sharding="llm",
        shard_size=lambda r: r.extract.shard_size if r.extract.backend != "gold" else None,
        gpu=True,
        external="t2g.fingerprint:llm_inputs",
        report="t2g.stages.extract:run_report",
    ),
    Stage(
        "filter",
        "t2g.stages.filter:filter_graphs",
        "filter",
        (Input("table", "extract"),),
        side=("dropped", "repaired"),  # repaired: only with filter.ungrounded: repair
        sharding="rows",
        shard_size=lambda r: r.orchestration.filter_shard_size,
        report="t2g.stages.filter:run_report",
    ),
    # The tiny reasoner: a model bootstrapped on the toy world's rationales of one split.
    Stage(
        "reasoner",
        "t2g.stages.reasoner:reasoner",
        "reasoner",
        (Input("docs", "collect"), Input("teacher", "teacher", when=_uses_teacher)),
        gpu=True,
        model=True,
        row_wise=False,
    ),
    Stage(
        "reason",
        "t2g.stages.reason:reason",
        "reason",
        (Input("examples", "filter"), Input("reasoner", "reasoner", when=_uses_reasoner)),
        side=("dropped",),
        sharding="llm",
        shard_size=lambda r: r.reason.shard_size if r.reason.thinking else None,
        gpu=True,
        external="t2g.fingerprint:llm_inputs",
    ),
    Stage(
        "sft",
        "t2g.stages.sft:sft",
        "sft",
        (
            Input("reasoned", "reason"),
            Input("teacher", "teacher", when=lambda s: _uses_teacher(s) and _from_base(s)),
            Input("samples", "sample"),  # a later round's accepted samples, added to the teacher's data
            Input("start", "grpo", round="previous", when=lambda s: not _from_base(s)),
        ),
        gpu=True,
        model=True,
        row_wise=False,
        external="t2g.fingerprint:sft_inputs",
        rounds="every",
    ),
    Stage(
        "grpo",
        "t2g.stages.grpo:grpo",
        "grpo",
        (Input("reasoned", "reason"), Input("sft_model", "sft")),
        side=("rewards",),
        check="t2g.rewards:check_section",
        gpu=True,
        model=True,
        row_wise=False,
        rounds="every",
        report="t2g.stages.grpo:run_report",
    ),
    # Rejection sampling: the round before's model answers each labelled document k times;
    # the best answer that passes the filter's checks and reaches min_reward is kept.
    Stage(
        "sample",
        "t2g.stages.sample:sample",
        "sample",
        (
            Input("examples", "reason"),
            Input("model", "grpo", round="previous", when=lambda s: s.model == "grpo"),
            Input("model", "sft", round="previous", when=lambda s: s.model == "sft"),
            Input("dropped", "filter", side="dropped", when=lambda s: s.dropped),
        ),
        side=("rejected",),
        check="t2g.rewards:check_section",
        gpu=True,
        rounds="later",
        report="t2g.stages.sample:run_report",
    ),
    Stage(
        "evaluate",
        "t2g.stages.evaluate:evaluate",
        "evaluate",
        (
            Input("docs", "collect"),
            Input("sft_model", "sft", round="each"),
            Input("grpo_model", "grpo", optional=True, round="each"),
        ),
        gpu=True,
        row_wise=False,
        external="t2g.fingerprint:benchmark_inputs",
        report="t2g.stages.evaluate:run_report",
        quiet=True,  # loads and prompts every round's models
    ),
    # The corpus graph (docs/graph.md): optional sections (t2g.kg.config), so a recipe
    # without them has none of these nodes. Documents of collect's corpus split -> chunks
    # -> grounded mentions and relations -> nodes and edges -> files for graph tools.
    Stage(
        "corpus", "t2g.stages.corpus:corpus", "corpus", side=("quarantine",), external="t2g.fingerprint:collect_inputs"
    ),
    Stage(
        "chunk",
        "t2g.stages.chunk:chunk",
        "chunk",
        (
            Input("docs", "corpus", when=lambda s: s.documents == "corpus"),
            Input("docs", "collect", when=lambda s: s.documents == "collect"),
        ),
        row_wise=False,
    ),
    Stage(
        "graph-extract",
        "t2g.stages.graph_extract:graph_extract",
        "graph",
        (Input("chunks", "chunk"), Input("model", "grpo", when=_uses_grpo)),
        side=("relations", "dropped"),
        sharding="llm",
        shard_size=lambda r: r.graph.shard_size,
        gpu=True,
        row_wise=False,
        external="t2g.stages.graph_extract:external_inputs",
    ),
    # With resolve.shard_size only (the derived section `resolve_blocks`): fuzzy pairs by
    # shards of blocking keys, each block in one shard, on the recipe's task runner.
    Stage(
        "resolve-blocks",
        "t2g.stages.resolve_pairs:resolve_blocks",
        "resolve_blocks",
        (Input("mentions", "graph-extract"),),
        row_wise=False,
    ),
    Stage(
        "resolve-pairs",
        "t2g.stages.resolve_pairs:resolve_pairs",
        "resolve_blocks",
        (Input("blocks", "resolve-blocks"),),
        sharding="rows",
        shard_size=lambda r: r.resolve.shard_size,
        row_wise=False,
    ),
    Stage(
        "resolve",
        "t2g.stages.resolve:resolve",
        "resolve",
        (
            Input("mentions", "graph-extract"),
            Input("relations", "graph-extract", side="relations"),
            Input("chunks", "chunk"),
            Input("pairs", "resolve-pairs", when=lambda s: s.shard_size is not None),
        ),
        side=("edges", "mentions", "merges", "evidence"),
        row_wise=False,
        external="t2g.stages.resolve:external_inputs",
    ),
    Stage(
        "export",
        "t2g.stages.export:export",
        "export",
        (
            Input("nodes", "resolve"),
            Input("edges", "resolve", side="edges"),
            Input("mentions", "resolve", side="mentions"),
            Input("evidence", "resolve", side="evidence"),
            Input("merges", "resolve", side="merges"),
            Input("dropped", "graph-extract", side="dropped"),
        ),
        row_wise=False,
    ),
)
