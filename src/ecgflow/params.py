"""Parameters of the release stages (eval, export, promotion), importable without torch.

Pipeline configs hold them; the stages that use them import torch, so they live here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ecgflow.errors import raises_ecgflow_error


class EvalParams(BaseModel):
    """Parameters of the eval stage; invalid values raise EcgflowError."""

    model_config = ConfigDict(extra="forbid")

    split: Literal["test", "val", "all"] = Field("test", description="what to evaluate")
    bootstrap: int = Field(200, ge=0, description="bootstrap resamples for the 95 % CIs")
    seed: int = Field(0, description="bootstrap seed")
    batch_size: int = Field(256, ge=1)
    plots: bool = Field(True, description="write PNG plots")
    experiment: str = Field("ecgflow", description="MLflow experiment")
    challenge_weights: Path | None = Field(
        None,
        description="the PhysioNet/CinC Challenge weights.csv (2020 or 2021) for the CinC metric "
        "(default: the ingest folder's raw/weights.csv)",
    )

    _as_ecgflow_error = raises_ecgflow_error("eval")


class PromoteParams(BaseModel):
    """Registry name and the promotion gate; invalid values raise EcgflowError."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("ecg-classifier", min_length=1, description="registered model name")
    metric: str = Field("macro_auroc", description="eval metric compared with the champion")
    min_delta: float = Field(0.0, ge=0, description="gain needed to replace the champion")

    _as_ecgflow_error = raises_ecgflow_error("promote")


class ExportParams(BaseModel):
    """Parameters of the export stage; invalid values raise EcgflowError."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        "ecg-classifier", pattern=r"^[A-Za-z0-9_.-]+$", description="Triton model name"
    )
    opset: int = Field(
        18,
        ge=13,
        description="ONNX opset, pinned so an export is reproducible and runs on the serving "
        "runtime the project tests (onnxruntime 1.31, Triton's onnxruntime backend)",
    )
    parity_rows: int = Field(32, ge=1, description="real rows compared with PyTorch")
    tolerance: float = Field(1e-4, ge=0, description="max |ONNX - PyTorch| allowed")
    max_batch_size: int = Field(64, ge=1, description="Triton max_batch_size")

    _as_ecgflow_error = raises_ecgflow_error("export")


class EvalGemParams(BaseModel):
    """Parameters of eval-gem; invalid values raise EcgflowError."""

    model_config = ConfigDict(extra="forbid")

    split: str = Field(
        "test", description="ask about records of this split only ('all': every record)"
    )
    batch_size: int = Field(16, ge=1, description="questions per scoring batch")
    max_new_tokens: int = Field(48, ge=1, le=1024, description="tokens per generated answer")
    interpret: bool = Field(
        True, description="with labels: also generate an interpretation per record and score it"
    )
    plots: bool = Field(True, description="write PNG plots")
    experiment: str = Field("ecgflow", description="MLflow experiment")

    _as_ecgflow_error = raises_ecgflow_error("eval-gem")
