"""Fuzzy pairs by shards of blocking keys (with `resolve.shard_size`; docs/graph.md, "Scale").

Two nodes before resolve:

- `resolve-blocks` (one task): every block of every distinct full name (t2g.kg.blocking:
  MinHash bands by type; the common tokens counted over all names, so a name gets the same
  blocks wherever it is cut). One row per (block, name), the block in the `id` column:
  the column t2g.shards groups rows by.
- `resolve-pairs` (`rows` shards on the recipe's task runner: threads, Dask, Ray): t2g.shards
  cuts the blocks by content, whole blocks only, walked in the order of their digest, so a
  shard is a hash range of blocking keys and each block's names are compared in exactly
  one shard. Each shard's pairs (`block_pairs`; with a judge, the uncertain ones kept as
  rule `uncertain`) are cached as a shard, and the merge concatenates them.

resolve then takes the pairs (`concat_pairs` makes them one row per pair, sorted: the same
table for any shard size) and asks the judge, in one batch. No process holds every pair of
mentions: a shard holds its blocks' names, resolve the accepted and uncertain pairs.
"""

from __future__ import annotations

import pyarrow as pa

from t2g.kg.blocking import PAIRS, block_pairs, blocking_keys
from t2g.kg.config import BlockPairsConfig
from t2g.stage import StageResult

SHARD_BLOCKS = pa.schema([("id", pa.string()), ("type", pa.string()), ("key", pa.string())])


def resolve_blocks(cfg: BlockPairsConfig, mentions: pa.Table) -> StageResult:
    blocks = blocking_keys(mentions)
    table = pa.table({"id": blocks.column("block"), "type": blocks.column("type"), "key": blocks.column("key")},
                     schema=SHARD_BLOCKS)  # fmt: skip
    summary = {"rows_in": mentions.num_rows, "names": len(set(zip(*(blocks.column(c).to_pylist() for c in ("type", "key"))))),
               "blocks": len(set(table.column("id").to_pylist()))}  # fmt: skip
    return StageResult(main=table, summary=summary)


def resolve_pairs(cfg: BlockPairsConfig, blocks: pa.Table) -> StageResult:
    named = pa.table({"block": blocks.column("id"), "type": blocks.column("type"), "key": blocks.column("key")})
    options = {"fuzzy_threshold": cfg.fuzzy_threshold}
    if cfg.judge_threshold is not None:
        options.update(judge_threshold=cfg.judge_threshold, uncertain=True)
    pairs = block_pairs(named, **options) if blocks.num_rows else PAIRS.empty_table()
    rules = pairs.column("rule").to_pylist()
    summary = {
        "rows_in": blocks.num_rows,
        "pairs": pairs.num_rows,
        **{f"pairs_{r}": rules.count(r) for r in sorted(set(rules))},
    }
    return StageResult(main=pairs, summary=summary)
