"""Parameters of the trainers: plain pydantic, importable without torch (pipeline configs)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ecgflow.errors import raises_ecgflow_error
from ecgflow.models.configs import ClipConfig, EncoderConfig, GemConfig


class TrainConfig(BaseModel):
    """Optimisation settings shared by every trainer."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(10, ge=1, description="epochs at most")
    batch_size: int = Field(64, ge=2, description="samples per batch per process")
    lr: float = Field(1e-3, gt=0, description="peak learning rate (AdamW)")
    weight_decay: float = Field(0.01, ge=0)
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
    seed: int = 0
    amp: bool = Field(True, description="mixed precision on CUDA (no effect on CPU)")
    device: str | None = Field(None, description="force a device, e.g. 'cpu'")
    experiment: str = Field("ecgflow", description="MLflow experiment")
    log_every: int = Field(50, ge=1, description="log the running loss every N steps")

    _as_ecgflow_error = raises_ecgflow_error("train")


class TrainClipParams(BaseModel):
    """Parameters of train-clip; invalid values raise EcgflowError."""

    model_config = ConfigDict(extra="forbid")

    model: ClipConfig = Field(default_factory=ClipConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    include_report: bool = Field(False, description="append the original report to the text")
    nproc: int = Field(1, ge=1, description="processes (torchrun --nproc_per_node)")
    eval_batch_size: int = Field(256, ge=1)

    _as_ecgflow_error = raises_ecgflow_error("train-clip")


class FinetuneParams(BaseModel):
    """Parameters of finetune-classifier; invalid values raise EcgflowError."""

    model_config = ConfigDict(extra="forbid")

    pretrained: bool = Field(True, description="start from the CLIP ECG encoder")
    encoder: EncoderConfig = Field(
        default_factory=EncoderConfig, description="architecture when not pretrained"
    )
    dropout: float = Field(0.2, ge=0, lt=1)
    train: TrainConfig = Field(default_factory=TrainConfig)
    weighted_sampling: bool = Field(False, description="draw rows by inverse label prevalence")
    crop_s: float | None = Field(
        None,
        gt=0,
        description="train on random crops of this many seconds; longer inputs are then "
        "scored as half-overlapping windows with averaged logits; none: whole rows",
    )
    augment: bool = Field(
        False, description="random per-lead amplitude scaling and Gaussian noise in training"
    )
    nproc: int = Field(1, ge=1, description="processes (torchrun --nproc_per_node)")
    eval_batch_size: int = Field(256, ge=1)

    _as_ecgflow_error = raises_ecgflow_error("finetune")


def _gem_train() -> TrainConfig:
    return TrainConfig(epochs=6, batch_size=8, lr=3e-4, warmup_epochs=0.5, patience=3, log_every=20)


class FinetuneGemParams(BaseModel):
    """Parameters of finetune-gem; invalid values raise EcgflowError.

    ``model.encoder`` is taken from the CLIP folder; the rest of ``model`` is GEM's own.
    """

    model_config = ConfigDict(extra="forbid")

    model: GemConfig = Field(default_factory=GemConfig)
    train: TrainConfig = Field(default_factory=_gem_train)
    kinds: list[Literal["noise", "label", "feature", "report", "ecgqa"]] = Field(
        default=["noise", "label", "feature", "report", "ecgqa"],
        min_length=1,
        description="instruction kinds trained on",
    )
    epoch_samples: int | None = Field(
        768, ge=1, description="instructions drawn per epoch (by weight); none: all, in turn"
    )
    balance_answers: bool = Field(
        True, description="draw yes and no equally often within each template and attribute"
    )
    eval_questions: int = Field(
        160, ge=2, description="closed-set val questions scored per epoch (ECG-QA first)"
    )
    selection_metric: Literal["qa_accuracy", "qa_balanced_accuracy"] = Field(
        "qa_balanced_accuracy", description="val metric for early stopping and the best model"
    )
    nproc: int = Field(1, ge=1, description="processes (torchrun --nproc_per_node)")
    eval_batch_size: int = Field(16, ge=1, description="questions per scoring batch")

    _as_ecgflow_error = raises_ecgflow_error("finetune-gem")
