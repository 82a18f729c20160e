"""The pipeline's run report: one markdown artifact (`t2g-run-report`) per run.

It says what went in (recipe, overrides, store), what came out (each stage's artifact URI,
rows, cache hit or not, drop reasons, LLM requests), what each stage says of its own output
(its registry `report` hook, t2g.reporting: the teacher's label quality, the filter's
repairs, the evaluation's F1 table) and links to the plots the stages saved. No stage is
named here. `render` is plain (tested without Prefect); `publish` is what the pipeline
flow calls at its end; `closing_report` is what `t2g run` prints.
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from t2g import counts, rounds
from t2g.config import Recipe
from t2g.dag import DagError, graph
from t2g.reporting import PARTS, ReportHookError, ReportNode, table
from t2g.stages import registered
from tasks.storage import open_store

REPORT_KEY = "t2g-run-report"

log = logging.getLogger(__name__)


def stage_parts(
    recipe: Recipe,
    summaries: Mapping[str, Mapping[str, Any]],
    uris: Mapping[str, str],
    kind: str,
    read: Callable[[str, str], bytes] | None = None,
) -> dict[str, list[str]]:
    """What each node's stage says in a report of `kind` (its registry `report` hook,
    t2g.reporting), gathered by part, nodes in the order of `summaries`. `read(node,
    name)`: one of a node's files. A hook that fails (a file gone) is left out: a report
    never fails a finished run."""
    try:
        wired = {name: node.inputs for name, node in graph(recipe).items()}
    except DagError:
        wired = {}
    parts: dict[str, list[str]] = {part: [] for part in PARTS}
    for name, summary in summaries.items():
        try:
            spec = registered(name)
        except KeyError:
            continue
        node = ReportNode(
            name=name,
            uri=uris.get(name, ""),
            round=rounds.parse(name)[1],
            inputs={param: summaries.get(up) or {} for param, up in wired.get(name, ())},
            **({"read": lambda file, node=name: read(node, file)} if read else {}),
        )
        try:
            said = spec.report_parts(dict(summary or {}), node, kind)
        except ReportHookError:
            raise
        except Exception as exc:
            log.warning("the %s report of %s is left out: %s", kind, name, exc)
            continue
        for part, lines in said.items():
            parts[part] += lines
    return parts


def render(
    recipe: Recipe,
    refs: Mapping[str, Mapping[str, Any]],
    config: str,
    overrides: list[str] | None = None,
    manifests: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    manifests = manifests or {}
    summaries = {stage: (m or {}).get("summary") or {} for stage, m in manifests.items()}
    said = stage_parts(recipe, summaries, {stage: ref.get("uri", "") for stage, ref in refs.items()}, "markdown")
    lines = [f"# t2g run: {recipe.name}", ""]
    if recipe.description:
        lines += [recipe.description, ""]
    lines += ["## Inputs", "", f"- recipe: `{config}`", f"- store: `{recipe.store}`"]
    lines += [f"- override: `{o}`" for o in overrides or []]
    lines += ["", "## Artifacts", ""]
    rows = []
    for stage, ref in refs.items():
        summary = (manifests.get(stage) or {}).get("summary") or {}
        dropped = sum(counts.reasons(summary).values())
        rows.append({"stage": stage, "rows in": summary.get("rows_in", ""), "rows out": ref.get("rows", ""),
                     "dropped": dropped or "", "cache": "hit" if ref.get("hit") else "ran", "artifact": f"`{ref.get('uri')}`"})  # fmt: skip
    lines += table(rows)
    reasons = [
        {"stage": stage, "reason": reason, "rows": n}
        for stage, m in manifests.items()
        for reason, n in sorted(((m.get("summary") or {}).get("reasons") or {}).items())
    ]
    if reasons:
        lines += ["", "### Drop reasons", "", *table(reasons)]
    lines += said["counts"] + said["data"] + said["rounds"]  # the stages' own sections (t2g.reporting)
    from t2g.llm.cache import accounting_lines

    spent = [f"- {stage}: " + "; ".join(accounting_lines((m or {}).get("summary") or {})) for stage, m in manifests.items()
             if accounting_lines((m or {}).get("summary") or {})]  # fmt: skip
    if spent:  # what the teacher and the reasoner cost, and what the response cache saved
        lines += ["", "### LLM requests", "", *spent]
    lines += said["results"] + said["links"]
    plots = [
        f"- [{name}]({refs[stage]['uri']}/{name})"
        for stage, m in manifests.items()
        for name in sorted(m.get("files") or {})
        if name.endswith((".png", ".svg", ".html"))
    ]
    if plots:
        lines += ["", "## Plots", "", *plots]
    return "\n".join(lines) + "\n"


def stage_lines(refs: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The stage table `t2g run` prints and the pipeline run logs: rows, hit or ran, URI."""
    return [
        f"  {stage:<8} {ref['rows']:>7} rows  {'hit ' if ref.get('hit') else 'ran '} {ref['uri']}"
        for stage, ref in refs.items()
    ]


def llm_lines(store, refs: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Per LLM stage: requests, cache hits, tokens generated and saved, cost (t2g.llm.cache)."""
    from t2g.llm.cache import accounting_lines

    lines = []
    for stage, ref in refs.items():
        try:
            summary = store.manifest(ref["stage"], ref["key"]).get("summary") or {}
        except Exception:  # a report never fails a finished run
            continue
        lines += [f"  {stage:<8} {line}" for line in accounting_lines(summary)]
    return ["", "LLM requests:", *lines] if lines else []


def closing_report(recipe: Recipe, refs: Mapping[str, Mapping[str, Any]]) -> str:
    """What `t2g run` prints at the end of a run that evaluated (a stage gave `results`):
    the stages' own lines (t2g.reporting), each part but the last two a paragraph, the
    results with the links to the stages' files after them."""
    store = open_store(recipe.store)

    def summary(ref: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return store.manifest(ref["stage"], ref["key"]).get("summary") or {}
        except Exception:  # a report never fails a finished run
            return {}

    said = stage_parts(recipe, {name: summary(ref) for name, ref in refs.items()}, {name: ref["uri"] for name, ref in refs.items()},
                       "text", read=lambda name, file: store.read_file(refs[name]["stage"], refs[name]["key"], file))  # fmt: skip
    if not said["results"]:
        return ""
    lines = [""]
    for part in PARTS[:-2]:
        lines += [*said[part], ""] if said[part] else []
    return "\n".join([*lines, *said["results"], *said["links"]])


RUNS = "_runs"  # loose files (t2g.store): one index per run that asks for one


def write_index(recipe: Recipe, name: str, refs: Mapping[str, Mapping[str, Any]], started: datetime.datetime) -> str:
    """`<store>/_runs/<name>.json`: the run's artifacts by stage. Rewritten by a second run
    of the same name (the day's latest run is the day's data)."""
    body = {
        "index": name,
        "recipe": recipe.name,
        "store": recipe.store,
        "started": started.isoformat(timespec="seconds"),
        "stages": {
            stage: {k: ref[k] for k in ("uri", "key", "rows", "hit") if k in ref} for stage, ref in refs.items()
        },
    }
    store = open_store(recipe.store)
    rel = f"{RUNS}/{name}.json"
    store.put_bytes(rel, json.dumps(body, indent=2, sort_keys=True).encode())
    return store.loose_uri(rel)


def publish(
    recipe: Recipe, refs: Mapping[str, Mapping[str, Any]], config: str, overrides: list[str] | None = None
) -> str:
    """Read the manifests (summaries, evaluation table, files) and publish the report artifact."""
    from prefect.artifacts import create_markdown_artifact

    store = open_store(recipe.store)
    manifests = {}
    for stage, ref in refs.items():
        try:
            manifests[stage] = store.manifest(ref["stage"], ref["key"])
        except Exception:  # a report never fails a finished run
            manifests[stage] = {}
    markdown = render(recipe, refs, config, overrides, manifests)
    create_markdown_artifact(markdown, key=REPORT_KEY, description=f"t2g run report: {recipe.name}")
    return markdown
