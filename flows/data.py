"""The data flow: the graph up to the SFT targets (collect → … → reason), for the nightly
regeneration deployment; `until` stops earlier."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.naming import run_name
from flows.walk import resolve, walk
from t2g.dag import plan

DATA_END = "reason"  # the last data stage: its artifact is what training starts from


@flow(name="t2g-data", flow_run_name=run_name("data"), log_prints=True)
def data_flow(
    config: str,
    store: str | None = None,
    overrides: list[str] | None = None,
    until: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Collect texts, label them, filter and augment, write the SFT targets."""
    recipe = resolve(config, store, overrides)
    return walk(recipe, plan(recipe, until or DATA_END))
