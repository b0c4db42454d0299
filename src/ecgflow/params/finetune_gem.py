"""Parameters of finetune-gem (the ECG multimodal LLM)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ecgflow.errors import raises_ecgflow_error
from ecgflow.params.base import Params
from ecgflow.params.networks import GemConfig
from ecgflow.params.train import TrainConfig, gem_train


class KindShares(BaseModel):
    """Each instruction kind's share of the training draws.

    Relative: normalised over the kinds trained on. Label and feature questions teach the LM to
    read the evidence lines, so they get more than their count alone gives them (18 % each on
    the shared data).
    """

    model_config = ConfigDict(extra="forbid")

    noise: float = Field(0.35, ge=0, description="lead-level noise questions")
    label: float = Field(0.25, ge=0, description="label yes/no questions")
    feature: float = Field(0.25, ge=0, description="measured-feature questions")
    ecgqa: float = Field(0.1, ge=0, description="ECG-QA questions")
    report: float = Field(0.05, ge=0, description="report-style interpretations")


class FinetuneGemParams(Params):
    """Parameters of finetune-gem; invalid values raise EcgflowError.

    ``model.encoder`` is taken from the CLIP folder; the rest of ``model`` is GEM's own.
    """

    model: GemConfig = Field(default_factory=GemConfig, description="the GEM model")
    train: TrainConfig = Field(default_factory=gem_train, description="optimisation")
    kinds: list[Literal["noise", "label", "feature", "report", "ecgqa"]] = Field(
        default=["noise", "label", "feature", "report", "ecgqa"],
        min_length=1,
        description="instruction kinds trained on",
    )
    epoch_samples: int | None = Field(
        768,
        ge=1,
        description="instructions drawn per epoch (by weight); none: as many as there are",
    )
    kind_shares: KindShares = Field(
        default_factory=KindShares, description="each instruction kind's share of the draws"
    )
    balance_answers: bool = Field(
        True, description="draw yes and no equally often within each template and attribute"
    )
    projector_share: float = Field(
        0.2,
        ge=0,
        lt=1,
        description="stage 1: the share of the training steps in which the towers and projector "
        "train alone; LoRA joins after (its own warm-up and cosine, peak train.lr)",
    )
    tower_lr: float = Field(
        1e-3, gt=0, description="peak learning rate of the towers and projector (both stages)"
    )
    eval_questions: int = Field(
        160, ge=2, description="closed-set val questions scored per epoch (ECG-QA first)"
    )
    selection_metric: Literal["qa_accuracy", "qa_balanced_accuracy", "family_balanced_accuracy"] = (
        Field(
            "family_balanced_accuracy",
            description="val metric for early stopping and the best model; "
            "family_balanced_accuracy: the mean of each question family's balanced accuracy "
            "(ECG-QA, noise, label, feature), so no family outvotes another",
        )
    )
    nproc: int = Field(1, ge=1, description="processes (torchrun --nproc_per_node)")
    eval_batch_size: int = Field(16, ge=1, description="questions per scoring batch")

    _as_ecgflow_error = raises_ecgflow_error("finetune-gem", "finetune_gem")
