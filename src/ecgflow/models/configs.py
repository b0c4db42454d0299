"""The classifier's hyperparameters, and the stage-parameter network configs it builds on.

The encoder, text-encoder, CLIP and GEM configs are stage parameters: their home (and their
defaults) is :mod:`ecgflow.params.networks`; they are imported here for the networks.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ecgflow.params.networks import ClipConfig, EncoderConfig, GemConfig, TextEncoderConfig

__all__ = ["ClassifierConfig", "ClipConfig", "EncoderConfig", "GemConfig", "TextEncoderConfig"]


class ClassifierConfig(BaseModel):
    """Encoder, label names and head dropout of a :class:`~ecgflow.models.classifier.Classifier`."""

    model_config = ConfigDict(extra="forbid")

    encoder: EncoderConfig = EncoderConfig()
    labels: list[str] = Field(min_length=1)
    dropout: float = Field(default=0.2, ge=0.0, lt=1.0)
    window: int | None = Field(default=None, gt=0)
    """Samples per window: longer inputs are scored as sliding windows whose logits are
    averaged (a model trained on random crops of this length); ``None``: the whole input."""
    window_stride: int | None = Field(default=None, gt=0)
    """Step between windows in samples (default: half a window)."""

    @field_validator("labels")
    @classmethod
    def _unique_labels(cls, labels: list[str]) -> list[str]:
        duplicates = sorted({label for label in labels if labels.count(label) > 1})
        if duplicates:
            raise ValueError(f"duplicate labels: {', '.join(duplicates)}")
        return labels
