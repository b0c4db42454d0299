"""Optimisation settings shared by every trainer, and each trainer's own default of them.

The three trainers share :class:`TrainConfig` (one option group on the command line) but not
its defaults: :func:`clip_train`, :func:`finetune_train` and :func:`gem_train` are the tuned
recipes, and a partial ``train`` section is merged onto the trainer's own.
"""

from __future__ import annotations

from pydantic import Field

from ecgflow.errors import raises_ecgflow_error
from ecgflow.params.base import Params


class TrainConfig(Params):
    """Optimisation settings shared by every trainer."""

    epochs: int = Field(10, ge=1, description="epochs at most")
    batch_size: int = Field(64, ge=2, description="samples per batch per process")
    lr: float = Field(1e-3, gt=0, description="peak learning rate (AdamW)")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay")
    warmup_epochs: float = Field(1.0, ge=0, description="linear warm-up length in epochs")
    restarts: int = Field(0, ge=0, description="cosine restarts after warm-up")
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="final LR as a share of the peak")
    grad_clip: float = Field(1.0, gt=0, description="max gradient norm")
    patience: int = Field(5, ge=0, description="early stop after N epochs without gain; 0 off")
    ema_decay: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="evaluate and keep an exponential moving average of the weights "
        "(this decay per step); none: the weights as trained",
    )
    seed: int = Field(0, description="seed of initialisation, sampling and augmentation")
    amp: bool = Field(True, description="mixed precision on CUDA (no effect on CPU)")
    device: str | None = Field(None, description="force a device, e.g. 'cpu'")
    experiment: str = Field("ecgflow", description="MLflow experiment")
    log_every: int = Field(50, ge=1, description="log the running loss every N steps")

    _as_ecgflow_error = raises_ecgflow_error("train", "train")


def clip_train() -> TrainConfig:
    """train-clip: 15 epochs, the best kept, no early stop.

    CLIP's retrieval keeps rising for 10-15 epochs on PTB-XL while the small, noisy
    validation curve dips on the way (benchmarks/quality.py).
    """
    return TrainConfig(epochs=15, batch_size=32, warmup_epochs=0.5, patience=0)


def finetune_train() -> TrainConfig:
    """finetune-classifier: 30 epochs with early stopping and an EMA of the weights."""
    return TrainConfig(
        epochs=30, batch_size=32, lr=3e-3, warmup_epochs=0.5, patience=10, ema_decay=0.98
    )


def gem_train() -> TrainConfig:
    """finetune-gem: a few epochs of small batches (the LM is the cost).

    Three epochs of 768 draws: with the evidence lines in every prompt one step of 8 takes
    ~10 s on 2 CPU cores, so the shared data's run stays within an hour (docs/gem.md).
    """
    return TrainConfig(epochs=3, batch_size=8, lr=3e-4, warmup_epochs=0.5, patience=3, log_every=20)
