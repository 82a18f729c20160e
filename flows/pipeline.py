"""The full pipeline: the data flow, then the training flow (sft → grpo → evaluate)."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows import report
from flows.data import DATA_STAGES, check_until, data_flow, resolve
from flows.naming import run_name
from flows.train import TRAIN_STAGES, train_flow  # noqa: F401  (TRAIN_STAGES: re-exported)


@flow(name="t2g-pipeline", flow_run_name=run_name("pipeline"), log_prints=True)
def pipeline(
    config: str,
    store: str | None = None,
    overrides: list[str] | None = None,
    until: str | None = None,
) -> dict[str, dict[str, Any]]:
    """The R1 recipe end to end, on the recipe at `config`."""
    check_until(until)
    refs = data_flow(config, store=store, overrides=overrides, until=until if until in DATA_STAGES else None)
    if until not in DATA_STAGES:
        trained = train_flow(config, refs["collect"], refs["reason"], store=store, overrides=overrides, until=until,
                             teacher=refs.get("teacher"))  # fmt: skip
        refs = {**refs, **trained}
    # The run report (UI artifact `t2g-run-report`): inputs, artifact URIs, counts, F1, plots.
    report.publish(resolve(config, store, overrides), refs, config, overrides)
    return refs
