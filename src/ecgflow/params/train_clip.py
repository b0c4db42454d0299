"""Parameters of train-clip (contrastive ECG-report pre-training)."""

from __future__ import annotations

from pydantic import Field

from ecgflow.errors import raises_ecgflow_error
from ecgflow.params.base import Params
from ecgflow.params.networks import ClipConfig, EncoderConfig
from ecgflow.params.train import TrainConfig, clip_train


def clip_model() -> ClipConfig:
    """The CLIP model sized for one CPU machine (a few hundred records, minutes)."""
    return ClipConfig(encoder=EncoderConfig(width=32, depth=3), embed_dim=128)


class TrainClipParams(Params):
    """Parameters of train-clip; invalid values raise EcgflowError."""

    model: ClipConfig = Field(default_factory=clip_model, description="the CLIP model")
    train: TrainConfig = Field(default_factory=clip_train, description="optimisation")
    include_report: bool = Field(False, description="append the original report to the text")
    nproc: int = Field(1, ge=1, description="processes (torchrun --nproc_per_node)")
    eval_batch_size: int = Field(256, ge=1, description="batch size of the validation pass")

    _as_ecgflow_error = raises_ecgflow_error("train-clip", "train_clip")
