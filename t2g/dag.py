"""The graph of one recipe, computed from the stage registry (t2g.stages): which stages
run, which artifact feeds which parameter, in what order, and the sub-graphs the flows
walk (`--until`, training from a given data artifact, evaluating a given model).

Plain Python: the flows walk what `plan` returns, one cached task per node, and a test or
a script can walk it the same way with t2g.runner.

A recipe with `rounds` expands here: each later round r adds a node `<stage>-<r>` for every
stage the registry repeats (t2g.rounds), with the round's merged section and its inputs
wired by `Input.round`. Nodes are addressed by name everywhere (`--until sample-2`, the
store, the task runs); `Node.stage` is the registry entry a node runs.

`plan` also computes every planned node's key, once, in order (t2g.keys.node_key: its
section, its inputs' keys, its code), and the node carries it (`Node.key`): whoever runs
the node reads the key there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from t2g import rounds
from t2g.keys import node_key
from t2g.stages import STAGES, Input, Stage, registered


class DagError(ValueError):
    """A recipe whose graph cannot be built or walked; the message says what to change."""


@dataclass(frozen=True)
class Node:
    """One node of a recipe's graph, with the inputs that are wired under that recipe."""

    stage: str  # the registry entry it runs
    inputs: tuple[tuple[str, str], ...]  # (parameter, upstream node), in declared order
    optional: frozenset[str]  # parameters the stage can do without
    shard_size: int | None  # rows per shard; None: one task
    sharding: str | None  # "llm" or "rows" when shard_size is set
    gpu: bool
    name: str = ""  # the node's name: the stage's, or `<stage>-<round>` in a later round
    # Its artifact's key, set by `plan` (t2g.keys.node_key); None in `graph`, or when an
    # input's key is not known (a given artifact named without its reference).
    key: str | None = None

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.stage)

    @property
    def round(self) -> int:
        return rounds.parse(self.name)[1]

    @property
    def upstream(self) -> tuple[str, ...]:
        return tuple(stage for _, stage in self.inputs)


def section(recipe: Any, node: str, registry: Mapping[str, Stage] = STAGES) -> Any:
    """The recipe section that configures node `node` ({} for a stage without settings):
    the recipe's own, or in a later round the round's merged one (Recipe.round_section)."""
    spec = registered(node, dict(registry))
    if spec.section is None:
        return {}
    round = rounds.parse(node)[1] if node != spec.name else 1
    return getattr(recipe, spec.section) if round == 1 else recipe.round_section(spec.section, round)


def last_round(recipe: Any) -> int:
    return 1 + len(getattr(recipe, "rounds", None) or ())


def graph(recipe: Any, registry: Mapping[str, Stage] = STAGES) -> dict[str, Node]:
    """Every node the recipe configures (a stage whose section is null, such as the tiny
    teacher without a `teacher` section, has no node; a stage the registry repeats has one
    per round), in an order that runs each after its inputs; round, then registry order,
    breaks ties. Raises DagError naming what is missing."""
    nodes: dict[str, Node] = {}
    last = last_round(recipe)
    for round in range(1, last + 1):
        for name, spec in registry.items():
            if not spec.in_round(round):
                continue
            if spec.section is not None and getattr(recipe, spec.section, None) is None:
                continue
            node = rounds.node_name(name, round)
            cfg = section(recipe, node, registry)
            try:
                spec.check_section(cfg)
            except ValueError as exc:
                where = spec.section or name
                raise DagError(f"{where}{'' if round == 1 else f' (round {round})'}.{exc}") from None
            wired = [
                (param, up, i.optional)
                for i in spec.active_inputs(cfg)
                for param, up in _wire(node, i, round, last, registry)
            ]
            size = spec.shards(recipe)
            nodes[node] = Node(
                stage=name,
                inputs=tuple((param, up) for param, up, _ in wired),
                optional=frozenset(param for param, _, optional in wired if optional),
                shard_size=size,
                sharding=spec.sharding if size else None,
                gpu=spec.gpu,
                name=node,
            )
    for node in nodes.values():
        for param, up in node.inputs:
            if up not in nodes and param not in node.optional:
                stage = registered(up, dict(registry)).name
                raise DagError(
                    f"stage {node.name} needs the {stage} stage's artifact as {param!r}, but the recipe has no "
                    f"`{registry[stage].section}` section: add one"
                )
    _check_gpu_stages(recipe, registry)
    return {name: nodes[name] for name in _order(nodes)}


def _wire(node: str, i: Input, round: int, last: int, registry: Mapping[str, Stage]) -> list[tuple[str, str]]:
    """(parameter, upstream node) pairs of input `i` of `node`, a node of `round` (see Input.round)."""
    up = registry.get(i.stage)
    if up is None:
        raise DagError(f"stage {node}: input {i.param} names {i.stage!r}, which is not a registered stage")
    if i.round == "each":
        return [
            (rounds.round_param(i.param, r), rounds.node_name(i.stage, r)) for r in range(1, last + 1) if up.in_round(r)
        ]
    r = round - 1 if i.round == "previous" else round
    if up.rounds == "once":
        return [(i.param, i.stage)] if i.round == "same" or round > 1 else []
    return [(i.param, rounds.node_name(i.stage, r))] if r >= 1 and up.in_round(r) else []


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
    unknown = sorted(set(getattr(orchestration, "gpu_stages", ()) or ()) - set(registry))  # a stage's later rounds too
    if unknown:
        raise DagError(f"orchestration.gpu_stages: {unknown} are not stages; choose from {', '.join(registry)}")


def plan(
    recipe: Any,
    until: str | None = None,
    given: Iterable[str] | Mapping[str, Any] = (),
    registry: Mapping[str, Stage] = STAGES,
    follow_optional: bool = True,
) -> list[Node]:
    """The nodes to run, in order, each with its key.

    - `until`: only that node (`sft`, `sample-2`) and what it needs (its ancestors); None:
      every node that no other consumes (evaluate) and what those need: the whole graph.
    - `given`: stages whose artifacts the caller already has (train-only starts from a
      data artifact and its lineage): they are not run, and nothing above them is. A
      mapping gives their references (anything with a `key`) or keys, from which the
      keys of the nodes they feed follow; names alone leave those keys None.
    - `follow_optional=False`: an optional input is wired only when its stage is given
      (evaluate-only scores an SFT model without running a GRPO for it).
    """
    g = graph(recipe, registry)
    given_keys = {name: getattr(ref, "key", ref) for name, ref in given.items()} if isinstance(given, Mapping) else {}
    given = set(given)
    if until is not None and until not in g:
        raise DagError(
            f"until={until!r} is not a stage of this recipe{_why_absent(recipe, until, registry)}; choose one of {', '.join(g)}"
        )
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
    nodes = [_without_unmet_optional(g[n], wanted | given) for n in g if n in wanted]
    return _keyed(recipe, nodes, given_keys, registry)


def _keyed(
    recipe: Any, nodes: list[Node], given: Mapping[str, str | None], registry: Mapping[str, Stage]
) -> list[Node]:
    """`nodes` (in run order) with their keys: each from its inputs' keys, the given
    artifacts' or those of the nodes before it. The one place a planned key is made."""
    keys: dict[str, str | None] = dict(given)
    out = []
    for node in nodes:
        inputs = {param: keys.get(up) for param, up in node.inputs}
        known = all(k is not None for k in inputs.values())
        key = node_key(node.name, section(recipe, node.name, registry), inputs, registry=registry) if known else None  # type: ignore[arg-type]
        keys[node.name] = key
        out.append(replace(node, key=key))
    return out


def _why_absent(recipe: Any, name: str, registry: Mapping[str, Stage]) -> str:
    try:
        spec = registered(name, dict(registry))
    except KeyError:
        return ""
    round = 1 if name == spec.name else rounds.parse(name)[1]
    if not spec.in_round(round):
        return f" (it runs in later rounds only, as {rounds.node_name(name, 2)}, …: add `rounds`)"
    if round > last_round(recipe):
        return f" (the recipe has rounds 1 to {last_round(recipe)}: add entries to `rounds`)"
    return " (its recipe section is not set)"


def _without_unmet_optional(node: Node, available: set[str]) -> Node:
    inputs = tuple((p, up) for p, up in node.inputs if up in available or p not in node.optional)
    return node if inputs == node.inputs else replace(node, inputs=inputs)


def cached(nodes: Iterable[Node], store: Any) -> dict[str, Any] | None:
    """Every node's finished artifact, when the store holds all of them; else None.

    Keys come from the plan (config, upstream keys, code: `plan` computed them once),
    so a rerun can tell that there is nothing to do without starting an orchestrator."""
    found: dict[str, Any] = {}
    for node in nodes:
        if node.key is None or any(up not in found for _, up in node.inputs):
            return None  # an input from outside the plan: only a whole plan is checked here
        ref = store.finished(node.name, node.key)
        if ref is None:
            return None
        found[node.name] = ref
    return found


def describe(nodes: Iterable[Node]) -> list[str]:
    """One line per node, for `t2g dag`: inputs, sharding, GPU (and, for a later round's
    node, the stage it runs)."""
    lines = []
    for n in nodes:
        try:
            sides = {i.param: i.side for i in registered(n.name).inputs if i.side}
        except KeyError:  # a node of another registry
            sides = {}
        ins = ", ".join(f"{p}<-{up}" + (f"-{sides[p]}" if p in sides else "") for p, up in n.inputs) or "-"
        shard = f"{n.sharding} shards of {n.shard_size}" if n.shard_size else "one task"
        runs = f" (round {n.round}: runs {n.stage})" if n.name != n.stage else ""
        lines.append(f"{n.name:<10} inputs: {ins:<40} {shard:<22} {'gpu when there is one' if n.gpu else 'cpu'}{runs}")
    return lines
