"""How the training steps run on a cluster (Kubeflow Trainer TrainJobs)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ecgflow.errors import raises_ecgflow_error
from ecgflow.images import TRAIN_IMAGE
from ecgflow.params.base import Params


class TrainJobParams(Params):
    """How the training steps run on a cluster; invalid values raise EcgflowError."""

    launcher: Literal["auto", "local", "trainjob"] = Field(
        "auto",
        description="auto: a TrainJob when the step runs in a Kubernetes pod, in-process "
        "otherwise; local: always in the step's own process; trainjob: always a TrainJob",
    )
    num_nodes: int = Field(1, ge=1, description="TrainJob nodes (torchrun --nnodes)")
    runtime: str = Field("ecgflow-torch", min_length=1, description="ClusterTrainingRuntime")
    image: str = Field(TRAIN_IMAGE, min_length=1, description="trainer image (CUDA)")
    service_account: str | None = Field(None, description="trainer pods' ServiceAccount")
    timeout_h: float = Field(24.0, gt=0, description="give up on a TrainJob after this long")
    cpu: str = Field(
        "8", pattern=r"^[0-9]+(\.[0-9]+)?m?$", description="CPU request of each trainer node"
    )
    memory: str = Field(
        "32Gi", pattern=r"^[0-9]+(Mi|Gi|Ti)$", description="memory of each trainer node"
    )

    _as_ecgflow_error = raises_ecgflow_error("trainjob", "trainjob")
