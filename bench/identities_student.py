"""A student that reads the toy world with identities, then bench.graph_quality with it.

The demo's student is trained on the toy world's names and types: on the world with
identities it writes toy-world names that grounding drops (docs/log.md, 2026-12-06), so its
long-document and gold-facts figures say nothing about chunking or resolution. This
experiment trains configs/tiny-gold.yaml's student (a tiny base pretrained on the training
texts, SFT then GRPO on exact gold labels, no teacher) on short documents of the same cast
of names as configs/tiny-graph.yaml's corpus (t2g.kg.identities, world seed 0, other document
seeds, no long documents), then measures its GRPO model as graph_quality does.

    python -m bench identities_student                # ~75 min on 2 cores shared with tests
    BENCH_IDENTITIES_DIR=DIR python -m bench identities_student   # keep the run (DIR/.t2g/store)
    python -m bench --smoke identities_student        # the data and recipe only, no training

The student has seen these names in its training documents (as the demo's student has the
toy world's): what is measured is what chunking, grounding and resolution keep of what a
model that reads the world finds, not how it generalises to unseen names.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from bench import graph_quality
from bench.cache import evaluation, run_recipe
from t2g.config import load_recipe
from t2g.kg import identities

REPO = Path(__file__).resolve().parents[1]
BASE = REPO / "configs" / "tiny-gold.yaml"
# The demo's split sizes; document seeds other than the corpus's (configs/tiny-graph.yaml: 4).
SPLITS = {"seed": (200, 11), "pool": (2000, 12), "test": (300, 13)}
SMOKE_SPLITS = {"seed": (5, 11), "pool": (20, 12), "test": (5, 13)}
# (max_new_tokens, window words): the recipe's (192, its 64-word windows); answers long enough
# for this world's names in the tiny vocabulary (512: at 192, 199 of 334 windows' answers were
# cut); windows the size of the short documents the student was trained on (40 words).
MEASURED = [(192, None), (512, None), (512, 40)]


def run(smoke: bool = False) -> dict[str, Any]:
    keep = os.environ.get("BENCH_IDENTITIES_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        return _measure(Path(keep), smoke)
    with tempfile.TemporaryDirectory(prefix="t2g-identities-student-") as tmp:
        return _measure(Path(tmp), smoke)


def _measure(folder: Path, smoke: bool) -> dict[str, Any]:
    recipe = write_recipe(folder, SMOKE_SPLITS if smoke else SPLITS)
    load_recipe(recipe)  # a recipe the schema refuses fails here, before any training
    if smoke:
        return {"recipe": recipe.name, "documents": {s: n for s, (n, _) in SMOKE_SPLITS.items()}}
    env = {**os.environ, "PREFECT_HOME": f"{folder}/prefect", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)  # Prefect's ephemeral API, as `make demo`
    seconds, _ = run_recipe(recipe, None, folder, env)
    model = folder / ".t2g" / "store" / "grpo"
    keys = sorted(p for p in model.iterdir() if p.is_dir())
    if len(keys) != 1:
        raise RuntimeError(f"expected one grpo artifact under {model}, found {len(keys)}")
    from t2g.kg.models import artifact_model

    model_dir = str(artifact_model(str(keys[0])))
    settings = {
        f"answer_{tokens}_window_{window or 'recipe'}": graph_quality.measure(
            model_dir, max_new_tokens=tokens, window_tokens=window
        )
        for tokens, window in MEASURED
    }
    return {"train_seconds": round(seconds, 1), "evaluation": evaluation(folder), **settings}


def write_recipe(folder: Path, splits: dict[str, tuple[int, int]]) -> Path:
    """The splits as interchange JSONL (gold entities and relations, the world's types), and a
    recipe extending tiny-gold.yaml that collects them."""
    world = identities.World(seed=0, long_every=0)
    sources = []
    for split, (n, seed) in splits.items():
        path = folder / f"identities-{split}.jsonl"
        with path.open("w", encoding="utf-8") as fh:
            for doc in identities.documents(n, seed, world):
                fh.write(json.dumps(interchange(doc)) + "\n")
        sources.append({"name": f"identities-{split}", "kind": "annotated", "split": split, "path": str(path)})
    data = {
        "extends": str(BASE),
        "name": "tiny-identities",
        "description": "tiny-gold's student on the toy world with identities",
        "store": "file://.t2g/store",
        "collect": {"sources": sources, "near_duplicate_threshold": 0.95},
    }
    recipe = folder / "tiny-identities.yaml"
    recipe.write_text(yaml.safe_dump(data, sort_keys=False))
    return recipe


def interchange(doc: dict) -> dict[str, Any]:
    """One document of the world in the interchange format (t2g.sources.annotated)."""
    entities = list(dict.fromkeys((m["text"], m["type"]) for m in doc["mentions"]))
    relations = list(dict.fromkeys((f["head_text"], f["tail_text"], f["type"]) for f in doc["facts"]))
    return {
        "id": doc["id"],
        "text": doc["text"],
        "entities": [{"text": t, "type": ty} for t, ty in entities],
        "relations": [{"head": h, "tail": t, "type": ty} for h, t, ty in relations],
        "entity_types": list(identities.ENTITY_TYPES),
        "relation_types": list(identities.RELATION_TYPES),
    }
