"""The models' hyperparameters: plain pydantic, importable without torch.

Pipeline configs and stage parameters hold these; the networks that read them live beside
this module (``encoders``, ``text_encoder``, ``clip``, ``classifier``).
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class EncoderConfig(BaseModel):
    """Hyperparameters of an ECG encoder (``kind`` picks the architecture)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["resnet1d", "vit1d"] = "resnet1d"
    in_channels: int = Field(default=12, gt=0)
    width: int = Field(default=64, gt=0)
    """ResNet: stem/base channels. ViT: embedding dimension."""
    depth: int = Field(default=4, gt=0)
    """ResNet: residual stages. ViT: transformer layers."""
    kernel_size: int = Field(default=7, gt=0)
    """ResNet only; must be odd so convolutions keep the length."""
    patch_size: int = Field(default=25, gt=0)
    """ViT only: samples per patch."""
    heads: int = Field(default=4, gt=0)
    """ViT only: attention heads; must divide ``width``."""
    max_patches: int = Field(default=512, gt=0)
    """ViT only: capacity of the learned positional embedding."""
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _check_architecture(self) -> Self:
        if self.kind == "resnet1d" and self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")
        if self.kind == "vit1d" and self.width % self.heads != 0:
            raise ValueError(f"width ({self.width}) must be divisible by heads ({self.heads})")
        return self


class TextEncoderConfig(BaseModel):
    """Which text model to load and how much of it to freeze."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = None
    """A local Hugging Face model folder; ``None`` uses the bundled all-MiniLM-L6-v2."""
    freeze_layers: int = Field(default=4, ge=0)
    """0 trains everything; K > 0 freezes the embeddings and the first K layers."""
    max_length: int = Field(default=128, gt=0)


class ClipConfig(BaseModel):
    """Encoders, embedding size and temperature of a :class:`~ecgflow.models.clip.ClipModel`."""

    model_config = ConfigDict(extra="forbid")

    encoder: EncoderConfig = EncoderConfig()
    text: TextEncoderConfig = TextEncoderConfig()
    embed_dim: int = Field(default=256, gt=0)
    init_temperature: float = Field(default=0.07, gt=0.0)
    max_logit_scale: float = Field(default=100.0, gt=0.0)


class ClassifierConfig(BaseModel):
    """Encoder, label names and head dropout of a :class:`~ecgflow.models.classifier.Classifier`."""

    model_config = ConfigDict(extra="forbid")

    encoder: EncoderConfig = EncoderConfig()
    labels: list[str] = Field(min_length=1)
    dropout: float = Field(default=0.2, ge=0.0, lt=1.0)

    @field_validator("labels")
    @classmethod
    def _unique_labels(cls, labels: list[str]) -> list[str]:
        duplicates = sorted({label for label in labels if labels.count(label) > 1})
        if duplicates:
            raise ValueError(f"duplicate labels: {', '.join(duplicates)}")
        return labels
