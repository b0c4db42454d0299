"""Parameters of the export stage (ONNX + Triton layout)."""

from __future__ import annotations

from pydantic import Field

from ecgflow.errors import raises_ecgflow_error
from ecgflow.params.base import Params


class ExportParams(Params):
    """Parameters of the export stage; invalid values raise EcgflowError."""

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

    _as_ecgflow_error = raises_ecgflow_error("export", "export")
