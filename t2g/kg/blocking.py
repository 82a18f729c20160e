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

Sharding (`resolve.shard_size`; t2g/stages/resolve_pairs.py): `blocking_keys` maps each
distinct name to its blocks (a table: block, type, key) in one task; the rows are cut into
shards of whole blocks by the blocks' digests (t2g.shards, a hash range of blocking keys per
shard), `block_pairs` runs on each shard on the recipe's task runner, and resolve takes the
shards' pairs concatenated (`concat_pairs`: one row per pair, sorted, so any sharding gives
the same table). Memory: a worker holds its shard's blocks; the reducer holds the accepted
and uncertain pairs and a union-find over distinct names, never the mentions' pairs.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from difflib import SequenceMatcher
from functools import lru_cache

import pyarrow as pa

from t2g.kg.names import core, short_kind

NUM_PERM, BANDS = 64, 16
MAX_BLOCK = 200  # a block bigger than this compares sorted neighbours only (window below)
COMMON_SHARE, COMMON_FLOOR = 0.01, 50
WINDOW = 25
BLOCKS = pa.schema([("block", pa.string()), ("type", pa.string()), ("key", pa.string())])
PAIRS = pa.schema(
    [
        ("type", pa.string()),
        ("a", pa.string()),
        ("b", pa.string()),
        ("rule", pa.string()),
        pa.field("score", pa.float64(), nullable=True),
    ]
)

UNCERTAIN = "uncertain"  # a PAIRS rule: between judge_threshold and fuzzy_threshold, for the judge to decide

# judge(pairs) -> list[bool]; a pair is (entity type, key a, key b): the names' resolution
# keys (t2g.kg.names.core); t2g.kg.judge finds their surface forms and sentences.
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
            digest = hashlib.blake2b(
                values[band * rows_per_band : (band + 1) * rows_per_band].tobytes(), digest_size=8
            ).hexdigest()
            rows["block"].append(f"{etype}\x1f{band}\x1f{digest}")
            rows["type"].append(etype)
            rows["key"].append(key)
    return pa.table(rows, schema=BLOCKS)


def similarity(a: str, b: str) -> float:
    return SequenceMatcher(None, a, b).ratio()


_DIGITS = re.compile(r"\d+")


def _comparable(etype: str, a: str, b: str) -> bool:
    if etype != "person":
        return True
    ta, tb = a.split(), b.split()
    return len(ta) == len(tb) and ta[-1][0] == tb[-1][0]


def _distinct(a: str, b: str) -> bool:
    """Two names that are not spellings of one however alike: their numbers differ ("$251
    million" and "$51 million", "2nd Circuit" and "5th Circuit", "February 11" and "21") or a
    word of one has no counterpart spelled like it in the other ("House Appropriations
    subcommittee" and "Senate Appropriations subcommittee")."""
    return _DIGITS.findall(a) != _DIGITS.findall(b) or _swapped_word(a, b)


def _swapped_word(a: str, b: str) -> bool:
    ta, tb = a.split(), b.split()
    only_a = [t for t in ta if t not in tb]
    only_b = [t for t in tb if t not in ta]
    if not only_a or not only_b:
        return False  # a word more or less, or spacing: the ratio decides
    # Spelling and spacing variants keep most letters ("zen tek" / "zentek", "merkle" / "merkel").
    return SequenceMatcher(None, "".join(only_a), "".join(only_b)).ratio() < 0.6


def compare_block(
    etype: str,
    keys: Iterable[str],
    *,
    fuzzy_threshold: float = 0.9,
    judge_threshold: float = 0.75,
    judge: Judge | None = None,
    uncertain: bool = False,
    surface: Callable[[str], str] = lambda k: k,
) -> list[dict]:
    """PAIRS rows of one block: the pairs to merge (see the module docstring). The uncertain
    pairs are asked of `judge` when one is given, else kept as rule `uncertain` rows when
    `uncertain` (a sharded stage keeps them, and the judge is asked once, over all shards'
    uncertain pairs, where the pairs are concatenated: `settle`)."""
    keys = sorted(set(keys))
    if len(keys) <= MAX_BLOCK:
        candidates = ((a, b) for i, a in enumerate(keys) for b in keys[i + 1 :])
    else:  # a huge block (a very common pattern): sorted neighbourhood, bounded work
        candidates = ((a, b) for i, a in enumerate(keys) for b in keys[i + 1 : i + 1 + WINDOW])
    sure, unsure = [], []
    keep_unsure = judge is not None or uncertain
    floor = judge_threshold if keep_unsure else fuzzy_threshold
    for a, b in candidates:
        if not _comparable(etype, a, b) or 2 * min(len(a), len(b)) / (len(a) + len(b)) < floor:
            continue
        matcher = SequenceMatcher(None, a, b)
        if matcher.real_quick_ratio() < floor or matcher.quick_ratio() < floor:
            continue  # upper bounds of the ratio: most pairs of a block stop here
        if _distinct(a, b):
            continue
        score = matcher.ratio()
        if score >= fuzzy_threshold:
            sure.append({"type": etype, "a": a, "b": b, "rule": "fuzzy", "score": round(score, 4)})
        elif score >= judge_threshold and keep_unsure:
            unsure.append({"type": etype, "a": a, "b": b, "rule": UNCERTAIN, "score": round(score, 4)})
    if judge is not None:
        return sure + judged(unsure, judge, surface)
    return sure + unsure


def judged(rows: Sequence[dict], judge: Judge, surface: Callable[[str], str] = lambda k: k) -> list[dict]:
    """The uncertain PAIRS rows the judge says name one entity, as rule `judge` rows."""
    if not rows:
        return []
    answers = list(judge([(r["type"], surface(r["a"]), surface(r["b"])) for r in rows]))
    if len(answers) != len(rows):
        raise ValueError(f"the judge answered {len(answers)} times for {len(rows)} pairs: one bool per pair")
    return [{**r, "rule": "judge"} for r, yes in zip(rows, answers) if yes]


def block_pairs(blocks: pa.Table, **options) -> pa.Table:
    """PAIRS of every block in `blocks` (BLOCKS rows; a shard of them holds whole blocks),
    one row per pair, sorted (`concat_pairs`). `options`: compare_block's."""
    members: dict[str, list[str]] = defaultdict(list)
    types: dict[str, str] = {}
    for block, etype, key in zip(*(blocks.column(c).to_pylist() for c in ("block", "type", "key"))):
        members[block].append(key)
        types[block] = etype
    rows = [
        p
        for block in sorted(members)
        if len(members[block]) > 1
        for p in compare_block(types[block], members[block], **options)
    ]
    return concat_pairs([pa.Table.from_pylist(rows, schema=PAIRS)])


def concat_pairs(tables: Iterable[pa.Table]) -> pa.Table:
    """Pairs from any number of shards as one PAIRS table: a pair that two blocks share
    (in one shard or two) once, sorted by (type, a, b). A pair's rule and score depend on
    its two names only, so the result is the same however the blocks were sharded, and
    resolve, which walks the pairs in order, gives the same merges."""
    found: dict[tuple[str, str, str], dict] = {}
    for table in tables:
        for row in table.select(PAIRS.names).to_pylist():
            found.setdefault((row["type"], row["a"], row["b"]), row)
    return pa.Table.from_pylist([found[k] for k in sorted(found)], schema=PAIRS)


def settle(pairs: pa.Table, judge: Judge | None, surface: Callable[[str], str] = lambda k: k) -> pa.Table:
    """`pairs` with its `uncertain` rows decided: those the judge says yes to become rule
    `judge` rows, the rest (all of them without a judge) are left out. One judge call."""
    rules = pairs.column("rule").to_pylist()
    if UNCERTAIN not in rules:
        return pairs
    rows = pairs.to_pylist()
    unsure = [r for r, rule in zip(rows, rules) if rule == UNCERTAIN]
    yes = judged(unsure, judge, surface) if judge is not None else []
    return concat_pairs([pa.Table.from_pylist([r for r in rows if r["rule"] != UNCERTAIN] + yes, schema=PAIRS)])


def fuzzy_pairs(mentions: pa.Table, *, judge: Judge | None = None, **options) -> pa.Table:
    """In one process: every block's pairs (what the resolve-pairs stage does sharded),
    deduplicated and sorted, the uncertain ones settled by `judge` in one call."""
    return settle(block_pairs(blocking_keys(mentions), uncertain=judge is not None, **options), judge)
