"""Fuzzy candidate pairs for entity resolution, by blocking keys (shardable).

Only names that share a block are ever compared, never all pairs. A name's blocks are the
bands of its MinHash over character 3-grams, prefixed by its entity type, so
names of different types never meet. (The MinHash is a dozen lines of numpy: datasketch, installed,
computes the same, but importing it imports scipy, 5 s on the 2 shared cores, in every process.) With 64 permutations in 16 bands of 4 rows, two names
whose 3-gram Jaccard similarity is s share a block with probability 1 - (1 - s^4)^16:
0.99 at s = 0.7, 0.85 at s = 0.55, 0.12 at s = 0.3.

Tokens common to many names (`common_tokens`: "group", "dynamics") are left out of the
MinHash, so names meet on what distinguishes them; names equal but for spaces share one more block.
In a block every pair is scored with
difflib's ratio (stdlib; rapidfuzz would be faster and
is not installed) and:
- score >= fuzzy_threshold: merged, rule `fuzzy`;
- judge_threshold <= score < fuzzy_threshold: uncertain; with a judge, merged if it says so
  (rule `judge`), else left apart;
- for people, only names with as many tokens and the same last-name initial are compared
  ("Jon Smith" ~ "John Smith", never "John Smith" ~ "Smith Johns").

Sharding (the resolve stage does this on its task runner): `blocking_keys` maps each
distinct name to its blocks (a table: block, type, key); the stage groups rows by block
(a shuffle), runs `compare_block` on each block anywhere, concatenates the pairs and hands them
to `resolve(..., pairs=...)`. Memory: a worker holds one block; the reducer holds the accepted
pairs and a union-find over distinct names, never the mentions' pairs.
"""

from __future__ import annotations

import hashlib
import zlib
from collections import Counter, defaultdict
from difflib import SequenceMatcher
from functools import lru_cache
from typing import Callable, Iterable, Sequence

import pyarrow as pa

from t2g.kg.names import core, short_kind

NUM_PERM, BANDS = 64, 16
MAX_BLOCK = 200  # a block bigger than this compares sorted neighbours only (window below)
COMMON_SHARE, COMMON_FLOOR = 0.01, 50
WINDOW = 25
BLOCKS = pa.schema([("block", pa.string()), ("type", pa.string()), ("key", pa.string())])
PAIRS = pa.schema([("type", pa.string()), ("a", pa.string()), ("b", pa.string()), ("rule", pa.string()),
                   pa.field("score", pa.float64(), nullable=True)])

# judge(pairs) -> list[bool]; a pair is (entity type, name a, name b) as written in the corpus.
Judge = Callable[[Sequence[tuple[str, str, str]]], Sequence[bool]]


_PRIME = (1 << 61) - 1


@lru_cache(maxsize=1)
def _permutations():
    import numpy as np

    rng = np.random.default_rng(1)
    return rng.integers(1, 1 << 32, NUM_PERM, dtype=np.uint64), rng.integers(0, 1 << 32, NUM_PERM, dtype=np.uint64)


def minhash(key: str):
    """NUM_PERM minimum hashes of the key's character 3-grams (padded with a space each side)."""
    import numpy as np

    a, b = _permutations()
    padded = f" {key} "
    grams = {zlib.crc32(padded[i : i + 3].encode("utf-8")) for i in range(max(1, len(padded) - 2))}
    x = np.fromiter(grams, dtype=np.uint64, count=len(grams))
    return ((np.outer(x, a) + b) % _PRIME).min(axis=0)  # a, x < 2^32: no overflow


def fuzzy_keys(mentions: pa.Table) -> list[tuple[str, str]]:
    """The distinct (type, key) of full names that fuzzy matching considers (short forms and
    one-word person names are resolved by alias rules, not by spelling)."""
    seen: dict[tuple[str, str], None] = {}
    for text, etype in set(zip(mentions.column("text").to_pylist(), mentions.column("type").to_pylist())):
        key = core(text, etype)
        if short_kind(key, etype, text) is None and (etype != "person" or " " in key) and len(key) >= 3:
            seen[(etype, key)] = None
    return sorted(seen)


def common_tokens(keys: Iterable[str], share: float = COMMON_SHARE, floor: int = COMMON_FLOOR) -> frozenset[str]:
    """Tokens in more than max(floor, share x distinct names) names ("group", "dynamics"):
    left out of the MinHash, else every "... Dynamics" would share blocks with every other."""
    keys = list(keys)
    counts = Counter(t for k in keys for t in set(k.split()))
    limit = max(floor, share * len(keys))
    return frozenset(t for t, n in counts.items() if n > limit)


def blocking_keys(mentions: pa.Table, common: frozenset[str] | None = None) -> pa.Table:
    """BLOCKS rows: every block of every distinct full name in `mentions`. A stage that shards
    this call computes `common` once over all distinct names (`common_tokens`) and passes it to
    every shard, so a name gets the same blocks wherever it is computed."""
    rows = {"block": [], "type": [], "key": []}
    rows_per_band = NUM_PERM // BANDS
    keys = fuzzy_keys(mentions)
    if common is None:
        common = common_tokens(k for _, k in keys)
    for etype, key in keys:
        distinctive = " ".join(t for t in key.split() if t not in common) or key
        values = minhash(distinctive)
        # spacing variants ("zen tek dynamics", "zentek dynamics") meet for sure in one block
        rows["block"].append(f"{etype}\x1fcompact\x1f{key.replace(' ', '')}")
        rows["type"].append(etype)
        rows["key"].append(key)
        for band in range(BANDS):
            digest = hashlib.blake2b(values[band * rows_per_band : (band + 1) * rows_per_band].tobytes(),
                                     digest_size=8).hexdigest()
            rows["block"].append(f"{etype}\x1f{band}\x1f{digest}")
            rows["type"].append(etype)
            rows["key"].append(key)
    return pa.table(rows, schema=BLOCKS)


def similarity(a: str, b: str) -> float:
    return SequenceMatcher(None, a, b).ratio()


def _comparable(etype: str, a: str, b: str) -> bool:
    if etype != "person":
        return True
    ta, tb = a.split(), b.split()
    return len(ta) == len(tb) and ta[-1][0] == tb[-1][0]


def compare_block(
    etype: str,
    keys: Iterable[str],
    *,
    fuzzy_threshold: float = 0.9,
    judge_threshold: float = 0.75,
    judge: Judge | None = None,
    surface: Callable[[str], str] = lambda k: k,
) -> list[dict]:
    """PAIRS rows of one block: the pairs to merge (see the module docstring)."""
    keys = sorted(set(keys))
    if len(keys) <= MAX_BLOCK:
        candidates = ((a, b) for i, a in enumerate(keys) for b in keys[i + 1 :])
    else:  # a huge block (a very common pattern): sorted neighbourhood, bounded work
        candidates = ((a, b) for i, a in enumerate(keys) for b in keys[i + 1 : i + 1 + WINDOW])
    sure, unsure = [], []
    floor = judge_threshold if judge is not None else fuzzy_threshold
    for a, b in candidates:
        if not _comparable(etype, a, b) or 2 * min(len(a), len(b)) / (len(a) + len(b)) < floor:
            continue
        matcher = SequenceMatcher(None, a, b)
        if matcher.real_quick_ratio() < floor or matcher.quick_ratio() < floor:
            continue  # upper bounds of the ratio: most pairs of a block stop here
        score = matcher.ratio()
        if score >= fuzzy_threshold:
            sure.append({"type": etype, "a": a, "b": b, "rule": "fuzzy", "score": round(score, 4)})
        elif score >= judge_threshold and judge is not None:
            unsure.append((a, b, score))
    if unsure:
        answers = list(judge([(etype, surface(a), surface(b)) for a, b, _ in unsure]))
        if len(answers) != len(unsure):
            raise ValueError(f"the judge answered {len(answers)} times for {len(unsure)} pairs: one bool per pair")
        sure += [{"type": etype, "a": a, "b": b, "rule": "judge", "score": round(s, 4)}
                 for (a, b, s), yes in zip(unsure, answers) if yes]
    return sure


def fuzzy_pairs(mentions: pa.Table, **options) -> pa.Table:
    """In one process: every block's pairs (what the stage does sharded), deduplicated."""
    blocks: dict[str, list[str]] = defaultdict(list)
    types: dict[str, str] = {}
    table = blocking_keys(mentions)
    for block, etype, key in zip(*(table.column(c).to_pylist() for c in ("block", "type", "key"))):
        blocks[block].append(key)
        types[block] = etype
    found: dict[tuple[str, str, str], dict] = {}
    for block in sorted(blocks):
        if len(blocks[block]) > 1:
            for p in compare_block(types[block], blocks[block], **options):
                found.setdefault((p["type"], p["a"], p["b"]), p)
    return pa.Table.from_pylist([found[k] for k in sorted(found)], schema=PAIRS)
