"""Reward throughput: t2g's five rewards against a seed-style baseline.

Both sides score the same 20,000 conversational completions (smoke: 320) in batches of 64, the way
GRPOTrainer calls rewards: each of the five functions called in turn on the whole batch.
A batch is 8 prompts x 8 generations, so a gold string repeats within a batch as it does
in GRPO; every completion text is distinct (its reasoning differs), so t2g gains nothing
from duplicate completions, only from sharing one parse among its five rewards.

The baseline is written like the open-r1-text2graph seed: every reward re-scans the
completion character by character, `json.loads` every brace-balanced candidate, and the F1
rewards re-parse the gold JSON for every row.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from t2g import rewards as t2g_rewards

N_PROMPTS = 2_500
SMOKE_PROMPTS = 40  # 320 completions: a check that the benchmark runs, not a figure
GENERATIONS = 8
BATCH = 64  # 8 prompts x 8 generations
REPEATS = 3
NAMES = ["format", "json", "f1_entities", "f1_relations", "types"]

FIRST = ["Ada", "Alan", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Dennis", "Frances", "Edsger"]
LAST = ["Lovelace", "Turing", "Hopper", "Torvalds", "Liskov", "Thompson", "Hamilton", "Ritchie", "Allen", "Dijkstra"]
ORGS = ["Acme Corp", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay Industries", "Stark Labs", "Wayne Enterprises"]
PLACES = ["Paris", "Lagos", "Kyoto", "Lima", "Oslo", "Austin", "Nairobi", "Perth", "Quebec", "Seoul"]
ENTITY_TYPES = ["person", "organization", "location", "date"]
RELATION_TYPES = ["work for", "based in", "live in", "founded"]
FILLER = (
    "The text mentions {a}. I should check whether {b} is an entity of a requested type. "
    "Looking at the sentence again, {a} and {b} appear together, which suggests a relation. "
    "Let me make sure I do not invent entities that are not in the text. "
)


# --- data ---------------------------------------------------------------------------------


def _gold(rng: random.Random) -> dict[str, Any]:
    names = {f"{rng.choice(FIRST)} {rng.choice(LAST)}" for _ in range(rng.randint(1, 3))}
    ents = [{"text": n, "type": "person"} for n in sorted(names)]
    ents += [{"text": o, "type": "organization"} for o in rng.sample(ORGS, rng.randint(1, 2))]
    ents += [{"text": p, "type": "location"} for p in rng.sample(PLACES, rng.randint(1, 2))]
    ents.append({"text": f"{rng.randint(1, 28)} May {rng.randint(1950, 2024)}", "type": "date"})
    texts = [e["text"] for e in ents]
    rels = {(rng.choice(texts), rng.choice(texts), rng.choice(RELATION_TYPES)) for _ in range(rng.randint(1, 5))}
    return {"entities": ents, "relations": [{"head": h, "tail": t, "type": y} for h, t, y in sorted(rels)]}


def _answer(graph: dict[str, Any], rng: random.Random) -> str:
    with_ids = {"entities": [{"id": i, **e} for i, e in enumerate(graph["entities"])], "relations": graph["relations"]}
    return json.dumps(with_ids, indent=rng.choice([None, 2]))


def _think(graph: dict[str, Any], rng: random.Random, serial: int) -> str:
    texts = [e["text"] for e in graph["entities"]]
    steps = "".join(FILLER.format(a=rng.choice(texts), b=rng.choice(texts)) for _ in range(rng.randint(2, 5)))
    return f"<think>\nStep {serial}. {steps}\n</think>\n"


def _partial(graph: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """Some right, some wrong: an entity dropped, a type changed, an invented entity, a relation dropped."""
    ents = [dict(e) for e in graph["entities"]]
    ents.pop(rng.randrange(len(ents)))
    victim = rng.randrange(len(ents))
    ents[victim]["type"] = rng.choice([t for t in ENTITY_TYPES if t != ents[victim]["type"]])
    ents.append({"text": f"{rng.choice(PLACES)} Station", "type": "location"})
    rels = list(graph["relations"])[: max(0, len(graph["relations"]) - 1)]
    return {"entities": ents, "relations": rels}


def _completion(kind: str, graph: dict[str, Any], rng: random.Random, serial: int) -> str:
    think = _think(graph, rng, serial)
    if kind == "correct":
        return think + _answer(graph, rng)
    if kind == "plain":  # right answer, no reasoning
        return f"Answer {serial}:\n" + _answer(graph, rng)
    if kind == "partial":
        return think + _answer(_partial(graph, rng), rng)
    if kind == "truncated":  # ran out of tokens mid-object
        answer = _answer(graph, rng)
        return think + answer[: rng.randrange(1, len(answer) - 1)]
    return think + f"I cannot find any entity of the requested types ({serial})."  # "prose"


KINDS = ["correct"] * 3 + ["partial"] * 3 + ["truncated"] * 2 + ["plain", "prose"]


def dataset(seed: int = 0, n_prompts: int = N_PROMPTS) -> list[dict[str, Any]]:
    """Rows as trl hands them to rewards: conversational completion, gold JSON, types, kind."""
    rng = random.Random(seed)
    rows = []
    for p in range(n_prompts):
        graph = _gold(rng)
        solution = json.dumps(graph)
        for g in range(GENERATIONS):
            kind = rng.choice(KINDS)
            text = _completion(kind, graph, rng, serial=p * GENERATIONS + g)
            rows.append(
                {
                    "completion": [{"role": "assistant", "content": text}],
                    "solution": solution,
                    "entity_types": ENTITY_TYPES,
                    "relation_types": RELATION_TYPES,
                    "kind": kind,
                }
            )
    return rows


# --- the seed-style baseline ---------------------------------------------------------------


def extract_json_from_text(text: str) -> list[Any]:
    """As in the seed: count braces char by char, json.loads each balanced candidate."""
    json_start, depth, found = 0, 0, []
    for idx, char in enumerate(text):
        if char == "{":
            if depth == 0:
                json_start = idx
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                try:
                    found.append(json.loads(text[json_start : idx + 1]))
                except json.JSONDecodeError:
                    pass
    return found


def _contents(completions: Sequence[Any]) -> list[str]:
    return [c[0]["content"] for c in completions]


def _valid(data: Any) -> bool:
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("entities"), list)
        or not isinstance(data.get("relations"), list)
    ):
        return False
    ents_ok = all(
        isinstance(e, dict) and isinstance(e.get("text"), str) and isinstance(e.get("type"), str)
        for e in data["entities"]
    )
    rels_ok = all(
        isinstance(r, dict) and all(isinstance(r.get(k), str) for k in ("head", "tail", "type"))
        for r in data["relations"]
    )
    return ents_ok and rels_ok


def _f1(pred: set[str], true: set[str]) -> float:
    tp, fp, fn = len(pred & true), len(pred - true), len(true - pred)
    precision = tp / (tp + fp) if tp + fp else 0
    recall = tp / (tp + fn) if tp + fn else 0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def base_format(prompts: Any, completions: Sequence[Any], **kwargs: Any) -> list[float]:
    out = []
    for c in _contents(completions):
        one = len(extract_json_from_text(c)) == 1
        tags = c.count("<think>") == 1 and c.count("</think>") == 1 and c.lstrip().startswith("<think>")
        out.append(1.0 if one and tags and c.rstrip().endswith("}") else 0.0)
    return out


def base_json(prompts: Any, completions: Sequence[Any], **kwargs: Any) -> list[float]:
    out = []
    for c in _contents(completions):
        jsons = extract_json_from_text(c)
        ok = len(jsons) == 1 and _valid(jsons[0])
        if ok:
            texts = {e["text"] for e in jsons[0]["entities"]}
            ok = all(r["head"] in texts and r["tail"] in texts for r in jsons[0]["relations"])
        out.append(1.0 if ok else 0.0)
    return out


def _base_f1(key: str, fields: tuple[str, ...], completions: Sequence[Any], solution: Sequence[str]) -> list[float]:
    out = []
    for c, sol in zip(_contents(completions), solution):
        pred, true = extract_json_from_text(c), extract_json_from_text(sol)
        if len(pred) == 1 and len(true) == 1:
            try:
                p = {"_".join(item[f] for f in fields) for item in pred[0].get(key, [])}
                t = {"_".join(item[f] for f in fields) for item in true[0].get(key, [])}
                out.append(_f1(p, t))
            except Exception:
                out.append(0.0)
        else:
            out.append(0.0)
    return out


def base_f1_entities(prompts: Any, completions: Sequence[Any], solution: Sequence[str], **kwargs: Any) -> list[float]:
    return _base_f1("entities", ("text", "type"), completions, solution)


def base_f1_relations(prompts: Any, completions: Sequence[Any], solution: Sequence[str], **kwargs: Any) -> list[float]:
    return _base_f1("relations", ("head", "tail", "type"), completions, solution)


def base_types(
    prompts: Any,
    completions: Sequence[Any],
    entity_types: Sequence[list[str]],
    relation_types: Sequence[list[str]],
    **kwargs: Any,
) -> list[float]:
    out = []
    for c, et, rt in zip(_contents(completions), entity_types, relation_types):
        jsons = extract_json_from_text(c)
        if len(jsons) != 1 or not _valid(jsons[0]):
            out.append(0.0)
            continue
        types = [e["type"] in et for e in jsons[0]["entities"]] + [r["type"] in rt for r in jsons[0]["relations"]]
        out.append(sum(types) / len(types) if types else 1.0)
    return out


BASELINE = [base_format, base_json, base_f1_entities, base_f1_relations, base_types]


# --- timing ------------------------------------------------------------------------------


def _batches(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per batch, the keyword arguments trl passes to every reward function."""
    out = []
    for i in range(0, len(rows), BATCH):
        chunk = rows[i : i + BATCH]
        out.append(
            {
                "prompts": ["extract the graph"] * len(chunk),
                "completions": [r["completion"] for r in chunk],
                "completion_ids": [[0]] * len(chunk),
                "solution": [r["solution"] for r in chunk],
                "entity_types": [r["entity_types"] for r in chunk],
                "relation_types": [r["relation_types"] for r in chunk],
                "trainer_state": None,
            }
        )
    return out


def _score(funcs: Sequence[Callable[..., list[Any]]], batches: list[dict[str, Any]]) -> list[list[Any]]:
    scores: list[list[Any]] = [[] for _ in funcs]
    for kwargs in batches:
        for i, func in enumerate(funcs):
            scores[i].extend(func(**kwargs))
    return scores


def _time_pass(
    funcs: Sequence[Callable[..., list[Any]]], batches: list[dict[str, Any]]
) -> tuple[float, float, list[list[Any]]]:
    """(CPU seconds, wall seconds, scores) of one pass. Both sides are single-threaded pure
    Python, so CPU time is the figure that other work on shared cores disturbs least."""
    cpu, wall = time.process_time(), time.perf_counter()
    scores = _score(funcs, batches)
    return time.process_time() - cpu, time.perf_counter() - wall, scores


def run(smoke: bool = False) -> dict[str, Any]:
    rows = dataset(n_prompts=SMOKE_PROMPTS if smoke else N_PROMPTS)
    repeats = 1 if smoke else REPEATS
    batches = _batches(rows)
    ours = t2g_rewards.reward_funcs(NAMES)
    # Passes alternate so both sides see the same machine load (shared cores); best of
    # REPEATS each. Caches are cleared before every t2g pass: only sharing within a batch
    # may count.
    t2g_s = base_s = t2g_wall = base_wall = float("inf")
    for _ in range(repeats):
        t2g_rewards.clear_caches()
        cpu, wall, t2g_scores = _time_pass(ours, batches)
        t2g_s, t2g_wall = min(t2g_s, cpu), min(t2g_wall, wall)
        cpu, wall, base_scores = _time_pass(BASELINE, batches)
        base_s, base_wall = min(base_s, cpu), min(base_wall, wall)

    # Sanity: where both definitions coincide (a parsed answer, non-empty gold, no case
    # differences), both must give the same entity F1.
    f1_ours, f1_base = t2g_scores[NAMES.index("f1_entities")], base_scores[NAMES.index("f1_entities")]
    checked = [i for i, r in enumerate(rows) if r["kind"] in ("correct", "partial", "plain")]
    mismatches = [i for i in checked if abs(f1_ours[i] - f1_base[i]) > 1e-9]
    if mismatches:
        i = mismatches[0]
        raise AssertionError(
            f"f1_entities disagrees on {len(mismatches)} rows, e.g. row {i}: {f1_ours[i]} vs {f1_base[i]}"
        )

    lengths = [len(r["completion"][0]["content"]) for r in rows]
    return {
        "ratio": round(base_s / t2g_s, 2),
        "t2g_s": round(t2g_s, 3),
        "baseline_s": round(base_s, 3),
        "n": len(rows),
        "timing": f"CPU seconds, best of {repeats} alternating passes",
        "t2g_wall_s": round(t2g_wall, 3),
        "baseline_wall_s": round(base_wall, 3),
        "batch": BATCH,
        "rewards": NAMES,
        "mean_completion_chars": round(sum(lengths) / len(lengths)),
        "f1_entities_agree_rows": len(checked),
        "mean_scores_t2g": {n: round(sum(s) / len(s), 4) for n, s in zip(NAMES, t2g_scores)},
    }
