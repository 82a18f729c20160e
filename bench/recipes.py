"""The benchmarks' own recipes, built here rather than borrowed from configs/: the demo
recipe changes with the demo (its extract now needs a trained teacher), and a benchmark
must neither break nor silently change what it measures when it does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from t2g.config import validate_recipe


def gold(name: str, seed: int, pool: int, test: int = 0) -> dict[str, Any]:
    """Toy-world seed/pool/test documents (the demo's splits and seeds), labelled with the
    world's own gold: the data stages run without any model. Validated here, so a recipe
    the schema no longer accepts fails before anything starts."""
    sizes = {"seed": (seed, 1), "pool": (pool, 2), "test": (test, 3)}
    data = {
        "name": name,
        "description": "a benchmark's recipe: toy-world documents, gold labels",
        "collect": {
            "sources": [
                {"name": f"toyworld-{split}", "kind": "toyworld", "split": split, "n": n, "seed": s}
                for split, (n, s) in sizes.items()
                if n
            ]
        },  # fmt: skip
        # Never the evaluate split: the student would train on its own test documents.
        "extract": {"backend": "gold", "splits": ["seed", "pool"]},
    }
    validate_recipe(data, source=f"bench recipe {name}")
    return data


def write(data: dict[str, Any], directory: Path) -> Path:
    """The recipe as a YAML file, for what takes a path (`t2g run`, a deployment run)."""
    path = directory / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
