"""Filter: keep the teacher's graphs worth training on, then augment them.

Checks run in a fixed order and the first failure is the recorded reason, so a drop
count means the same thing in every run. Every dropped row goes to the `dropped` side
table with all its input columns, and always rows_in == kept + dropped.

Ungrounded entities (`ungrounded`): an entity is grounded when its normalised text
(t2g.metrics.normalise: NFKC, casefold, whitespace collapsed) is non-empty and occurs in
the normalised document text. With "drop" (the default) one ungrounded entity drops the
document. With "repair" every ungrounded entity is removed (each listing of it, whatever
its type), with every relation whose head or tail is its text (relations name entities by
text, as `Graph.dangling` reads them; an entity's id is not a reference), and the rest of
the document goes through the remaining checks as if the teacher had answered so. A
relation that named no entity before the repair is still a dangling relation and drops
the document, as it does without repair. A repaired document that fails a later check is
dropped under that check's reason, its detail saying "after repair" and what was removed.

A repaired document is a kept document (so the counts still read rows in - each drop
reason + variants = rows out), and its variants are cut from the repaired graph. Nothing
repair removes is lost: each repaired document is a row of the `repaired` side table (only
written when `ungrounded` is "repair"), with all its input columns (the teacher's whole
graph among them), `reason`, `detail` (how many entities and relations went) and `removed`
(a graph JSON of exactly what went). The summary counts them apart from drops:
`repaired` ({reason: documents}), `repair_removed` ({entities, relations}) and
`repaired_then_dropped` ({drop reason: documents}). The `dropped` table holds only dropped
rows, so its row count stays the drop count.

Augmentation teaches the student that the request matters: each kept example also
comes back as variants asking for a subset of the types present plus types that were
requested from the teacher but found absent, with the graph restricted to the new
request. Absent types come from the row's own request only: the teacher was asked for
them and found none, so an empty answer for them is a verified label; a type the teacher
was never asked about could be present in the text.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from t2g import reporting
from t2g.config import AugmentConfig, FilterConfig
from t2g.graph import Entity, Graph, Relation, graph_from_obj
from t2g.metrics import normalise
from t2g.stage import StageResult

MAIN_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("source", pa.string()),
        pa.field("split", pa.string()),
        pa.field("entity_types", pa.list_(pa.string())),
        pa.field("relation_types", pa.list_(pa.string())),
        pa.field("graph", pa.string(), nullable=False),
        pa.field("gold", pa.string()),
        pa.field("variant", pa.int32(), nullable=False),
    ]
)

# Drop reasons, in the order they are checked.
EXTRACTION_ERROR = "extraction error"
INVALID_GRAPH = "invalid graph"
INVALID_GOLD = "invalid gold"
TOO_SHORT = "text too short"
TOO_LONG = "text too long"
UNGROUNDED = "ungrounded entity"
DANGLING = "dangling relation"
ENTITY_TYPE = "entity type not requested"
RELATION_TYPE = "relation type not requested"
TOO_FEW_ENTITIES = "too few entities"
TOO_MANY_ENTITIES = "too many entities"
TOO_FEW_RELATIONS = "too few relations"
TOO_MANY_RELATIONS = "too many relations"

# Repair reasons (filter.ungrounded: repair): the document is kept.
UNGROUNDED_REMOVED = "ungrounded entity removed"

BATCH_ROWS = 10_000


class Rejected(Exception):
    def __init__(self, reason: str, detail: str = "", repaired: bool = False):
        super().__init__(reason)
        self.reason, self.detail, self.repaired = reason, detail, repaired


@dataclass(frozen=True)
class Repair:
    """What repair took out of a teacher's graph."""

    entities: tuple[Entity, ...]
    relations: tuple[Relation, ...]

    def detail(self) -> str:
        distinct = list(dict.fromkeys(e.text for e in self.entities))
        names = "; ".join(distinct)
        names = names if len(names) <= 200 else names[:199] + "…"
        return (f"removed {_plural(len(self.entities), 'ungrounded entity', 'ungrounded entities')} ({names}) "
                f"and {_plural(len(self.relations), 'relation', 'relations')} naming {'it' if len(distinct) == 1 else 'them'}")  # fmt: skip

    def to_json(self) -> str:
        return Graph(entities=list(self.entities), relations=list(self.relations)).model_dump_json(exclude_none=True)


@dataclass(frozen=True)
class Checked:
    graph: Graph
    gold: Graph | None
    repair: Repair | None = None


def filter_graphs(cfg: FilterConfig, table: pa.Table) -> StageResult:
    """Keep the rows of `table` (the extract output) that pass every check, plus their
    augmentation variants.

    main: MAIN_SCHEMA; the original of a document has `id == doc_id` and variant 0,
    variant k has id `<doc_id>~v<k>`. side["dropped"]: the input columns plus `reason`
    (categorical, one of the constants above) and `detail` (what exactly failed).
    side["repaired"] (only with `ungrounded: repair`): the input columns of each kept
    document that repair changed, plus `reason`, `detail` and `removed` (graph JSON).
    """
    out: dict[str, list[Any]] = {name: [] for name in MAIN_SCHEMA.names}
    dropped: list[dict[str, Any]] = []
    repaired: list[dict[str, Any]] = []
    reasons: Counter[str] = Counter()
    then_dropped: Counter[str] = Counter()
    removed = {"entities": 0, "relations": 0}
    kept = variants = 0

    for row in _rows(table):
        try:
            checked = check(row, cfg)
        except Rejected as why:
            reasons[why.reason] += 1
            then_dropped[why.reason] += why.repaired
            dropped.append({**row, "reason": why.reason, "detail": why.detail})
            continue
        kept += 1
        if checked.repair is not None:
            fix = checked.repair
            removed["entities"] += len(fix.entities)
            removed["relations"] += len(fix.relations)
            repaired.append({**row, "reason": UNGROUNDED_REMOVED, "detail": fix.detail(), "removed": fix.to_json()})
        for example in examples(row, checked, cfg.augment):
            variants += example["variant"] > 0
            for name, column in out.items():
                column.append(example[name])

    dropped_schema = table.schema.append(pa.field("reason", pa.string())).append(pa.field("detail", pa.string()))
    side = {"dropped": pa.Table.from_pylist(dropped, schema=dropped_schema)}
    summary = {
        "rows_in": table.num_rows,
        "kept": kept,
        "dropped": len(dropped),
        "variants": variants,
        "reasons": dict(sorted(reasons.items())),
    }
    if cfg.ungrounded == "repair":
        side["repaired"] = pa.Table.from_pylist(
            repaired, schema=dropped_schema.append(pa.field("removed", pa.string()))
        )
        summary["repaired"] = {UNGROUNDED_REMOVED: len(repaired)} if repaired else {}
        summary["repair_removed"] = removed
        summary["repaired_then_dropped"] = {why: n for why, n in sorted(then_dropped.items()) if n}
    return StageResult(main=pa.Table.from_pydict(out, schema=MAIN_SCHEMA), side=side, summary=summary)


def run_report(summary: dict[str, Any], node: reporting.ReportNode, kind: reporting.Kind) -> dict[str, list[str]]:
    """The registry's report hook (t2g.reporting): the run report's table of what was
    repaired instead of dropped; in the closing text, after the teacher's label quality
    (only when its labels, the `table` input, were scored against gold), how many of
    those labelled documents were kept, repaired and dropped, and why."""
    repaired = summary.get("repaired") or {}
    if kind == "markdown":
        rows = [{"stage": node.name, "repaired (kept)": why, "rows": n} for why, n in sorted(repaired.items())]
        return {"counts": ["", "### Repaired instead of dropped", "", *reporting.table(rows)]} if rows else {}
    if not summary or not (node.inputs.get("table") or {}).get("vs_gold"):
        return {}
    dropped = ", ".join(
        f"{n} {why}" for why, n in sorted((summary.get("reasons") or {}).items(), key=lambda kv: -kv[1])
    )
    fixed = ", ".join(f"{why}: {n}" for why, n in sorted(repaired.items(), key=lambda kv: -kv[1]))
    return {"data": [f"filter kept {summary.get('kept')} of {summary.get('rows_in')} labelled documents"
                     + (f", {sum(repaired.values())} of them repaired ({fixed})" if repaired else "")
                     + (f" (dropped: {dropped})" if dropped else "")]}  # fmt: skip


def _rows(table: pa.Table) -> Iterator[dict[str, Any]]:
    # Batches bound the Python objects alive at once to one batch's worth.
    for batch in table.to_batches(max_chunksize=BATCH_ROWS):
        yield from batch.to_pylist()


def check(row: dict[str, Any], cfg: FilterConfig) -> Checked:
    """The parsed graph (and gold) of a row that passes every check; raises Rejected
    with the first failing check otherwise."""
    if row.get("error"):
        raise Rejected(EXTRACTION_ERROR, str(row["error"]))
    graph = _graph(row.get("graph"), INVALID_GRAPH)
    gold = _graph(row["gold"], INVALID_GOLD) if row.get("gold") is not None else None

    text = row.get("text")
    if not isinstance(text, str):
        raise Rejected(TOO_SHORT, "no text")
    if len(text) < cfg.min_chars:
        raise Rejected(TOO_SHORT, f"{len(text)} < {cfg.min_chars} chars")
    if len(text) > cfg.max_chars:
        raise Rejected(TOO_LONG, f"{len(text)} > {cfg.max_chars} chars")

    haystack = normalise(text)
    ungrounded = [e for e in graph.entities if not grounded(e.text, haystack)]
    if not ungrounded:
        return Checked(_checked(row, graph, cfg), gold)
    if cfg.ungrounded == "drop":
        raise Rejected(UNGROUNDED, ungrounded[0].text)
    graph, fix = without(graph, ungrounded)
    try:
        return Checked(_checked(row, graph, cfg), gold, fix)
    except Rejected as why:
        raise Rejected(why.reason, f"{why.detail} (after repair: {fix.detail()})", repaired=True) from None


def grounded(name: str, haystack: str) -> bool:
    """Whether an entity named `name` occurs in the text whose normalise() is `haystack`."""
    needle = normalise(name)
    return bool(needle) and needle in haystack


def without(graph: Graph, entities: Sequence[Entity]) -> tuple[Graph, Repair]:
    """`graph` less every entity listed with the text of one of `entities`, and less every
    relation whose head or tail is such a text; and what was taken out."""
    gone = {e.text for e in entities}
    ents = [e for e in graph.entities if e.text in gone]
    rels = [r for r in graph.relations if r.head in gone or r.tail in gone]
    kept = Graph(
        entities=[e for e in graph.entities if e.text not in gone],
        relations=[r for r in graph.relations if r.head not in gone and r.tail not in gone],
    )
    return kept, Repair(tuple(ents), tuple(rels))


def _checked(row: dict[str, Any], graph: Graph, cfg: FilterConfig) -> Graph:
    """`graph` when it passes the checks after grounding; raises Rejected otherwise."""
    dangling = graph.dangling()
    if dangling:
        r = dangling[0]
        raise Rejected(DANGLING, f"{r.head} -[{r.type}]-> {r.tail}")

    # A null request means the types are unknown, not that none were allowed.
    if row.get("entity_types") is not None:
        allowed = set(row["entity_types"])
        for entity in graph.entities:
            if entity.type not in allowed:
                raise Rejected(ENTITY_TYPE, entity.type)
    if row.get("relation_types") is not None:
        allowed = set(row["relation_types"])
        for relation in graph.relations:
            if relation.type not in allowed:
                raise Rejected(RELATION_TYPE, relation.type)

    _bounds(len(graph.entities), cfg.min_entities, cfg.max_entities, TOO_FEW_ENTITIES, TOO_MANY_ENTITIES)
    _bounds(len(graph.relations), cfg.min_relations, cfg.max_relations, TOO_FEW_RELATIONS, TOO_MANY_RELATIONS)
    return graph


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _graph(value: Any, reason: str) -> Graph:
    if not isinstance(value, str):
        raise Rejected(reason, "missing")
    try:
        return graph_from_obj(json.loads(value))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise Rejected(reason, str(exc)[:500]) from None


def _bounds(n: int, low: int, high: int, too_few: str, too_many: str) -> None:
    if n < low:
        raise Rejected(too_few, f"{n} < {low}")
    if n > high:
        raise Rejected(too_many, f"{n} > {high}")


# --- augmentation --------------------------------------------------------------------


def examples(row: dict[str, Any], checked: Checked, cfg: AugmentConfig) -> Iterator[dict[str, Any]]:
    """The original example, then its type-subset variants.

    A variant whose request repeats an earlier one (a graph with a single type, say) is
    skipped: it would only weigh that example twice.
    """
    doc = row["id"]
    base = {"doc_id": doc, "text": row["text"], "source": row.get("source"), "split": row.get("split")}
    yield {
        **base,
        "id": doc,
        "entity_types": row.get("entity_types"),
        "relation_types": row.get("relation_types"),
        "graph": checked.graph.to_json(),
        "gold": checked.gold.to_json() if checked.gold is not None else None,
        "variant": 0,
    }
    rng = random.Random(f"{cfg.seed}:{doc}")  # per row: independent of row order and batch
    present_e = [e.type for e in checked.graph.entities]
    present_r = [r.type for r in checked.graph.relations]
    # No request on the row means "whatever is there": the same as asking for the present types.
    seen = {
        _request_key(_inventory(row.get("entity_types"), present_e), _inventory(row.get("relation_types"), present_r))
    }
    for k in range(1, cfg.variants + 1):
        etypes = sample_request(rng, row.get("entity_types"), present_e, cfg)
        rtypes = sample_request(rng, row.get("relation_types"), present_r, cfg)
        key = _request_key(etypes, rtypes)
        if key in seen:
            continue
        seen.add(key)
        yield {
            **base,
            "id": f"{doc}~v{k}",
            "entity_types": etypes,
            "relation_types": rtypes,
            "graph": checked.graph.restricted(etypes, rtypes).to_json(),
            "gold": checked.gold.restricted(etypes, rtypes).to_json() if checked.gold is not None else None,
            "variant": k,
        }


def sample_request(
    rng: random.Random, requested: Sequence[str] | None, present: Sequence[str], cfg: AugmentConfig
) -> list[str]:
    """A sampled share of the present types (at least one, when any) plus up to
    `negative_types` requested-but-absent ones, in the order of the original request."""
    present_set = set(present)
    inventory = _inventory(requested, present)
    have = [t for t in inventory if t in present_set]
    absent = [t for t in inventory if t not in present_set]
    n_keep = max(1, round(cfg.keep_types * len(have))) if have else 0
    chosen = set(rng.sample(have, n_keep)) | set(rng.sample(absent, min(cfg.negative_types, len(absent))))
    return [t for t in inventory if t in chosen]


def _inventory(requested: Sequence[str] | None, present: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(requested if requested is not None else present))


def _request_key(etypes: Sequence[str], rtypes: Sequence[str]) -> tuple[frozenset[str], frozenset[str]]:
    return frozenset(etypes), frozenset(rtypes)
