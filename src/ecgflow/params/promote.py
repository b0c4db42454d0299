"""The registry name and promotion gate of a model."""

from __future__ import annotations

from pydantic import Field

from ecgflow.errors import raises_ecgflow_error
from ecgflow.params.base import Params


class PromoteParams(Params):
    """Registry name and the promotion gate; invalid values raise EcgflowError."""

    name: str = Field("ecg-classifier", min_length=1, description="registered model name")
    metric: str = Field("macro_auroc", description="eval metric compared with the champion")
    min_delta: float = Field(0.0, ge=0, description="gain needed to replace the champion")

    _as_ecgflow_error = raises_ecgflow_error("promote", "promote")


def gem_promote() -> PromoteParams:
    """GEM's registry name and gate (the pipeline config's ``gem_promote`` section)."""
    return PromoteParams(name="ecg-gem", metric="qa_accuracy")
