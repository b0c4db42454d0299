"""A multi-label ECG classifier: an encoder followed by a linear head."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn

from ecgflow.models.encoders import EncoderConfig, build_encoder


class ClassifierConfig(BaseModel):
    """Encoder, label names and head dropout of a :class:`Classifier`."""

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


class Classifier(nn.Module):
    """Maps signals ``[B, C, T]`` to one logit per label ``[B, len(labels)]``."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = build_encoder(config.encoder)
        self.head = nn.Sequential(
            nn.Dropout(config.dropout), nn.Linear(self.encoder.out_dim, len(config.labels))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, n_labels]`` (apply a sigmoid for probabilities)."""
        return self.head(self.encoder(x))
