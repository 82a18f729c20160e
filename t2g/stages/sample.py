"""Rejection sampling: the student's own best answers, as SFT data for the next round.

DeepSeek-R1, once reasoning-oriented RL had converged, sampled many answers from that
checkpoint, kept those that passed its checks and trained a fresh SFT on them before RL
again. Here the round before's model (GRPO by default, `model: sft` for its SFT model)
answers every labelled document `k` times at `temperature`, through the LLM protocol
(t2g.llm: transformers locally, vLLM on a GPU; the LLM response cache applies, so a killed
run resumes with the answers it already has). Each answer is

1. parsed (t2g.graph.parse_completion) and, for a thinking row, held to the
   `<think>…</think>` layout;
2. checked exactly as the filter checks the teacher's labels (t2g.stages.filter.check:
   grounded entities, no dangling relation, only requested types, the size bounds);
3. scored with the registered rewards (t2g.rewards, weighted by `rewards` and
   `reward_weights`) against the teacher's label.

The best answer that passes (ties: the first sample) is kept when its score reaches
`min_reward`. A document without a usable label (one the filter dropped for an extraction
error, with `dropped: true`) is kept only under `consensus`: the passing answer that
agrees best with the other passing answers (its mean score against them) when that
reaches `consensus`.

Documents come from the reason stage's rows (originals, not augmentation variants) of
`splits`, plus with `dropped: true` the filter's dropped rows; `limit` takes a fixed
pseudo-random subset (by id digest, so a grown corpus keeps its choice). Every input row
is accounted for: not sampled (and why), accepted, or rejected (and why).

main: the accepted answers as SFT rows in the input's schema (the reason stage's): `graph`
and `target` are the student's answer, id `<doc>~s<j>` for sample j. side["rejected"]:
every answer not kept, with its score and verdict. Where documents carry hidden gold (the
toy world), the summary says how often the kept answer is closer to it than the teacher's
label was (`vs_gold`).
"""

from __future__ import annotations

import gc
import hashlib
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from t2g import llm, reporting
from t2g.config import FilterConfig, SampleConfig
from t2g.graph import Graph, graph_from_obj, json_schema, parse_completion
from t2g.llm import cache as llm_cache
from t2g.metrics import Counts, count, entity_set, relation_set
from t2g.plots import png_figure
from t2g.prompts import messages
from t2g.rewards import reward_funcs
from t2g.stage import StageResult
from t2g.stages.filter import Rejected, check
from t2g.stages.reason import target as thinking_target

REJECTED_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("split", pa.string()),
        pa.field("sample", pa.int32()),
        pa.field("completion", pa.string()),
        pa.field("graph", pa.string()),  # the answer's graph (canonical JSON), when it parses
        pa.field("reward", pa.float64()),  # weighted mean reward against the label; null: no usable label
        pa.field("verdict", pa.string(), nullable=False),
    ]
)

# Verdicts of one answer.
ACCEPTED = "accepted"
GENERATION_ERROR = "generation error"
NO_GRAPH = "no valid graph"
NO_THINK = "no closed think block"
FAILS = "fails the filter: "  # + the filter's drop reason
NOT_BEST = "not the best answer"
BELOW = "below min_reward"
NO_LABEL = "no usable label, no consensus"

# Why an input row is not a row out (t2g.counts: rows in = these + rows out).
VARIANT = "augmentation variant (not sampled)"
OTHER_SPLIT = "split not sampled"
OVER_LIMIT = "over the limit (not sampled)"
UNUSABLE = "dropped by the filter without text or label (not sampled)"
NO_ANSWER = "no answer passes the checks"
LOW_REWARD = "best answer below min_reward"
NO_CONSENSUS = "no usable label and no consensus"

BINS = 10  # reward histogram: [0, 0.1), …, [0.9, 1.0]


class SampleError(ValueError):
    """The documents cannot be sampled with this recipe (not a transient failure)."""


@dataclass
class Doc:
    row: dict[str, Any]  # in the examples' schema
    label: str | None  # the teacher's graph (canonical JSON) when usable
    thinking: bool


@dataclass
class Judged:
    """One document's answers: the verdict of each, and the kept one (or why none)."""

    verdicts: list[str]
    scores: list[float | None]
    graphs: list[Graph | None]
    kept: int | None = None
    reason: str = ""  # the document's rejection reason when nothing is kept
    best: float | None = None  # the best passing answer's score (or agreement)
    think: list[str | None] = field(default_factory=list)


def select(cfg: SampleConfig, examples: pa.Table, dropped: pa.Table | None) -> tuple[list[Doc], Counter[str]]:
    """The documents to sample, in input order, and the count of input rows left out by reason."""
    skipped: Counter[str] = Counter()
    wanted = set(cfg.splits) if cfg.splits is not None else None
    docs: list[Doc] = []
    for row in examples.to_pylist():
        if (row.get("variant") or 0) > 0:
            skipped[VARIANT] += 1
        elif wanted is not None and row.get("split") not in wanted:
            skipped[OTHER_SPLIT] += 1
        else:
            docs.append(Doc(row, _usable(row.get("graph")), row.get("think") is not None))
    if dropped is not None:
        names = examples.column_names
        for row in dropped.to_pylist():
            label = _usable(row.get("graph"))
            if wanted is not None and row.get("split") not in wanted:
                skipped[OTHER_SPLIT] += 1
            elif (
                not isinstance(row.get("text"), str)
                or not row["text"].strip()
                or (label is None and cfg.consensus is None)
            ):
                skipped[UNUSABLE] += 1
            else:
                as_example = {name: row.get(name) for name in names}
                as_example.update(doc_id=row.get("id"), graph=label, variant=0, think=None, target=None)
                docs.append(Doc(as_example, label, False))
    if cfg.limit is not None and len(docs) > cfg.limit:
        rank = sorted(
            range(len(docs)), key=lambda i: hashlib.sha256(f"{cfg.seed}:{docs[i].row['id']}".encode()).digest()
        )
        chosen = set(rank[: cfg.limit])
        skipped[OVER_LIMIT] += len(docs) - cfg.limit
        docs = [d for i, d in enumerate(docs) if i in chosen]
    return docs, skipped


def _usable(graph: Any) -> str | None:
    """A label as canonical graph JSON, or None when there is none that parses."""
    if not isinstance(graph, str):
        return None
    try:
        return graph_from_obj(json.loads(graph)).to_json()
    except (ValueError, RecursionError):
        return None


def requests(cfg: SampleConfig, docs: Sequence[Doc]) -> list[llm.Request]:
    """k requests per document, sample j with seed `seed + j` (vLLM seeds each request:
    one seed for all k would give k copies). Sample by sample: every document's sample 0,
    then every document's sample 1, …, so a local backend, which batches requests that
    share their sampling settings, fills its batches (`answers` reads them back)."""
    prompts = []
    for doc in docs:
        r = doc.row
        etypes, rtypes = list(r.get("entity_types") or []), list(r.get("relation_types") or [])
        schema = json_schema(etypes, rtypes) if cfg.constrained and not doc.thinking else None
        prompts.append((messages(r["text"], etypes, rtypes, thinking=doc.thinking), schema))
    out = []
    for j in range(cfg.k):
        sampling = llm.Sampling(cfg.max_new_tokens, cfg.temperature, cfg.top_p, cfg.seed + j)
        out += [llm.Request(messages=chat, schema=schema, sampling=sampling, sample=j) for chat, schema in prompts]
    return out


def answers(results: Sequence[llm.Result], n_docs: int, i: int) -> list[llm.Result]:
    """Document i's k answers from the results of `requests` (sample by sample)."""
    return list(results[i::n_docs]) if n_docs else []


def screen(res: llm.Result, doc: Doc, checks: FilterConfig) -> tuple[str, Graph | None, str | None]:
    """(verdict, graph, thinking) of one answer: "" when it passes every check."""
    if res.error:
        return GENERATION_ERROR, None, None
    parsed = parse_completion(res.text)
    if parsed.graph is None:
        return NO_GRAPH, None, None
    if doc.thinking and not (parsed.format_ok and parsed.think and parsed.think.strip()):
        return NO_THINK, parsed.graph, None
    r = doc.row
    candidate = {"text": r.get("text"), "graph": parsed.graph.to_json(), "gold": None, "error": "",
                 "entity_types": r.get("entity_types"), "relation_types": r.get("relation_types")}  # fmt: skip
    try:
        check(candidate, checks)  # the filter's own checks, in its order
    except Rejected as why:
        return FAILS + why.reason, parsed.graph, None
    return "", parsed.graph, parsed.think.strip() if doc.thinking and parsed.think else None


def score(cfg: SampleConfig, texts: Sequence[str], solution: str | None, doc: Doc) -> list[float | None]:
    """The weighted mean reward of each answer against `solution`; None for every answer
    when any reward cannot read the solution (no usable label)."""
    if solution is None or not texts:
        return [None] * len(texts)
    weights = cfg.reward_weights or [1.0] * len(cfg.rewards)
    n = len(texts)
    columns = {"solution": [solution] * n, "entity_types": [list(doc.row.get("entity_types") or [])] * n,
               "relation_types": [list(doc.row.get("relation_types") or [])] * n}  # fmt: skip
    per_reward = [f(prompts=[None] * n, completions=list(texts), **columns) for f in reward_funcs(cfg.rewards)]
    out: list[float | None] = []
    for i in range(n):
        values = [rewards[i] for rewards in per_reward]
        if any(v is None for v in values):
            out.append(None)
        else:
            out.append(sum(w * v for w, v in zip(weights, values)) / sum(weights))
    return out


def judge(cfg: SampleConfig, doc: Doc, results: Sequence[llm.Result], checks: FilterConfig) -> Judged:
    """The verdict on each of a document's answers and which one is kept."""
    screened = [screen(res, doc, checks) for res in results]
    texts = [res.text if not res.error else "" for res in results]
    scores = score(cfg, texts, doc.label, doc)
    judged = Judged(
        [v or "" for v, _, _ in screened], scores, [g for _, g, _ in screened], think=[t for _, _, t in screened]
    )
    passing = [j for j, (verdict, _, _) in enumerate(screened) if not verdict]
    if not passing:
        judged.reason = NO_ANSWER
    elif doc.label is not None and all(scores[j] is not None for j in passing):
        best = max(passing, key=lambda j: (scores[j], -j))
        judged.best = scores[best]
        if scores[best] >= cfg.min_reward:
            judged.kept = best
        else:
            judged.reason = LOW_REWARD
    elif cfg.consensus is not None and len(passing) > 1:
        agreement = {j: _agreement(cfg, doc, judged, j, passing, texts) for j in passing}
        best = max(passing, key=lambda j: (agreement[j], -j))
        judged.best = agreement[best]
        if agreement[best] >= cfg.consensus:
            judged.kept = best
        else:
            judged.reason = NO_CONSENSUS
    else:
        judged.reason = NO_CONSENSUS
    for j in range(len(results)):
        if judged.verdicts[j]:
            continue
        if j == judged.kept:
            judged.verdicts[j] = ACCEPTED
        elif judged.kept is not None:
            judged.verdicts[j] = NOT_BEST
        else:
            judged.verdicts[j] = BELOW if judged.reason == LOW_REWARD else NO_LABEL
    return judged


def _agreement(cfg: SampleConfig, doc: Doc, judged: Judged, j: int, passing: list[int], texts: list[str]) -> float:
    """Answer j's mean score against every other passing answer as the solution."""
    values = [score(cfg, [texts[j]], judged.graphs[i].to_json(), doc)[0] for i in passing if i != j]
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else 0.0


def accepted_row(doc: Doc, judged: Judged) -> dict[str, Any]:
    j = judged.kept
    graph_json = judged.graphs[j].to_json()
    think = judged.think[j] if doc.thinking else None
    doc_id = doc.row.get("doc_id") or doc.row["id"]
    return {**doc.row, "id": f"{doc_id}~s{j}", "doc_id": doc_id, "graph": graph_json, "think": think,
            "target": thinking_target(think, graph_json) if think is not None else graph_json}  # fmt: skip


def histogram(values: Sequence[float]) -> dict[str, int]:
    """Counts per bin of width 1/BINS over [0, 1] (1.0 in the last bin)."""
    out = {f"{b / BINS:.1f}-{(b + 1) / BINS:.1f}": 0 for b in range(BINS)}
    for v in values:
        b = min(BINS - 1, max(0, int(v * BINS)))
        out[f"{b / BINS:.1f}-{(b + 1) / BINS:.1f}"] += 1
    return out


def _doc_f1(gold: Graph, pred: Graph) -> tuple[float, dict[str, tuple[int, int, int]]]:
    """Mean of entity and relation F1 (sets, as the evaluation counts) and the counts."""
    tallies = {}
    f1s = []
    for kind, items in (("entities", entity_set), ("relations", relation_set)):
        c = count(items(gold), items(pred))
        tallies[kind] = (c.tp, c.fp, c.fn)
        f1s.append(c.prf()["f1"])
    return sum(f1s) / 2, tallies


def against_gold(docs: Sequence[Doc], judged: Sequence[Judged]) -> dict[str, Any]:
    """Kept answers against the documents' own gold (the toy world's hidden gold), next to
    the teacher's labels of the same documents: how often the student's answer is closer
    (mean of entity and relation F1), as close, or further. Empty without gold."""
    tally: dict[str, Any] = {"documents": 0, "closer": 0, "same": 0, "further": 0,
                             "answer": {"entities": [0, 0, 0], "relations": [0, 0, 0]},
                             "label": {"entities": [0, 0, 0], "relations": [0, 0, 0]}}  # fmt: skip
    for doc, j in zip(docs, judged):
        if j.kept is None or not doc.row.get("gold") or doc.label is None:
            continue
        try:
            gold = graph_from_obj(json.loads(doc.row["gold"]))
        except (ValueError, RecursionError):
            continue
        gold = gold.restricted(doc.row.get("entity_types") or [], doc.row.get("relation_types") or [])
        mine, mine_counts = _doc_f1(gold, j.graphs[j.kept])
        theirs, their_counts = _doc_f1(gold, graph_from_obj(json.loads(doc.label)))
        tally["documents"] += 1
        tally["closer" if mine > theirs + 1e-9 else "further" if mine < theirs - 1e-9 else "same"] += 1
        for who, counts in (("answer", mine_counts), ("label", their_counts)):
            for kind, (tp, fp, fn) in counts.items():
                acc = tally[who][kind]
                acc[0], acc[1], acc[2] = acc[0] + tp, acc[1] + fp, acc[2] + fn
    if not tally["documents"]:
        return {}
    for who in ("answer", "label"):
        tally[who] = {kind: dict(zip(("tp", "fp", "fn"), v)) for kind, v in tally[who].items()}
    return tally


def sample(cfg: SampleConfig, examples: pa.Table, model: Path, dropped: pa.Table | None = None) -> StageResult:
    started = time.time()
    missing = [
        c for c in ("id", "text", "entity_types", "relation_types", "graph", "target") if c not in examples.column_names
    ]
    if missing:
        raise SampleError(f"sample: the examples have no column(s) {missing}; feed it the reason stage's output")
    checks = cfg.checks or FilterConfig()  # a recipe's round fills in its filter section
    docs, skipped = select(cfg, examples, dropped)
    reqs = requests(cfg, docs)
    results, accounting = llm_cache.generate(cfg, str(model), reqs) if reqs else ([], {})
    if len(results) != len(reqs):
        raise RuntimeError(f"backend {cfg.backend} returned {len(results)} results for {len(reqs)} requests")
    _release_engine()
    generate_s = time.time() - started

    kept_rows, rejected_rows, judged_all = [], [], []
    reasons: Counter[str] = Counter(skipped)
    verdicts: Counter[str] = Counter()
    sample_scores, best_scores = [], []
    for i, doc in enumerate(docs):
        res = answers(results, len(docs), i)
        judged = judge(cfg, doc, res, checks)
        judged_all.append(judged)
        verdicts.update(judged.verdicts)
        sample_scores += [s for s in judged.scores if s is not None]
        if judged.best is not None and doc.label is not None:
            best_scores.append(judged.best)
        if judged.kept is not None:
            kept_rows.append(accepted_row(doc, judged))
        else:
            reasons[judged.reason] += 1
        for j, (r, verdict) in enumerate(zip(res, judged.verdicts)):
            if j == judged.kept:
                continue
            g = judged.graphs[j]
            rejected_rows.append({"id": doc.row["id"], "split": doc.row.get("split"), "sample": j, "completion": r.text,
                                  "graph": g.to_json() if g is not None else None, "reward": judged.scores[j],
                                  "verdict": verdict})  # fmt: skip

    n_docs, n_kept = len(docs), len(kept_rows)
    summary: dict[str, Any] = {
        "rows_in": examples.num_rows + (dropped.num_rows if dropped is not None else 0),
        "rows_out": n_kept,
        "model": cfg.model,
        "documents": n_docs,
        "samples": len(reqs),
        "accepted": n_kept,
        "rejected": n_docs - n_kept,
        "acceptance_rate": round(n_kept / n_docs, 4) if n_docs else 0.0,
        "reasons": dict(sorted(reasons.items())),
        "verdicts": dict(sorted(verdicts.items())),
        "best_reward": histogram(best_scores),
        "sample_reward": histogram(sample_scores),
        "mean_best_reward": round(sum(best_scores) / len(best_scores), 4) if best_scores else None,
        "generate_s": round(generate_s, 3),
        "llm": accounting,
    }
    if scored := against_gold(docs, judged_all):
        summary["vs_gold"] = scored
        summary["student_beats_teacher_rate"] = round(scored["closer"] / scored["documents"], 4)
    summary["seconds"] = round(time.time() - started, 1)
    files = {
        "report.md": report(cfg, summary).encode(),
        "rewards.png": plot(best_scores, sample_scores, cfg.min_reward),
    }
    return StageResult(
        main=pa.Table.from_pylist(kept_rows, schema=examples.schema),
        side={"rejected": pa.Table.from_pylist(rejected_rows, schema=REJECTED_SCHEMA)},
        summary=summary,
        files=files,
    )


def _release_engine() -> None:
    """The sampled model is this stage's own: drop its engine once the answers are in, so
    the next round's training finds the memory (the GPU) free."""
    llm.clear_cache()
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _prf(counts: dict[str, int]) -> str:
    p = Counts(**counts).prf()
    return f"{p['precision']:.3f} / {p['recall']:.3f} / {p['f1']:.3f}"


def report(cfg: SampleConfig, s: dict[str, Any]) -> str:
    """report.md: what was sampled, what was kept, the reward distribution, and against the gold."""
    lines = [
        f"### Rejection sampling: {s['documents']} documents x {cfg.k} answers from the round before's {cfg.model} model",
        "",
        f"- accepted {s['accepted']} documents ({100 * s['acceptance_rate']:.1f}%), rejected {s['rejected']}; "
        f"min_reward {cfg.min_reward} on {', '.join(cfg.rewards)}",
        f"- mean best reward {s['mean_best_reward'] if s['mean_best_reward'] is not None else 'n/a'}",
        "",
        "| reason | rows |",
        "|---|---:|",
        *[f"| {why} | {n} |" for why, n in s["reasons"].items()],
        "",
        "| answer verdict | answers |",
        "|---|---:|",
        *[f"| {why} | {n} |" for why, n in s["verdicts"].items()],
        "",
        "| reward | best answer per document | every scored answer |",
        "|---|---:|---:|",
        *[f"| {b} | {s['best_reward'][b]} | {s['sample_reward'][b]} |" for b in s["best_reward"]],
    ]
    if g := s.get("vs_gold"):
        lines += [
            "",
            f"Against the documents' gold ({g['documents']} accepted documents that carry one): the kept answer is "
            f"closer than the teacher's label on {g['closer']} ({100 * g['closer'] / g['documents']:.1f}%), "
            f"as close on {g['same']}, further on {g['further']}.",
            "",
            "| | entity P / R / F1 | relation P / R / F1 |",
            "|---|---|---|",
            f"| kept answers | {_prf(g['answer']['entities'])} | {_prf(g['answer']['relations'])} |",
            f"| teacher labels | {_prf(g['label']['entities'])} | {_prf(g['label']['relations'])} |",
        ]
    return "\n".join(lines) + "\n"


def run_report(summary: dict[str, Any], node: reporting.ReportNode, kind: reporting.Kind) -> dict[str, list[str]]:
    """The registry's report hook (t2g.reporting): one line of the closing text per
    round: documents, answers, what was kept and, where the documents carry gold, how
    often the kept answer beats the teacher's label."""
    s = summary
    if kind != "text" or "documents" not in s:
        return {}
    line = (f"{node.name}: {s['documents']} documents x {s['samples'] // max(s['documents'], 1)} answers from "
            f"the round before's {s.get('model')}: {s['accepted']} accepted ({100 * s['acceptance_rate']:.1f}%), "
            f"mean best reward {s.get('mean_best_reward')}")  # fmt: skip
    if g := s.get("vs_gold"):
        line += (
            f"; against the gold, the kept answer beats the teacher's label on {g['closer']} of "
            f"{g['documents']} ({100 * g['closer'] / g['documents']:.1f}%), ties on {g['same']}"
        )
    return {"rounds": [line + f" ({node.uri}/report.md)"]}


def plot(best: Sequence[float], every: Sequence[float], min_reward: float) -> bytes:
    out: list[bytes] = []
    with png_figure(out) as (fig, ax):
        edges = [b / BINS for b in range(BINS + 1)]
        if every:
            ax.hist(every, bins=edges, alpha=0.5, label="every scored answer")
        if best:
            ax.hist(best, bins=edges, alpha=0.7, label="best answer per document")
        ax.axvline(min_reward, color="black", linestyle="--", linewidth=1, label=f"min_reward {min_reward}")
        ax.set_xlabel("weighted mean reward against the teacher's label")
        ax.set_ylabel("count")
        ax.set_title("Rejection sampling")
        ax.legend(fontsize=8)
    return out[0]
