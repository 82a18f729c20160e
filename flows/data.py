"""The data flow: the pipeline under its own name, for the nightly regeneration
deployment, which runs it `until: reason` (collect → … → reason: the SFT targets) into one
shared store with a dated run index (`index: "{date}"`): content keys make an unchanged
corpus all cache hits (nothing is labelled or trained twice), and `_runs/<date>.json` is
how a team still finds "the data as of date X"."""

from __future__ import annotations

from flows.naming import run_name
from flows.pipeline import pipeline

DATA_END = "reason"  # the last data stage: its artifact is what training starts from

data_flow = pipeline.with_options(name="t2g-data", flow_run_name=run_name("data"))
