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
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import core_schema


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

    #: defer_build: a model's validator is built on first use, so importing every stage's model
    #: (``ecgflow --help`` does) stays cheap
    model_config = ConfigDict(extra="forbid", defer_build=True)

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


class _DefaultsSchema(GenerateJsonSchema):
    """A JSON schema whose defaults include those made by default factories (the real ones)."""

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            value = factory()  # type: ignore[call-arg]
            return value.model_dump(mode="json") if isinstance(value, BaseModel) else value
        return super().get_default_value(schema)


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema, every default (a trainer's own ``train`` too) filled in."""
    return model.model_json_schema(schema_generator=_DefaultsSchema)
