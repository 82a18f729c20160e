"""The data flow: the graph up to the SFT targets (collect → … → reason), for the nightly
regeneration deployment; `until` stops earlier.

`index` names a run index: after the walk, `<store>/_runs/<index>.json` lists every
stage's artifact (URI, key, rows, hit or ran). The nightly regeneration runs into one
shared store, where content keys make an unchanged corpus all cache hits (nothing is
labelled or trained twice), and its dated index (`index: "{date}"`) is how a team still
finds "the data as of date X".
"""

from __future__ import annotations

import json
from typing import Any

from prefect import flow, get_run_logger

from flows.naming import run_name
from flows.walk import resolve, walk
from t2g.config import Recipe, dated_store, utc_now
from t2g.dag import plan
from tasks.storage import open_store

DATA_END = "reason"  # the last data stage: its artifact is what training starts from
RUNS = "_runs"  # loose files (t2g.store): one index per run that asks for one


@flow(name="t2g-data", flow_run_name=run_name("data"), log_prints=True)
def data_flow(
    config: str,
    store: str | None = None,
    overrides: list[str] | None = None,
    until: str | None = None,
    index: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Collect texts, label them, filter and augment, write the SFT targets; with `index`
    ("{date}" becomes the run's UTC date), record what the run produced under that name."""
    started = utc_now()
    recipe = resolve(config, store, overrides)
    ran = walk(recipe, plan(recipe, until or DATA_END))
    if index:
        uri = write_index(recipe, dated_store(index, started), ran, started.isoformat(timespec="seconds"))
        get_run_logger().info("run index: %s", uri)
    return ran


def write_index(recipe: Recipe, name: str, ran: dict[str, dict[str, Any]], started: str) -> str:
    """`<store>/_runs/<name>.json`: the run's artifacts by stage. Rewritten by a second run
    of the same name (the day's latest run is the day's data)."""
    body = {
        "index": name,
        "recipe": recipe.name,
        "store": recipe.store,
        "started": started,
        "stages": {stage: {k: ref[k] for k in ("uri", "key", "rows", "hit") if k in ref} for stage, ref in ran.items()},
    }
    store = open_store(recipe.store)
    rel = f"{RUNS}/{name}.json"
    store.put_bytes(rel, json.dumps(body, indent=2, sort_keys=True).encode())
    return store.loose_uri(rel)
