"""Parameters of finetune-classifier: the tuned recipe is the default.

The classifier starts from scratch: on PTB-XL (benchmarks/quality.py) the CLIP encoder as
start did not beat a random init; 2.5 s random crops (sliding windows at test time),
amplitude/noise augmentation, an EMA of the weights and 30 epochs with early stopping did.
"""

from __future__ import annotations

from pydantic import Field

from ecgflow.errors import raises_ecgflow_error
from ecgflow.params.base import Params
from ecgflow.params.networks import EncoderConfig
from ecgflow.params.train import TrainConfig, finetune_train


def finetune_encoder() -> EncoderConfig:
    """The encoder trained from scratch (``pretrained`` off)."""
    return EncoderConfig(width=32, depth=3)


class FinetuneParams(Params):
    """Parameters of finetune-classifier; invalid values raise EcgflowError."""

    pretrained: bool = Field(
        False, description="start from the CLIP ECG encoder (needs the train-clip folder)"
    )
    encoder: EncoderConfig = Field(
        default_factory=finetune_encoder, description="architecture when not pretrained"
    )
    dropout: float = Field(0.2, ge=0, lt=1, description="dropout before the head")
    train: TrainConfig = Field(default_factory=finetune_train, description="optimisation")
    weighted_sampling: bool = Field(False, description="draw rows by inverse label prevalence")
    crop_s: float | None = Field(
        2.5,
        gt=0,
        description="train on random crops of this many seconds; longer inputs are then "
        "scored as half-overlapping windows with averaged logits; none: whole rows",
    )
    augment: bool = Field(
        True, description="random per-lead amplitude scaling and Gaussian noise in training"
    )
    nproc: int = Field(1, ge=1, description="processes (torchrun --nproc_per_node)")
    eval_batch_size: int = Field(256, ge=1, description="batch size of the validation pass")

    _as_ecgflow_error = raises_ecgflow_error("finetune", "finetune")
