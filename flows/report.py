"""The pipeline's run report: one markdown artifact (`t2g-run-report`) per run.

It says what went in (recipe, overrides, store), what came out (each stage's artifact URI,
rows, cache hit or not, drop reasons), the evaluation's F1 table when the run got that far
and links to the plots the stages saved. `render` is plain (tested without Prefect);
`publish` is what the pipeline flow calls at its end.
"""

from __future__ import annotations

import datetime
import json
from typing import Any, Mapping

from t2g import counts
from t2g.config import Recipe
from t2g.stages.extract import label_quality
from tasks.storage import open_store

REPORT_KEY = "t2g-run-report"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(rows: list[Mapping[str, Any]], columns: list[str] | None = None) -> list[str]:
    if not rows:
        return []
    columns = columns or list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return lines


def f1_rows(evaluation: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """The evaluation table's rows (one per model) and its columns: labels (text) first, then scores."""
    if not evaluation:
        return [], []
    columns = list(evaluation[0])
    labels = [c for c in columns if isinstance(evaluation[0][c], str)]
    return evaluation, labels + [c for c in columns if c not in labels]


def render(
    recipe: Recipe,
    refs: Mapping[str, Mapping[str, Any]],
    config: str,
    overrides: list[str] | None = None,
    manifests: Mapping[str, Mapping[str, Any]] | None = None,
    evaluation: list[dict[str, Any]] | None = None,
) -> str:
    manifests = manifests or {}
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
    lines += _table(rows)
    reasons = [
        {"stage": stage, "reason": reason, "rows": n}
        for stage, m in manifests.items()
        for reason, n in sorted(((m.get("summary") or {}).get("reasons") or {}).items())
    ]
    if reasons:
        lines += ["", "### Drop reasons", "", *_table(reasons)]
    repaired = [
        {"stage": stage, "repaired (kept)": reason, "rows": n}
        for stage, m in manifests.items()
        for reason, n in sorted(((m.get("summary") or {}).get("repaired") or {}).items())
    ]
    if repaired:  # kept rows; what repair removed is in <stage>-repaired
        lines += ["", "### Repaired instead of dropped", "", *_table(repaired)]
    quality = label_quality((manifests.get("extract") or {}).get("summary") or {})
    if quality:  # the documents carried gold: how good were the teacher's labels?
        lines += ["", "### Teacher labels against the documents' gold", "", *_table(quality)]
    from t2g.llm.cache import accounting_lines

    spent = [f"- {stage}: " + "; ".join(accounting_lines((m or {}).get("summary") or {})) for stage, m in manifests.items()
             if accounting_lines((m or {}).get("summary") or {})]  # fmt: skip
    if spent:  # what the teacher and the reasoner cost, and what the response cache saved
        lines += ["", "### LLM requests", "", *spent]
    table, columns = f1_rows(evaluation or [])
    if columns:
        lines += ["", "## Evaluation", "", *_table(table, columns)]
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
    return [f"  {stage:<8} {ref['rows']:>7} rows  {'hit ' if ref.get('hit') else 'ran '} {ref['uri']}" for stage, ref in refs.items()]


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
    """What `t2g run` prints at the end of a run that evaluated: the F1 table and where
    the report, the predictions and the reward plot are."""
    if "evaluate" not in refs:
        return ""
    store = open_store(recipe.store)
    md = store.read_file("evaluate", refs["evaluate"]["key"], "report.md").decode()
    lines = ["", *data_lines(store, refs), *sample_lines(store, refs), md.strip(), "",
             f"report:      {refs['evaluate']['uri']}/report.md (and report.json; predictions in the parquet parts)"]  # fmt: skip
    for name, ref in refs.items():
        if name == "grpo" or name.startswith("grpo-"):
            lines.append(f"reward plot: {ref['uri']}/rewards.png" + (f" ({name})" if name != "grpo" else ""))
    return "\n".join(lines)


def sample_lines(store, refs: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Per rejection-sampling node (`sample-2`, …): documents, answers, what was kept and,
    where the documents carry gold, how often the kept answer beats the teacher's label."""
    lines = []
    for name, ref in refs.items():
        if not name.startswith("sample-"):
            continue
        try:
            s = store.manifest(ref["stage"], ref["key"]).get("summary") or {}
        except Exception:  # a report never fails a finished run
            continue
        if "documents" not in s:
            continue
        line = (f"{name}: {s['documents']} documents x {s['samples'] // max(s['documents'], 1)} answers from "
                f"the round before's {s.get('model')}: {s['accepted']} accepted ({100 * s['acceptance_rate']:.1f}%), "
                f"mean best reward {s.get('mean_best_reward')}")  # fmt: skip
        if g := s.get("vs_gold"):
            line += (f"; against the gold, the kept answer beats the teacher's label on {g['closer']} of "
                     f"{g['documents']} ({100 * g['closer'] / g['documents']:.1f}%), ties on {g['same']}")
        lines.append(line + f" ({ref['uri']}/report.md)")
    return [*lines, ""] if lines else []


def data_lines(store, refs: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Where the student's data came from, when a teacher labelled it: the teacher's
    labels against the documents' own gold (the toy world's hidden gold), per split, and
    what the filter removed."""

    def summary(stage: str) -> dict[str, Any]:
        if stage not in refs:
            return {}
        return store.manifest(refs[stage]["stage"], refs[stage]["key"]).get("summary") or {}

    lines = []
    for row in label_quality(summary("extract")):
        lines.append(
            f"teacher labels, {row['split']} ({row['documents']} documents, against their gold): "
            f"entity P/R/F1 {row['entity precision']:.3f} / {row['entity recall']:.3f} / {row['entity f1']:.3f}, "
            f"relation {row['relation precision']:.3f} / {row['relation recall']:.3f} / {row['relation f1']:.3f}"
        )
    kept = summary("filter")
    if lines and kept:
        reasons = ", ".join(f"{n} {why}" for why, n in sorted((kept.get("reasons") or {}).items(), key=lambda kv: -kv[1]))
        fixed = kept.get("repaired") or {}
        repaired = ", ".join(f"{why}: {n}" for why, n in sorted(fixed.items(), key=lambda kv: -kv[1]))
        lines.append(f"filter kept {kept.get('kept')} of {kept.get('rows_in')} labelled documents"
                     + (f", {sum(fixed.values())} of them repaired ({repaired})" if fixed else "")
                     + (f" (dropped: {reasons})" if reasons else ""))  # fmt: skip
    return [*lines, ""] if lines else []


RUNS = "_runs"  # loose files (t2g.store): one index per run that asks for one


def write_index(recipe: Recipe, name: str, refs: Mapping[str, Mapping[str, Any]], started: datetime.datetime) -> str:
    """`<store>/_runs/<name>.json`: the run's artifacts by stage. Rewritten by a second run
    of the same name (the day's latest run is the day's data)."""
    body = {
        "index": name,
        "recipe": recipe.name,
        "store": recipe.store,
        "started": started.isoformat(timespec="seconds"),
        "stages": {stage: {k: ref[k] for k in ("uri", "key", "rows", "hit") if k in ref} for stage, ref in refs.items()},
    }
    store = open_store(recipe.store)
    rel = f"{RUNS}/{name}.json"
    store.put_bytes(rel, json.dumps(body, indent=2, sort_keys=True).encode())
    return store.loose_uri(rel)


def publish(recipe: Recipe, refs: Mapping[str, Mapping[str, Any]], config: str, overrides: list[str] | None = None) -> str:
    """Read the manifests (summaries, evaluation table, files) and publish the report artifact."""
    from prefect.artifacts import create_markdown_artifact

    store = open_store(recipe.store)
    manifests = {}
    for stage, ref in refs.items():
        try:
            manifests[stage] = store.manifest(ref["stage"], ref["key"])
        except Exception:  # a report never fails a finished run
            manifests[stage] = {}
    # The evaluate stage keeps its F1 table (one row per model) in its summary.
    evaluation = (manifests.get("evaluate", {}).get("summary") or {}).get("table") or None
    markdown = render(recipe, refs, config, overrides, manifests, evaluation)
    create_markdown_artifact(markdown, key=REPORT_KEY, description=f"t2g run report: {recipe.name}")
    return markdown
