"""The base of every stage parameter model: forbid unknown fields, merge partial sections.

A nested section given as a mapping is merged onto that field's default, so
``{"train": {"epochs": 5}}`` changes ``train.epochs`` and keeps every other value of the
model's own ``train`` default (which can differ from the sub-model's class defaults: each
trainer has its own). A model instance given for a field replaces it whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` on top; mappings in both are merged key by key."""
    merged = dict(base)
    for key, value in override.items():
        below = merged.get(key)
        if isinstance(value, Mapping) and isinstance(below, Mapping):
            merged[key] = deep_merge(below, value)
        else:
            merged[key] = value
    return merged


class Params(BaseModel):
    """A stage's (or a sub-model's) parameters; see the module docstring."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    @model_validator(mode="before")
    @classmethod
    def _merge_onto_defaults(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        merged = dict(data)
        for name, field in cls.model_fields.items():
            given = merged.get(name)
            if not isinstance(given, Mapping):
                continue
            default = field.get_default(call_default_factory=True)
            if isinstance(default, BaseModel):
                merged[name] = deep_merge(default.model_dump(exclude_unset=True), given)
        return merged
