"""A multi-label ECG classifier: an encoder followed by a linear head."""

from __future__ import annotations

import torch
from torch import nn

from ecgflow.models.configs import ClassifierConfig
from ecgflow.models.encoders import build_encoder


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
