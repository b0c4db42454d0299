"""A CLIP-style model aligning ECG signals with their text reports."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional

from ecgflow.models.configs import ClipConfig
from ecgflow.models.encoders import build_encoder
from ecgflow.models.text_encoder import TextEncoder


def _projection(in_dim: int, embed_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, embed_dim), nn.GELU(), nn.Linear(embed_dim, embed_dim))


class ClipModel(nn.Module):
    """ECG encoder and text encoder with projection heads into one normalised space."""

    def __init__(self, config: ClipConfig) -> None:
        super().__init__()
        self.config = config
        self.ecg_encoder = build_encoder(config.encoder)
        self.text_encoder = TextEncoder(config.text)
        self.ecg_projection = _projection(self.ecg_encoder.out_dim, config.embed_dim)
        self.text_projection = _projection(self.text_encoder.out_dim, config.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.init_temperature)))
        self._max_log_scale = math.log(config.max_logit_scale)

    def encode_ecg(self, x: torch.Tensor) -> torch.Tensor:
        """L2-normalised ECG embeddings ``[B, embed_dim]`` of signals ``[B, C, T]``."""
        return functional.normalize(self.ecg_projection(self.ecg_encoder(x)), dim=-1)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """L2-normalised text embeddings ``[B, embed_dim]`` of tokenised texts."""
        return functional.normalize(
            self.text_projection(self.text_encoder(input_ids, attention_mask)), dim=-1
        )

    def scale(self) -> torch.Tensor:
        """The logit scale ``exp(logit_scale)``, clamped to at most ``max_logit_scale``."""
        return self.logit_scale.clamp(max=self._max_log_scale).exp()

    def forward(
        self, x: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """ECG embeddings, text embeddings and the logit scale."""
        return self.encode_ecg(x), self.encode_text(input_ids, attention_mask), self.scale()


def clip_loss(ecg_emb: torch.Tensor, text_emb: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Symmetric cross-entropy over ``scale * ecg_emb @ text_emb.T``; pair ``i`` matches ``i``."""
    logits = scale * ecg_emb @ text_emb.T
    targets = torch.arange(logits.shape[0], device=logits.device)
    return (
        functional.cross_entropy(logits, targets) + functional.cross_entropy(logits.T, targets)
    ) / 2
