"""How the nodes of a recipe's later rounds are named (DeepSeek-R1: after RL, sample the RL
model, keep what passes, SFT again on the teacher's data plus those samples, RL again).

The recipe's own stages are round 1 and keep their names (`sft`, `grpo`). A stage that runs
again in round r > 1 is the node `<stage>-<r>` (`sample-2`, `sft-2`, `grpo-2`): artifacts,
cache keys, task runs and `--until` use that name, while the function and every other
registry property come from `<stage>` (t2g.stages.registered). An input that takes one
artifact per round (evaluate scores every round's models) is `<param>_<r>` in round r.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

_LATER = re.compile(r"^(?P<stage>[a-z][a-z0-9_]*)-(?P<round>[2-9]|[1-9][0-9]+)$")
_PARAM = re.compile(r"^(?P<param>[a-z][a-z0-9_]*?)_(?P<round>[2-9]|[1-9][0-9]+)$")


def node_name(stage: str, round: int) -> str:
    """The node of `stage` in `round` (1: the recipe's own, named as the stage)."""
    if round < 1:
        raise ValueError(f"rounds count from 1, got {round}")
    return stage if round == 1 else f"{stage}-{round}"


def parse(name: str) -> tuple[str, int]:
    """(stage, round) of a node name: `sft-2` is ("sft", 2); any other name is round 1."""
    m = _LATER.fullmatch(name)
    return (m["stage"], int(m["round"])) if m else (name, 1)


def round_param(param: str, round: int) -> str:
    """The parameter an input taken from every round arrives as: `sft_model`, `sft_model_2`, …"""
    return param if round == 1 else f"{param}_{round}"


def param_round(name: str) -> tuple[str, int]:
    """(param, round) of a parameter named by `round_param`."""
    m = _PARAM.fullmatch(name)
    return (m["param"], int(m["round"])) if m else (name, 1)


def later_models(later: Mapping[str, Any], wanted: Iterable[str]) -> dict[str, Any]:
    """The later rounds' models among `later` (inputs `<stage>_model_<r>`), named as their
    nodes (`sft-2`), round by round and in the order of `wanted` (e.g. ["sft", "grpo"])
    within a round; stages not in `wanted` are left out."""
    found: dict[tuple[int, int], tuple[str, Any]] = {}
    order = {stage: i for i, stage in enumerate(wanted)}
    for name, value in later.items():
        param, r = param_round(name)
        stage = param.removesuffix("_model")
        if r < 2 or stage == param:
            raise TypeError(f"unexpected input {name!r}: later rounds' models arrive as <stage>_model_<round>")
        if stage in order:
            found[(r, order[stage])] = (node_name(stage, r), value)
    return dict(found[k] for k in sorted(found))
