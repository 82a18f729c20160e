"""The graph of one recipe, computed from the stage registry (t2g.stages): which stages
run, which artifact feeds which parameter, in what order, and the sub-graphs the flows
walk (`--until`, training from a given data artifact, evaluating a given model).

Plain Python: the flows walk what `plan` returns, one cached task per node, and a test or
a script can walk it the same way with t2g.runner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from t2g.stages import STAGES, Stage


class DagError(ValueError):
    """A recipe whose graph cannot be built or walked; the message says what to change."""


@dataclass(frozen=True)
class Node:
    """One stage of a recipe's graph, with the inputs that are wired under that recipe."""

    stage: str
    inputs: tuple[tuple[str, str], ...]  # (parameter, upstream stage), in declared order
    optional: frozenset[str]  # parameters the stage can do without
    shard_size: int | None  # rows per shard; None: one task
    sharding: str | None  # "llm" or "rows" when shard_size is set
    gpu: bool

    @property
    def upstream(self) -> tuple[str, ...]:
        return tuple(stage for _, stage in self.inputs)


def section(recipe: Any, stage: str, registry: Mapping[str, Stage] = STAGES) -> Any:
    """The recipe section that configures `stage` ({} for a stage without settings)."""
    name = registry[stage].section
    return {} if name is None else getattr(recipe, name)


def graph(recipe: Any, registry: Mapping[str, Stage] = STAGES) -> dict[str, Node]:
    """Every stage the recipe configures (a stage whose section is null, such as the tiny
    teacher without a `teacher` section, has no node), in an order that runs each after its
    inputs; registry order breaks ties. Raises DagError naming what is missing."""
    nodes: dict[str, Node] = {}
    for name, spec in registry.items():
        cfg = {} if spec.section is None else getattr(recipe, spec.section, None)
        if cfg is None:
            continue
        try:
            spec.check_section(cfg)
        except ValueError as exc:
            raise DagError(f"{spec.section or name}.{exc}") from None
        wired = spec.active_inputs(cfg)
        size = spec.shards(recipe)
        nodes[name] = Node(
            stage=name,
            inputs=tuple((i.param, i.stage) for i in wired),
            optional=frozenset(i.param for i in wired if i.optional),
            shard_size=size,
            sharding=spec.sharding if size else None,
            gpu=spec.gpu,
        )
    for node in nodes.values():
        for param, up in node.inputs:
            if up not in registry:
                raise DagError(f"stage {node.stage}: input {param} names {up!r}, which is not a registered stage")
            if up not in nodes and param not in node.optional:
                raise DagError(
                    f"stage {node.stage} needs the {up} stage's artifact as {param!r}, but the recipe has no "
                    f"`{registry[up].section}` section: add one"
                )
    _check_gpu_stages(recipe, registry)
    return {name: nodes[name] for name in _order(nodes)}


def _order(nodes: Mapping[str, Node]) -> list[str]:
    """Kahn's algorithm, taking ready nodes in registry order (stable, readable runs)."""
    pending = {name: {up for up in n.upstream if up in nodes} for name, n in nodes.items()}
    order: list[str] = []
    while pending:
        ready = [name for name in nodes if name in pending and not pending[name]]
        if not ready:
            raise DagError(f"the stages {sorted(pending)} wait on each other (a cycle in the registry)")
        for name in ready:
            order.append(name)
            del pending[name]
        for waits in pending.values():
            waits.difference_update(ready)
    return order


def _check_gpu_stages(recipe: Any, registry: Mapping[str, Stage]) -> None:
    orchestration = getattr(recipe, "orchestration", None)
    unknown = sorted(set(getattr(orchestration, "gpu_stages", ()) or ()) - set(registry))
    if unknown:
        raise DagError(f"orchestration.gpu_stages: {unknown} are not stages; choose from {', '.join(registry)}")


def plan(
    recipe: Any,
    until: str | None = None,
    given: Iterable[str] = (),
    registry: Mapping[str, Stage] = STAGES,
    follow_optional: bool = True,
) -> list[Node]:
    """The nodes to run, in order.

    - `until`: only that stage and what it needs (its ancestors); None: every stage that
      no other consumes (evaluate) and what those need: the whole graph.
    - `given`: stages whose artifacts the caller already has (train-only starts from a
      data artifact and its lineage): they are not run, and nothing above them is.
    - `follow_optional=False`: an optional input is wired only when its stage is given
      (evaluate-only scores an SFT model without running a GRPO for it).
    """
    g = graph(recipe, registry)
    given = set(given)
    if until is not None and until not in g:
        known = ", ".join(g)
        why = " (its recipe section is not set)" if until in registry else ""
        raise DagError(f"until={until!r} is not a stage of this recipe{why}; choose one of {known}")
    wanted: set[str] = set()
    consumed = {up for n in g.values() for up in n.upstream}
    todo = [until] if until is not None else [n for n in g if n not in consumed and n not in given]
    while todo:
        name = todo.pop()
        if name in wanted or name in given:
            continue
        wanted.add(name)
        node = g[name]
        for param, up in node.inputs:
            if param in node.optional and not follow_optional and up not in given:
                continue
            if up not in g:
                continue  # an optional input whose stage the recipe does not have
            todo.append(up)
    return [_without_unmet_optional(g[n], wanted | given) for n in g if n in wanted]


def _without_unmet_optional(node: Node, available: set[str]) -> Node:
    inputs = tuple((p, up) for p, up in node.inputs if up in available or p not in node.optional)
    return node if inputs == node.inputs else Node(node.stage, inputs, node.optional, node.shard_size, node.sharding, node.gpu)


def cached(recipe: Any, nodes: Iterable[Node], store: Any) -> dict[str, Any] | None:
    """Every node's finished artifact, when the store holds all of them; else None.

    Keys come from the recipe alone (config, upstream keys, code), so a rerun can tell
    that there is nothing to do without starting an orchestrator."""
    from t2g.runner import stage_key

    found: dict[str, Any] = {}
    for node in nodes:
        upstream = {param: found[up] for param, up in node.inputs if up in found}
        if len(upstream) != len(node.inputs):
            return None  # an input from outside the plan: only a whole plan is checked here
        ref = store.finished(node.stage, stage_key(node.stage, section(recipe, node.stage), upstream))
        if ref is None:
            return None
        found[node.stage] = ref
    return found


def describe(nodes: Iterable[Node]) -> list[str]:
    """One line per node, for `t2g dag`: inputs, sharding, GPU."""
    lines = []
    for n in nodes:
        ins = ", ".join(f"{p}<-{up}" for p, up in n.inputs) or "-"
        shard = f"{n.sharding} shards of {n.shard_size}" if n.shard_size else "one task"
        lines.append(f"{n.stage:<10} inputs: {ins:<40} {shard:<22} {'gpu when there is one' if n.gpu else 'cpu'}")
    return lines
