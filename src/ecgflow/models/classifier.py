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
        """Logits ``[B, n_labels]`` (apply a sigmoid for probabilities).

        With ``config.window`` an input longer than the window is cut into windows every
        ``window_stride`` samples (the last one ending at the input's end) and the windows'
        logits are averaged.
        """
        window = self.config.window
        length = x.shape[-1]
        if window is None or length <= window:
            return self.head(self.encoder(x))
        stride = self.config.window_stride or max(window // 2, 1)
        starts = list(range(0, length - window + 1, stride))
        if starts[-1] != length - window:
            starts.append(length - window)
        windows = torch.stack([x[..., s : s + window] for s in starts], dim=1)  # [B, W, C, T]
        logits = self.head(self.encoder(windows.flatten(0, 1)))
        return logits.view(x.shape[0], len(starts), -1).mean(dim=1)
