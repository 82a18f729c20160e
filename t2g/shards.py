"""Sharded stages: split a stage's input into shards, run each shard as its own cached
unit, merge the shard outputs into the stage's one artifact.

A shard's key is its content digest + the stage config + the other inputs' keys + the
fingerprints of what the section names outside the store + the code version, so a crash
costs at most the shards in flight and a rerun reuses every finished shard. The merged
artifact is written under the node's key (Node.key, t2g.keys.node_key), through the
runner's own "finished?" check and write path (t2g.runner.finished, commit): downstream
stages and the run cache cannot tell a sharded stage from a plain one.

Shards are cut by content, not position (`split`): rows are grouped by document (the
`doc_id` column, else `id`), and a shard is a range of the groups' digests, the whole
digest space halved while a range holds more than SPREAD x `size` rows. Where a document
falls depends only on itself, so a document inserted into or removed from a grown corpus
changes the one shard it falls in (one that tips its range over the limit splits it, the
other half changes too), and a rerun over a grown corpus pays only for those. Digests
spread evenly, so shards hold `size`/SPREAD to SPREAD x `size` rows: a sharded stage waits
on no shard much larger than the rest. The merge puts the rows back in the input's order.

Plain Python, no Prefect: tasks/shards.py maps these over Prefect tasks, and any other
driver (a script, a test) can run them in a loop.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from pydantic import BaseModel

from t2g.keys import config_dict, node_key, shard_stage  # shard_stage: the store name of shard outputs
from t2g.llm.cache import as_reused
from t2g.runner import Outcome, Upstream, commit, finished, load_inputs, named, stage_key
from t2g.stage import StageResult
from t2g.stages import registered
from t2g.store import ArtifactRef, Store, table_digest


def shard_input_stage(stage: str) -> str:
    return f"{stage}-shardin"  # content-addressed shard inputs (key = digest)


# A digest range is halved while it holds more than SPREAD x size rows: shards hold size /
# SPREAD to SPREAD x size. (Cutting after a group whose digest hits a pattern, as before,
# made shard sizes geometric: the largest of 8 was ~2.7 times the mean, of 50 ~4.5 times,
# and a stage waited on it while the server idled.)
SPREAD = math.sqrt(2)
GROUP_COLUMNS = ("doc_id", "id")  # what rows are grouped by: a document and its variants


def group_column(table: pa.Table) -> str | None:
    return next((c for c in GROUP_COLUMNS if c in table.column_names), None)


def split(table: pa.Table, size: int) -> list[pa.Table]:
    """Shards of `size` rows on average, cut by content (see the module docstring); a
    table without an id column is cut by position. An empty table is one empty shard (its
    schema still flows to the merged artifact)."""
    if size < 1:
        raise ValueError(f"shard size must be at least 1, got {size}")
    if table.num_rows == 0:
        return [table]
    column = group_column(table)
    if column is None:
        return [table.slice(start, size) for start in range(0, table.num_rows, size)]
    order, cuts = content_cuts(table.column(column).to_pylist(), size)
    walked = table.take(pa.array(order, pa.int64()))
    return [walked.slice(start, end - start) for start, end in zip(cuts, cuts[1:])]


DIGEST_SPACE = 1 << 64  # a group's place: the first 8 bytes of its sha256


def content_cuts(groups: Sequence[Any], size: int) -> tuple[list[int], list[int]]:
    """(row order, shard boundaries in that order). Rows are walked by their group's
    digest, input order within a group; [0, DIGEST_SPACE) is halved while a range holds
    more than SPREAD x `size` rows and more than one group, and each range that holds rows
    is a shard."""
    digests = {g: int.from_bytes(hashlib.sha256(str(g).encode()).digest()[:8], "big") for g in set(groups)}
    order = sorted(range(len(groups)), key=lambda i: (digests[groups[i]], i))
    places = [digests[groups[i]] for i in order]
    limit = max(1, math.floor(SPREAD * size))
    cuts, ranges = [0], [(0, len(order), 0, DIGEST_SPACE)]  # rows [start, end), digests [low, low + width)
    while ranges:
        start, end, low, width = ranges.pop()
        if end - start <= limit or places[start] == places[end - 1]:  # small enough, or one group
            if end > start:
                cuts.append(end)
            continue
        half = width // 2
        middle = bisect.bisect_left(places, low + half, start, end)
        ranges += [(middle, end, low + half, half), (start, middle, low, half)]  # the lower half pops first
    return order, cuts


def input_positions(table: pa.Table) -> dict[Any, int]:
    """Where each group starts in the input, by group value and by row id: the merge
    sorts output rows by it (outputs carry their input's `doc_id` or `id`)."""
    column = group_column(table)
    if column is None:
        return {}
    groups = table.column(column).to_pylist()
    ids = table.column("id").to_pylist() if "id" in table.column_names else groups
    first: dict[Any, int] = {}
    for pos, (group, row_id) in enumerate(zip(groups, ids)):
        first.setdefault(group, pos)
        first.setdefault(row_id, first[group])
    return first


def in_input_order(table: pa.Table, positions: dict[Any, int]) -> pa.Table:
    """`table`'s rows by their group's position in the input; rows of one group (and
    rows the input does not know) keep their shard order."""
    column = group_column(table)
    if column is None or not positions or table.num_rows == 0:
        return table
    keys = table.column(column).to_pylist()
    end = len(positions)
    order = sorted(range(len(keys)), key=lambda i: (positions.get(keys[i], end), i))
    return table.take(pa.array(order, pa.int64()))


# Where a row came from (collect's `meta`: file and line): it moves when a document is
# inserted above, while what the stage makes of the row does not. Left out of the shard
# digest, and refreshed from the input when the shards are merged.
VOLATILE = ("meta",)


def digest(table: pa.Table) -> str:
    """Digest of a shard's rows and schema (t2g.store.table_digest: chunking, slicing and
    Parquet do not count), VOLATILE columns aside, shortened: shard keys keep their length."""
    return table_digest(table.drop_columns([c for c in VOLATILE if c in table.column_names]))[:24]


def fresh_volatile(table: pa.Table, source: pa.Table) -> pa.Table:
    """`table` with its VOLATILE columns taken from `source` (by row id): a reused shard
    carries the line numbers of the run that made it."""
    if "id" not in table.column_names or "id" not in source.column_names:
        return table
    ids = table.column("id").to_pylist()
    for name in (c for c in VOLATILE if c in table.column_names and c in source.column_names):
        current = dict(zip(source.column("id").to_pylist(), source.column(name).to_pylist()))
        old = table.column(name).to_pylist()
        values = [current.get(i, v) for i, v in zip(ids, old)]
        field = table.schema.field(name)
        table = table.set_column(table.schema.get_field_index(name), field, pa.array(values, field.type))
    return table


@dataclass(frozen=True)
class Shard:
    index: int
    digest: str  # of the shard's input rows
    key: str  # of the shard's output
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "digest": self.digest, "key": self.key, "rows": self.rows}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Shard:
        return cls(int(d["index"]), d["digest"], d["key"], int(d["rows"]))


@dataclass
class Plan:
    key: str  # the merged artifact's key
    done: ArtifactRef | None  # the merged artifact when it exists already
    shards: list[Shard] = field(default_factory=list)


def cut_along(stage: str, config: Any, upstream: Upstream) -> tuple[str, ArtifactRef, dict[str, ArtifactRef]]:
    """The input a sharded stage is cut along (its first declared input), and the others."""
    inputs = named(stage, config, upstream)
    param = registered(stage).inputs[0].param
    if param not in inputs:
        raise ValueError(f"sharded stage {stage} got no {param!r} input to cut into shards")
    return param, inputs[param], {p: ref for p, ref in inputs.items() if p != param}


def shard_key(stage: str, config: BaseModel | dict[str, Any], shard_digest: str, others: dict[str, ArtifactRef]) -> str:
    return node_key(stage, config, {p: ref.key for p, ref in others.items()}, shard=shard_digest)


def plan(stage: str, config: Any, upstream: Upstream, store: Store, size: int, key: str | None = None) -> Plan:
    """Cut the first input into shards and store each (idempotent: content-addressed).
    Nothing is cut when the merged artifact exists. `key`: the node's (Node.key); None,
    for a caller without a plan: t2g.runner.stage_key."""
    key = key or stage_key(stage, config, upstream)
    done = finished(stage, key, store, time.time())
    if done is not None:
        return Plan(key, done.ref)
    _, source, others = cut_along(stage, config, upstream)
    table = store.read(source.stage, source.key)
    shards = []
    for index, part in enumerate(split(table, size)):
        d = digest(part)
        if store.finished(shard_input_stage(stage), d) is None:
            store.write(shard_input_stage(stage), d, part, meta={"of": source.to_dict()})
        shards.append(Shard(index, d, shard_key(stage, config, d, others), part.num_rows))
    return Plan(key, None, shards)


@dataclass
class ShardOutcome:
    shard: Shard
    hit: bool
    rows: int
    summary: dict[str, Any]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "shard": self.shard.to_dict(),
            "hit": self.hit,
            "rows": self.rows,
            "summary": self.summary,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ShardOutcome:
        return cls(Shard.from_dict(d["shard"]), bool(d["hit"]), int(d["rows"]), d["summary"], float(d["seconds"]))


def run_shard(stage: str, config: Any, shard: Shard, upstream: Upstream, store: Store, **kwargs: Any) -> ShardOutcome:
    """Run the stage on one shard, or reuse its finished output. Side tables are written
    before the shard's main output, whose manifest marks the shard finished."""
    started = time.time()
    out_stage = shard_stage(stage)
    if store.finished(out_stage, shard.key) is not None:
        m = store.manifest(out_stage, shard.key)
        return ShardOutcome(shard, True, int(m["rows"]), m.get("summary", {}), time.time() - started)
    spec = registered(stage)
    param, _, others = cut_along(stage, config, upstream)
    inputs = {param: store.read(shard_input_stage(stage), shard.digest), **load_inputs(stage, others, store)}
    result = spec.load()(config, **inputs, **kwargs)
    if not isinstance(result.main, pa.Table):
        result.main = pa.concat_tables(list(result.main))
    meta = {"summary": result.summary, "shard": shard.to_dict(), "config": config_dict(config)}
    for name, table in result.side.items():
        store.write(f"{out_stage}-{name}", shard.key, table, meta=meta)
    ref = store.write(out_stage, shard.key, result.main, meta=meta)
    return ShardOutcome(shard, False, ref.rows, result.summary, time.time() - started)


def merge_summaries(summaries: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Add up shard summaries: numbers are summed, dicts merged key by key, any other
    value kept when every shard agrees (a list of the distinct values otherwise)."""
    out: dict[str, Any] = {}
    for summary in summaries:
        for k, v in summary.items():
            if k not in out:
                out[k] = dict(v) if isinstance(v, dict) else v
            elif isinstance(v, bool) or not isinstance(v, (int, float, dict)):
                if out[k] != v:
                    seen = out[k] if isinstance(out[k], list) else [out[k]]
                    out[k] = seen if v in seen else [*seen, v]
            elif isinstance(v, dict):
                out[k] = merge_summaries([out[k], v])
            else:
                out[k] = round(out[k] + v, 3) if isinstance(v, float) or isinstance(out[k], float) else out[k] + v
    return out


def merge(
    stage: str,
    config: Any,
    upstream: Upstream,
    shards: Sequence[Shard],
    store: Store,
    extra_summary: dict[str, Any] | None = None,
    reused: Iterable[str] = (),
    key: str | None = None,
) -> Outcome:
    """Concatenate the finished shards into the stage's artifact under `key` (the node's;
    None: t2g.runner.stage_key), rows back in the input's order, through the runner's own
    write path (t2g.runner.commit). `reused`: keys of shards this run found finished;
    their requests count as cache hits."""
    started = time.time()
    upstream = named(stage, config, upstream)
    key = key or stage_key(stage, config, upstream)
    done = finished(stage, key, store, started)
    if done is not None:
        return done
    out_stage = shard_stage(stage)
    ordered = sorted(shards, key=lambda s: s.index)
    _, source, _ = cut_along(stage, config, upstream)
    source_table = store.read(source.stage, source.key) if ordered else None
    positions = input_positions(source_table) if ordered else {}

    def restored(table: pa.Table) -> pa.Table:
        return fresh_volatile(in_input_order(table, positions), source_table)

    def main() -> Iterator[pa.Table]:  # read when written: the main table is not held while the sides are
        if ordered:
            yield restored(pa.concat_tables([store.read(out_stage, s.key) for s in ordered]))

    manifests = [store.manifest(out_stage, s.key) for s in ordered]  # raises if a shard is missing
    reused = set(reused)
    summary = merge_summaries(as_reused(m.get("summary", {})) if s.key in reused else m.get("summary", {})
                              for s, m in zip(ordered, manifests))  # fmt: skip
    summary["shards"] = len(ordered)
    side = MergedSides(store, out_stage, ordered, registered(stage).side, restored)
    result = StageResult(main=main(), side=side, summary=summary)  # type: ignore[arg-type]
    return commit(
        stage, config, upstream, key, store, result, started, extra_summary, {"shards": [s.to_dict() for s in ordered]}
    )


class MergedSides(Mapping[str, pa.Table]):
    """A merged stage's side tables, by name, each read from its shards only when asked
    for: the merge holds one side table at a time, as it writes them."""

    def __init__(self, store: Store, out_stage: str, shards: Sequence[Shard], names: Iterable[str],
                 restored: Callable[[pa.Table], pa.Table]) -> None:  # fmt: skip
        self.store, self.out_stage, self.restored = store, out_stage, restored
        self.keys = {
            n: keys for n in names if (keys := [s.key for s in shards if store.has(f"{out_stage}-{n}", s.key)])
        }

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, name: str) -> pa.Table:
        return self.restored(
            pa.concat_tables([self.store.read(f"{self.out_stage}-{name}", key) for key in self.keys[name]])
        )


def run_all(
    stage: str, config: Any, upstream: Upstream, store: Store, size: int, key: str | None = None, **kwargs: Any
) -> Outcome:
    """The whole sharded stage in this process, one shard after another (no Prefect).
    `key`: the node's (Node.key); None: t2g.runner.stage_key."""
    p = plan(stage, config, upstream, store, size, key)
    if p.done is not None:
        return merge(stage, config, upstream, [], store, key=p.key)
    reused = [shard.key for shard in p.shards if run_shard(stage, config, shard, upstream, store, **kwargs).hit]
    return merge(stage, config, upstream, p.shards, store, reused=reused, key=p.key)
