"""GPU stages hold a slot of a global concurrency limit while they run.

The recipe names the GPU stages (`orchestration.gpu_stages`) and the limit
(`orchestration.gpu_limit`, "gpu" by default; `t2g stack up` creates it with one slot per
GPU). The slot is strict: a GPU stage on a server without the limit fails at once with the
reason instead of running unguarded next to another model on the same card.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from t2g.config import Recipe
from t2g.stages import registered


def is_gpu_stage(recipe: Recipe, stage: str) -> bool:
    """`stage` (a node: a later round's `sft-2` counts as `sft`) is one the recipe names."""
    try:
        stage = registered(stage).name
    except KeyError:  # not a node of the registry: only its own name counts
        pass
    return stage in recipe.orchestration.gpu_stages


def stage_tags(recipe: Recipe, stage: str) -> set[str]:
    """Tags a stage's task runs carry in the UI: filterable by recipe, stage and gpu."""
    tags = {"t2g", f"stage:{stage}", f"recipe:{recipe.name}"}
    return tags | {"gpu"} if is_gpu_stage(recipe, stage) else tags


@contextlib.contextmanager
def gpu_slot(recipe: Recipe, stage: str) -> Iterator[None]:
    if not is_gpu_stage(recipe, stage):
        yield
        return
    from prefect.concurrency.sync import concurrency

    # lease_duration: the slot is renewed while the stage runs; a crashed worker's slot
    # is released when its lease runs out instead of blocking the GPU forever.
    with concurrency(recipe.orchestration.gpu_limit, occupy=1, strict=True, lease_duration=300):
        yield
