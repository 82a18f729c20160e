"""The data flow: the pipeline under its own name, for the nightly regeneration
deployment, which runs it `until: reason` (collect → … → reason: the SFT targets)."""

from __future__ import annotations

from flows.naming import run_name
from flows.pipeline import pipeline

DATA_END = "reason"  # the last data stage: its artifact is what training starts from

data_flow = pipeline.with_options(name="t2g-data", flow_run_name=run_name("data"))
