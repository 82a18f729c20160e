"""Reading a recipe: the YAML file and every file it `extends`, the `--set` overrides, the
store, then validation with bounded error excerpts (t2g.recipe_input guards the input)."""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from t2g.config.recipe import Recipe
from t2g.config.section import merge_sections
from t2g.config.store_uri import dated_store
from t2g.recipe_input import RecipeError, load_yaml, parse_override, read_recipe_text, shown, yaml_error

MAX_EXTENDS = 16  # files in one extends chain


def load_recipe(
    path: str | Path, overrides: list[str] | None = None, store: str | None = None, now: datetime.datetime | None = None
) -> Recipe:
    """Read, override and validate a recipe. Raises RecipeError naming file and field."""
    return validate_recipe(read_recipe(path, overrides, store, now), source=str(path))


def read_recipe(
    path: str | Path, overrides: list[str] | None = None, store: str | None = None, now: datetime.datetime | None = None
) -> dict[str, Any]:
    """The recipe's raw mapping: `extends` merged, `--set` overrides and the store applied,
    not yet validated (t2g.kg.config validates it as a graph recipe when it has one)."""
    data = _read_recipe(Path(path), ())
    for item in overrides or []:
        apply_override(data, item)
    if store:
        data["store"] = store
    if isinstance(data.get("store"), str):
        # Before validation, so the store check sees the URI the run will use.
        data["store"] = dated_store(data["store"], now)
    return data


def _read_recipe(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    """The raw mapping of a recipe file, with `extends: OTHER.yaml` (a path relative to
    the file) resolved: the file's sections are merged over OTHER's, so a variant recipe
    states only what differs."""
    name = f"recipe {path}" + (f" (extended by {chain[-1]})" if chain else "")
    if len(chain) >= MAX_EXTENDS:
        raise RecipeError(f"{name}: more than {MAX_EXTENDS} files in one extends chain; extend a file nearer the base")
    try:
        data = load_yaml(read_recipe_text(path, name))
    except yaml.YAMLError as exc:
        raise yaml_error(name, exc) from None
    if not isinstance(data, dict):
        raise RecipeError(f"{name} must be a mapping of sections, got {type(data).__name__}")
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str) or not parent.strip():
        # The type only: the value is that file's text, and the file may not be a recipe.
        raise RecipeError(f"{name}: extends must be the path of another recipe file, got a {type(parent).__name__}")
    parent_path = path.parent / parent
    if parent_path.resolve() in {p.resolve() for p in (*chain, path)}:
        raise RecipeError(f"{name}: extends {parent} leads back to itself")
    return merge_sections(_read_recipe(parent_path, (*chain, path)), data)


# Lines of a validation error: a file with thousands of unknown keys gets the first few.
MAX_ERRORS_SHOWN = 10


def validate_recipe(data: dict[str, Any], source: str = "recipe", model: type[Recipe] | None = None) -> Recipe:
    """The Recipe (or `model`, a subclass) of `data`; a RecipeError names each wrong field,
    in a bounded excerpt (a key or a value quoted in it is cut to a few dozen characters)."""
    try:
        return (model or Recipe).model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        lines = []
        for err in errors[:MAX_ERRORS_SHOWN]:
            where = shown(".".join(str(p) for p in err["loc"])) or "(top level)"
            lines.append(f"  {where}: {shown(err['msg'], 200)}")
        if len(errors) > MAX_ERRORS_SHOWN:
            lines.append(f"  … and {len(errors) - MAX_ERRORS_SHOWN} more")
        raise RecipeError(f"{source} is not a valid recipe:\n" + "\n".join(lines)) from None


def apply_override(data: dict[str, Any], item: str) -> None:
    """Apply `section.key=value` (value parsed as YAML) to a raw recipe mapping. Raises
    only RecipeError, naming the field and not echoing the value (it may be huge)."""
    keys, value = parse_override(item)
    field = _shown(".".join(keys))
    node: Any = data
    for i, key in enumerate(keys[:-1]):
        if isinstance(node, list):
            node = node[_index(node, key, keys[: i + 1])]
            continue
        if not isinstance(node, dict):
            raise RecipeError(f"override {field}: {_shown('.'.join(keys[:i]))} is not a section")
        node = node.setdefault(key, {})
    last = keys[-1]
    if isinstance(node, list):
        node[_index(node, last, keys)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise RecipeError(f"override {field}: {_shown('.'.join(keys[:-1]))} is not a section")


_shown = shown


def _index(node: list, key: str, keys: list[str]) -> int:
    # ASCII digits only: str.isdigit() also accepts "²", which int() then refuses.
    if not re.fullmatch(r"-?[0-9]+", key) or not -len(node) <= int(key) < len(node):
        raise RecipeError(f"override {_shown('.'.join(keys))}: not an index of a {len(node)}-item list")
    return int(key)
