"""GRPO reward functions, in the form trl's GRPOTrainer calls them.

trl calls every reward as `f(prompts=..., completions=..., completion_ids=..., trainer_state=...,
log_extra=..., log_metric=..., **dataset_columns)` with each column a list aligned with
`completions`, and turns a `None` reward into NaN, which drops that reward for that row
(nanmean/nansum). Rewards here are registered by name in `REWARDS` (the recipe weights them
by name) and each function's `__name__` is that name, because trl logs `rewards/<__name__>/mean`.

Columns used (the seed's layout): `solution` (the gold graph as a JSON string),
`entity_types` and `relation_types` (lists of strings).

- A missing column is a recipe bug, so it raises, naming the column.
- A bad row value (a `solution` that is None or not a JSON graph, types that are not a list)
  is bad data, not a bad completion: that row's reward is None, so trl leaves it out
  instead of punishing the policy for it.
- A bad completion (anything at all: not a string, bytes, 1 MB of noise) scores 0.0.

Entity and relation F1 count items as multisets: an entity is (norm text, norm type) and a
relation (norm head, norm tail, norm type), the tuples t2g.metrics compares, but an item
matches as many times as it is listed in both answer and gold. The evaluation metrics
compare sets, the benchmark convention of unique triples. A reward cannot: gold data lists
an entity once per mention (on one public relation-extraction benchmark, 16 of 286 test
sentences mention an entity twice), and set gold against a listed answer scored an exact
copy of such a gold as low as 0.83 entity F1 and 0.5 relation F1: GRPO punished the
student for matching its teacher. With multisets the gold itself scores 1.0 on every
reward (`format` also needs the `<think>…</think>` block before it), and each listed item
beyond the gold's count is still a false positive.

Every reward reads the same parse: trl calls the five rewards one after the other on the
same batch, so `_view` (one `parse_completion` plus the normalised multisets) is memoised
by completion text, and the gold multisets by solution string.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from t2g.graph import parse_completion
from t2g.metrics import normalise

Reward = float | None
RewardFunc = Callable[..., list[Reward]]

# A few thousand: well above one generation batch (per_device_batch * num_generations), so
# every reward of a batch hits the parse of the first one, while memory stays bounded
# (completions are bounded by max_completion_length).
_CACHE_SIZE = 4096

# What trl itself passes next to the dataset columns; left out of "available columns" errors.
_TRL_KWARGS = frozenset({"completion_ids", "trainer_state", "log_extra", "log_metric", "environments"})

# Normalised items and how often each is listed. Shared through the caches: never mutate.
Items = Counter[tuple[str, ...]]
_ENTITY_FIELDS = ("text", "type")
_RELATION_FIELDS = ("head", "tail", "type")


@dataclass(frozen=True, slots=True)
class _View:
    """Everything the rewards need from one completion, computed once."""

    format_ok: bool
    parsed: bool  # exactly one JSON object that validates as a graph
    grounded: bool  # ... and every relation's head and tail is one of its entity texts
    entities: Items
    relations: Items
    entity_types: tuple[str, ...]  # normalised type of each predicted entity, as listed
    relation_types: tuple[str, ...]


_UNPARSED = _View(False, False, False, Counter(), Counter(), (), ())


@lru_cache(maxsize=_CACHE_SIZE)
def _view_of(text: str) -> _View:
    parsed = parse_completion(text)
    graph = parsed.graph
    if graph is None:
        return _View(parsed.format_ok, False, False, Counter(), Counter(), (), ())
    return _View(
        format_ok=parsed.format_ok,
        parsed=True,
        grounded=not graph.dangling(),
        # Fields are validated strings here, so read directly (the hot path of a GRPO step).
        entities=Counter([(normalise(e.text), normalise(e.type)) for e in graph.entities]),
        relations=Counter([(normalise(r.head), normalise(r.tail), normalise(r.type)) for r in graph.relations]),
        # Normalised like metrics does for F1, so "Person" conforms iff it would score.
        entity_types=tuple(_norm_type(e.type) for e in graph.entities),
        relation_types=tuple(_norm_type(r.type) for r in graph.relations),
    )


def _items(items: Iterable[Any], fields: tuple[str, ...]) -> Items:
    """Each gold item as the normalised tuple t2g.metrics builds (entity_set, relation_set), counted."""
    return Counter([tuple([normalise(_field(item, f)) for f in fields]) for item in items])


def _field(item: Any, name: str) -> str:
    # As t2g.metrics reads a field: gold is read leniently, so a number becomes its text.
    value = item.get(name, "") if isinstance(item, Mapping) else getattr(item, name, "")
    return value if isinstance(value, str) else str(value)


def _view(completion: Any) -> _View:
    text = completion_text(completion)
    return _UNPARSED if text is None else _view_of(text)


def completion_text(completion: Any) -> str | None:
    """The text a completion holds: a plain string, or the last assistant message of a
    conversational completion (content a string or a list of text parts). None when there
    is no text to read."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, bytes | bytearray):
        return bytes(completion).decode("utf-8", errors="replace")
    # trl's conversational form is a list; the ABC checks below are slower and rarely needed.
    if not isinstance(completion, list):
        if isinstance(completion, Mapping):  # a single message rather than a list of them
            completion = [completion]
        elif not isinstance(completion, Sequence):
            return None
    for message in reversed(completion):
        if isinstance(message, Mapping) and message.get("role") == "assistant":
            return _content_text(message.get("content"))
    return None


def _content_text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multimodal form: [{"type": "text", "text": ...}, ...]
        parts = [p.get("text") for p in content if isinstance(p, Mapping) and p.get("type") == "text"]
        return "".join(p for p in parts if isinstance(p, str))
    return None


@lru_cache(maxsize=_CACHE_SIZE)
def _gold_of(solution: str) -> tuple[Items, Items] | None:
    try:
        obj = json.loads(solution)
    except (ValueError, RecursionError):
        return None
    return _gold_sets(obj)


def _gold_sets(obj: Any) -> tuple[Items, Items] | None:
    # Gold is trusted data, so it is read leniently (extra keys such as ids or offsets are
    # fine), but it must look like a graph: an object with entity and/or relation lists.
    if not isinstance(obj, Mapping) or not ("entities" in obj or "relations" in obj):
        return None
    ents, rels = obj.get("entities") or [], obj.get("relations") or []
    if not isinstance(ents, list) or not isinstance(rels, list):
        return None
    if not all(isinstance(item, Mapping) for item in [*ents, *rels]):
        return None
    return _items(ents, _ENTITY_FIELDS), _items(rels, _RELATION_FIELDS)


def _gold(solution: Any) -> tuple[Items, Items] | None:
    if isinstance(solution, str):
        return _gold_of(solution)
    if isinstance(solution, Mapping):  # a dataset that stores gold as a struct column
        return _gold_sets(solution)
    return None


@lru_cache(maxsize=_CACHE_SIZE)
def _norm_type(t: str) -> str:
    return normalise(t)  # types come from a small vocabulary, so most calls are hits


@lru_cache(maxsize=_CACHE_SIZE)
def _typeset_of(types: tuple[str, ...]) -> frozenset[str]:
    return frozenset(_norm_type(t) for t in types)


def _typeset(types: Any) -> frozenset[str] | None:
    if isinstance(types, str | bytes | Mapping) or not isinstance(types, Iterable):
        return None  # a bare string would make "in" a substring test
    return _typeset_of(tuple(t for t in types if isinstance(t, str)))


def _column(name: str, reward: str, completions: Sequence[Any], kwargs: Mapping[str, Any]) -> Sequence[Any]:
    if name not in kwargs:
        have = sorted(k for k in kwargs if k not in _TRL_KWARGS)
        raise ValueError(f"reward {reward!r} needs the dataset column {name!r}; the batch has columns {have}")
    column = kwargs[name]
    if not isinstance(column, Sequence) or isinstance(column, str) or len(column) != len(completions):
        size = len(column) if isinstance(column, Sequence) else type(column).__name__
        raise ValueError(f"column {name!r} must be a list aligned with the {len(completions)} completions, got {size}")
    return column


# --- the registry ---------------------------------------------------------------------

REWARDS: dict[str, RewardFunc] = {}


def _register(name: str) -> Callable[[RewardFunc], RewardFunc]:
    def add(func: RewardFunc) -> RewardFunc:
        # Only __name__ changes: trl logs by it, while pickle finds the function by its
        # __qualname__ (the module attribute), so rewards stay picklable for workers.
        func.__name__ = name
        REWARDS[name] = func
        return func

    return add


@_register("format")
def format_reward(prompts: Any, completions: Sequence[Any], **kwargs: Any) -> list[Reward]:
    """1.0 when the completion is `<think>…</think>` then exactly one JSON object, nothing else."""
    return [float(_view(c).format_ok) for c in completions]


@_register("json")
def json_reward(prompts: Any, completions: Sequence[Any], **kwargs: Any) -> list[Reward]:
    """1.0 when exactly one JSON object validates as a graph whose relations join its entities."""
    return [float(_view(c).grounded) for c in completions]


def _f1(key: str, reward: str, completions: Sequence[Any], kwargs: Mapping[str, Any]) -> list[Reward]:
    out: list[Reward] = []
    for completion, solution in zip(completions, _column("solution", reward, completions, kwargs)):
        gold = _gold(solution)
        if gold is None:
            out.append(None)  # unreadable gold: no signal for this row, not a 0
            continue
        view = _view(completion)
        if not view.parsed:
            out.append(0.0)
        elif key == "entities":
            out.append(_multiset_f1(gold[0], view.entities))
        else:
            out.append(_multiset_f1(gold[1], view.relations))
    return out


def _multiset_f1(gold: Items, found: Items) -> float:
    """F1 over multisets: an item matches min(times listed, times in gold) times; precision
    is over everything listed and recall over everything in the gold.

    Every listed item beyond the gold's count is a false positive, so a duplicate the gold
    does not have costs precision: a reward over sets would let GRPO drift into repeating
    an entity or relation for free, which a small student does within 20 steps
    (docs/log.md, "GRPO on the tiny profile"). A repeat the gold has is matched, so a copy of the gold
    scores 1.0."""
    listed, wanted = found.total(), gold.total()
    if not listed and not wanted:
        return 1.0
    return 2 * (gold & found).total() / (wanted + listed)


@_register("f1_entities")
def f1_entities_reward(prompts: Any, completions: Sequence[Any], **kwargs: Any) -> list[Reward]:
    """Per-example entity F1 against the gold `solution`; 0.0 when the completion does not parse."""
    return _f1("entities", "f1_entities", completions, kwargs)


@_register("f1_relations")
def f1_relations_reward(prompts: Any, completions: Sequence[Any], **kwargs: Any) -> list[Reward]:
    """Per-example relation F1 against the gold `solution`; 0.0 when the completion does not parse."""
    return _f1("relations", "f1_relations", completions, kwargs)


@_register("types")
def types_reward(prompts: Any, completions: Sequence[Any], **kwargs: Any) -> list[Reward]:
    """Share of predicted entities and relations whose type was requested (`entity_types`,
    `relation_types`); 1.0 for a graph with no items, 0.0 when the completion does not parse."""
    ent_col = _column("entity_types", "types", completions, kwargs)
    rel_col = _column("relation_types", "types", completions, kwargs)
    out: list[Reward] = []
    for completion, ent_types, rel_types in zip(completions, ent_col, rel_col):
        wanted_e, wanted_r = _typeset(ent_types), _typeset(rel_types)
        if wanted_e is None or wanted_r is None:
            out.append(None)
            continue
        view = _view(completion)
        if not view.parsed:
            out.append(0.0)
            continue
        total = len(view.entity_types) + len(view.relation_types)
        ok = sum(t in wanted_e for t in view.entity_types) + sum(t in wanted_r for t in view.relation_types)
        out.append(ok / total if total else 1.0)
    return out


def check_section(grpo: Any) -> None:
    """The recipe's reward names exist (t2g.dag runs this when a recipe's graph is built,
    before any stage: a typo must not surface only when GRPO starts, hours later)."""
    unknown = [r for r in grpo.rewards if r not in REWARDS]
    if unknown:
        raise ValueError(f"rewards: unknown reward(s) {unknown}; choose from {sorted(REWARDS)}")


def reward_funcs(names: Sequence[str]) -> list[RewardFunc]:
    """The reward functions for these registry names, in order (for GRPOTrainer(reward_funcs=...))."""
    unknown = [n for n in names if n not in REWARDS]
    if unknown:
        raise ValueError(f"unknown reward(s) {unknown}; known: {sorted(REWARDS)}")
    return [REWARDS[n] for n in names]


def clear_caches() -> None:
    """Forget memoised parses and gold sets (benchmarks, tests)."""
    _view_of.cache_clear()
    _gold_of.cache_clear()
    _typeset_of.cache_clear()
    _norm_type.cache_clear()


def cache_info() -> dict[str, Any]:
    """Hit/miss counts of the completion and gold caches."""
    return {"completions": _view_of.cache_info(), "gold": _gold_of.cache_info()}
