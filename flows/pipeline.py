"""The full pipeline: the recipe's whole graph (collect → … → evaluate), walked once."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from flows import access, report
from flows.naming import run_name
from flows.walk import resolve, walk
from t2g.config import dated_store, utc_now
from t2g.dag import plan


@flow(name="t2g-pipeline", flow_run_name=run_name("pipeline"), log_prints=True)
def pipeline(
    config: str,
    store: str | None = None,
    overrides: list[str] | None = None,
    until: str | None = None,
    index: str | None = None,
) -> dict[str, dict[str, Any]]:
    """The R1 recipe end to end, on the recipe at `config` (or up to the stage `until`).
    With `index` ("{date}" becomes the run's UTC date), `<store>/_runs/<index>.json`
    records what the run produced."""
    started = utc_now()  # the one clock reading of the run: the store's and the index's {date}
    # A deployment's run: parameters come from an API caller (flows/access.py says what they may change).
    recipe = resolve(access.guard(config, store, overrides, index), store, overrides, now=started)
    refs = walk(recipe, plan(recipe, until))
    # The run report (UI artifact `t2g-run-report`): inputs, artifact URIs, counts, F1, plots.
    report.publish(recipe, refs, config, overrides)
    if index:
        get_run_logger().info("run index: %s", report.write_index(recipe, dated_store(index, started), refs, started))
    return refs
