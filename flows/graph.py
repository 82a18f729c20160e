"""The graph flow: the pipeline under its own name, run `until: export` (corpus → chunk →
graph-extract → resolve → export, and whatever those need: with `graph.model: "@grpo"`
the training stages too, cache hits once trained). Two deployments run it
(deployments/prefect.yaml): `t2g-graph/build` on demand, and `t2g-graph/update` on a
schedule, which is the incremental update of a corpus graph: keys follow content (a
corpus source by its bytes), shards are cut by content and every request is cached, so a
run after documents were added asks the model only about the new chunks, then resolves
and exports the whole graph again."""

from __future__ import annotations

from flows.naming import run_name
from flows.pipeline import pipeline

GRAPH_END = "export"  # the last graph stage: its artifact holds the exported files

graph_flow = pipeline.with_options(name="t2g-graph", flow_run_name=run_name("graph"))
