"""What every recipe section is (a frozen pydantic model that forbids unknown keys), the
recipe's names for its own tiny models, and how sections merge: key by key, for `extends`
and for the overrides of a later round."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

TEACHER = "@teacher"  # extract.model and sft.model: the recipe's own tiny teacher (its `teacher` section)
REASONER = "@reasoner"  # reason.model: the recipe's own tiny reasoner (its `reasoner` section)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def merge_sections(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` merged into `base`: mappings merge key by key, anything else (a list, a
    scalar, null) replaces. Neither input is modified."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_sections(out[key], value)
        else:
            out[key] = value
    return out


def section_fields(model: BaseModel) -> dict[str, Any]:
    """A section's field values as plain data, every field included (also those left out
    of dumps, such as `launch`), so overrides merge into it and validate back."""

    def plain(value: Any) -> Any:
        if isinstance(value, BaseModel):
            return section_fields(value)
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return {name: plain(getattr(model, name)) for name in type(model).model_fields}


def merged_round(base: Section, overrides: dict[str, Any]) -> Section:
    """`base` with a round's `overrides` merged over it, validated as `base`'s class."""
    return base if not overrides else type(base).model_validate(merge_sections(section_fields(base), overrides))
