"""Evaluate: base vs SFT vs GRPO on held-out documents, scored with t2g.evaluation.

Every model answers the same prompts greedily (unconstrained by default, so the
valid-JSON rate says whether the model learnt the format). The report per model is
`t2g eval --json`'s shape plus `valid_json_rate` and `type_conformity`; it is kept as
`report.json` ({"models": {"base": R, "sft": R, "grpo": R}}) and `report.md`, and every
answer is a row of the predictions table. Each model is also compared with the one
before it in `models` (sft with base, grpo with sft): the F1 difference with a 95% paired
bootstrap interval over the documents, in `report.json` under "comparisons" and below the
table. Interchange JSONL benchmarks named in the recipe are scored the same way. A recipe
with later rounds (`rounds`) adds each round's models after GRPO (`sft-2`, `grpo-2`, …),
each compared with the one before it the same way.

The models answer through t2g.inference: the transformers backend (the one the LLM stages
use) behind the LLM response cache the orchestration opens, keyed by the model's content
(a tiny base, rebuilt from its seed, by its bytes), so evaluating the same model on the
same texts again asks it nothing and loads nothing; the summary's `llm` entry counts it.
"""

from __future__ import annotations

import gc
import json
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa

from t2g import reporting
from t2g.config import EvaluateConfig
from t2g.evaluation import evaluate as score
from t2g.evaluation import read_interchange
from t2g.fingerprint import data_digest
from t2g.graph import graph_from_obj, json_schema, parse_completion
from t2g.inference import LocalGenerator, LocalModel, greedy
from t2g.metrics import paired_bootstrap
from t2g.prompts import messages
from t2g.rounds import later_models
from t2g.stage import StageResult
from t2g.training import TINY, TrainingError, read_base, rebuild_tiny, trained_to_think

REPORT = "report.md"  # the evaluation's tables and comparisons, for people
PRED_SCHEMA = pa.schema(
    [
        pa.field("dataset", pa.string()),
        pa.field("model", pa.string()),
        pa.field("id", pa.string()),
        pa.field("completion", pa.string()),
        pa.field("valid_json", pa.bool_()),
        pa.field("error", pa.string()),
        pa.field("prediction", pa.string()),
        pa.field("gold", pa.string()),
    ]
)


def held_out(docs: pa.Table, split: str, limit: int | None) -> list[dict[str, Any]]:
    """Gold records of `split`: id, text, requested types and the gold restricted to them."""
    out = []
    for row in docs.to_pylist():
        if row.get("split") != split or not row.get("gold"):
            continue
        out.append(
            _record(row["id"], row["text"], json.loads(row["gold"]), row.get("entity_types"), row.get("relation_types"))
        )
        if limit and len(out) >= limit:
            break
    return out


def _record(
    rid: str, text: str, gold: dict, etypes: Sequence[str] | None, rtypes: Sequence[str] | None
) -> dict[str, Any]:
    if etypes is None or rtypes is None:  # no request: ask for every type the gold uses
        etypes = sorted({e["type"] for e in gold.get("entities", [])})
        rtypes = sorted({r["type"] for r in gold.get("relations", [])})
    graph = graph_from_obj({"entities": gold.get("entities", []), "relations": gold.get("relations", [])})
    restricted = graph.restricted(etypes, rtypes).interchange()
    return {"id": str(rid), "text": text, "entity_types": list(etypes), "relation_types": list(rtypes), **restricted}


@contextmanager
def model_to_evaluate(name: str, sft_dir: Path, grpo_dir: Path | None,
                      later: dict[str, Path] | None = None) -> Iterator[LocalModel]:  # fmt: skip
    """The model `name` stands for; the base is what the SFT started from; `later`: the
    later rounds' model folders by name (`sft-2`). A tiny base exists only as a seed and
    a tokenizer: it is rebuilt into a temporary folder, named by its bytes."""
    if name != "base":
        folder = sft_dir if name == "sft" else grpo_dir if name == "grpo" else (later or {})[name]
        yield LocalModel(str(folder), bool((read_base(folder) or {}).get("trust_remote_code", False)))
        return
    base = read_base(sft_dir)
    if base is None:
        raise TrainingError(f"evaluate: {sft_dir} does not say what its base model was (no t2g_base.json)")
    if base["model"] != TINY:  # a hub name at the revision sft trained from, or a folder
        yield LocalModel(base["model"], bool(base.get("trust_remote_code", False)), base.get("revision"))
        return
    model, tokenizer = rebuild_tiny(sft_dir, base)
    with tempfile.TemporaryDirectory(prefix="t2g-tiny-base-") as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        del model
        yield LocalModel(tmp, content=data_digest(tmp))


def type_conformity(records: Sequence[dict[str, Any]], preds: Sequence[dict[str, Any]]) -> float | None:
    """Share of predicted entities and relations whose type was requested (None: none predicted)."""
    ok = total = 0
    for rec, pred in zip(records, preds):
        etypes, rtypes = set(rec["entity_types"]), set(rec["relation_types"])
        ok += sum(e["type"] in etypes for e in pred["entities"]) + sum(r["type"] in rtypes for r in pred["relations"])
        total += len(pred["entities"]) + len(pred["relations"])
    return round(ok / total, 4) if total else None


def run_model(
    gen: LocalGenerator, records: list[dict], cfg: EvaluateConfig, thinking: bool = False
) -> tuple[dict, list[dict]]:
    """The report R and the per-example answers of one model on `records`; a model trained
    to think gets the thinking prompt and is scored on the JSON after its think block."""
    if thinking and cfg.constrained:
        raise TrainingError(
            "evaluate.constrained: a JSON schema leaves no room for <think>; set it false to score a thinking student"
        )
    chats = [messages(r["text"], r["entity_types"], r["relation_types"], thinking) for r in records]
    schemas = [json_schema(r["entity_types"], r["relation_types"]) for r in records] if cfg.constrained else None
    answers = gen.generate(greedy(chats, cfg.max_new_tokens, schemas))
    preds, rows, formats, thinks = [], [], 0, []
    for rec, ans in zip(records, answers):
        parsed = parse_completion(ans.text)
        formats += parsed.format_ok
        if parsed.think is not None:
            thinks.append(len(parsed.think.strip()))
        pred = parsed.graph.interchange() if parsed.graph else {"entities": [], "relations": []}
        preds.append(pred)
        rows.append({"id": rec["id"], "completion": ans.text, "valid_json": parsed.graph is not None,
                     "error": parsed.error, "prediction": json.dumps(pred, ensure_ascii=False),
                     "gold": json.dumps({"entities": rec["entities"], "relations": rec["relations"]}, ensure_ascii=False)})  # fmt: skip
    report = score({r["id"]: r for r in records}, {r["id"]: p for r, p in zip(records, preds)})
    report["valid_json_rate"] = round(sum(r["valid_json"] for r in rows) / len(rows), 4) if rows else 0.0
    report["type_conformity"] = type_conformity(records, preds)
    report["thinking"] = thinking
    # The format reward's rate (<think>…</think> then one JSON object) and the mean length
    # of the think blocks written (None: none was).
    report["format_rate"] = round(formats / len(rows), 4) if rows else 0.0
    report["think_chars"] = round(sum(thinks) / len(thinks), 1) if thinks else None
    return report, rows


def added(summaries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The models' LLM accounting summed (t2g.llm.cache.Accounting.summary): how many
    answers came from the response cache; `cache_off` says why a model had none."""
    out: dict[str, Any] = {}
    off: set[str] = set()
    for summary in summaries:
        for k, v in summary.items():
            if k == "cache_off":
                off.add(v)
            else:
                out[k] = round(out.get(k, 0) + v, 3)
    if off:
        out["cache_off"] = "; ".join(sorted(off))  # as an LLM stage's summary says it
    return out


def markdown(reports: dict[str, dict], title: str) -> str:
    think = any(r.get("thinking") for r in reports.values())  # thinking columns only where a model thinks
    lines = [f"### {title}", "", "| model | entity F1 | relation F1 | valid JSON | type conformity | "
             + ("format | think chars | " if think else "") + "examples |",
             "|---|---:|---:|---:|---:|" + ("---:|---:|" if think else "") + "---:|"]  # fmt: skip
    for name, r in reports.items():
        tc = "n/a" if r["type_conformity"] is None else f"{r['type_conformity']:.3f}"
        extra = ""
        if think:
            chars = "n/a" if r.get("think_chars") is None else f"{r['think_chars']:.0f}"
            extra = f"{r.get('format_rate', 0.0):.3f} | {chars} | "
        lines.append(
            f"| {name} | {r['entities']['micro']['f1']:.3f} | {r['relations']['micro']['f1']:.3f} | "
            f"{r['valid_json_rate']:.3f} | {tc} | {extra}{r['examples']} |"
        )
    return "\n".join(lines)


def comparisons(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> dict[str, dict]:
    """Each model against the one before it, on the same documents: "grpo - sft" is GRPO's
    F1 minus SFT's with a 95% paired bootstrap interval (t2g.metrics.paired_bootstrap)."""
    by_model: dict[str, dict[str, dict]] = {}
    for row in rows:
        by_model.setdefault(row["model"], {})[row["id"]] = row
    out = {}
    for a, b in zip(names, names[1:]):
        ids = list(by_model[a])
        golds = [json.loads(by_model[a][i]["gold"]) for i in ids]
        preds = [[json.loads(by_model[m][i]["prediction"]) for i in ids] for m in (a, b)]
        out[f"{b} - {a}"] = paired_bootstrap(golds, *preds)
    return out


def comparison_lines(comps: dict[str, dict]) -> list[str]:
    """One line per comparison, in F1 points."""

    def pts(c: dict[str, float]) -> str:
        return f"{100 * c['delta']:+.1f} ({100 * c['low']:+.1f} to {100 * c['high']:+.1f})"

    return [
        f"- {name}: entity F1 {pts(c['entities'])}, relation F1 {pts(c['relations'])} points "
        f"(95% paired bootstrap interval over {c['documents']} documents)"
        for name, c in comps.items()
    ]


def table_rows(reports: dict[str, dict]) -> list[dict[str, Any]]:
    """The report as rows (for a UI table)."""
    return [
        {
            "model": name,
            "entity_f1": round(r["entities"]["micro"]["f1"], 4),
            "relation_f1": round(r["relations"]["micro"]["f1"], 4),
            "valid_json_rate": r["valid_json_rate"],
            "type_conformity": r["type_conformity"],
            "format_rate": r.get("format_rate"),
            "think_chars": r.get("think_chars"),
            "examples": r["examples"],
        }  # fmt: skip
        for name, r in reports.items()
    ]


def f1_rows(evaluation: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """The evaluation table's rows (one per model) and its columns: labels (text) first, then scores."""
    if not evaluation:
        return [], []
    columns = list(evaluation[0])
    labels = [c for c in columns if isinstance(evaluation[0][c], str)]
    return evaluation, labels + [c for c in columns if c not in labels]


def run_report(summary: dict[str, Any], node: reporting.ReportNode, kind: reporting.Kind) -> dict[str, list[str]]:
    """The registry's report hook (t2g.reporting): the F1 table in the run report; the
    whole report.md, and where it is, in the closing text."""
    if kind == "markdown":
        rows, columns = f1_rows(summary.get("table") or [])
        return {"results": ["", "## Evaluation", "", *reporting.table(rows, columns)]} if columns else {}
    md = node.read(REPORT).decode()
    return {
        "results": [
            md.strip(),
            "",
            f"report:      {node.uri}/{REPORT} (and report.json; predictions in the parquet parts)",
        ]
    }


def evaluate(
    cfg: EvaluateConfig, docs: pa.Table, sft_model: Path, grpo_model: Path | None = None, **later: Path
) -> StageResult:
    """Score the models `cfg.models` names; without a GRPO model (evaluate-only on an SFT
    artifact) "grpo" is left out. `later`: the later rounds' models (`sft_model_2`, …),
    scored after the first round's ones that `cfg.models` names."""
    started = time.time()
    records = held_out(docs, cfg.split, cfg.limit)
    if not records:
        raise TrainingError(
            f"evaluate: no gold documents in split {cfg.split!r}; set evaluate.split to a split collect tags"
        )
    datasets: dict[str, list[dict]] = {cfg.split: records}
    skipped = []
    for path in cfg.benchmarks:
        if not Path(path).is_file():
            skipped.append(path)
            continue
        bench = [_record(rid, r.get("text", ""), r, r.get("entity_types"), r.get("relation_types"))
                 for rid, r in read_interchange(path).items()]  # fmt: skip
        datasets[Path(path).stem if Path(path).stem not in datasets else path] = bench[: cfg.limit]

    reports: dict[str, dict[str, dict]] = {name: {} for name in datasets}
    rows = []
    names = [m for m in cfg.models if m != "grpo" or grpo_model is not None]
    rounds = later_models(later, [m for m in cfg.models if m != "base"])
    folders = {"sft": sft_model, "grpo": grpo_model, **rounds}  # the base never learnt to think
    llm = []
    for model_name in names + list(rounds):
        with model_to_evaluate(model_name, sft_model, grpo_model, rounds) as model:
            gen = LocalGenerator(
                model, cfg.batch_size
            )  # loaded on first need: never, when the cache knows every answer
            thinking = trained_to_think(folders.get(model_name))
            for ds, recs in datasets.items():
                report, answers = run_model(gen, recs, cfg, thinking)
                reports[ds][model_name] = report
                rows += [{"dataset": ds, "model": model_name, **a} for a in answers]
            llm.append(gen.summary())
            del gen
            gc.collect()  # the next model may not fit beside this one

    main_reports = reports.pop(cfg.split)
    comps = comparisons([r for r in rows if r["dataset"] == cfg.split], list(main_reports))
    full = {"split": cfg.split, "constrained": cfg.constrained, "models": main_reports, "comparisons": comps,
            "benchmarks": reports}  # fmt: skip
    md = [
        "\n".join(
            [markdown(main_reports, f"{cfg.split} split ({len(records)} documents)"), "", *comparison_lines(comps)]
        )
    ]
    md += [markdown(r, f"benchmark {name}") for name, r in reports.items()]
    summary = {
        "rows_in": docs.num_rows,
        "examples": len(records),
        "table": table_rows(main_reports),
        "comparisons": {
            name: {k: round(c[k]["delta"], 4) for k in ("entities", "relations")} for name, c in comps.items()
        },
        "benchmarks": {name: table_rows(r) for name, r in reports.items()},
        "skipped_benchmarks": skipped,
        "llm": added(llm),
        "seconds": round(time.time() - started, 1),
    }
    files = {"report.json": json.dumps(full, indent=1).encode(), REPORT: ("\n\n".join(md) + "\n").encode()}
    return StageResult(main=pa.Table.from_pylist(rows, schema=PRED_SCHEMA), summary=summary, files=files)
