"""Typed pipeline configuration: YAML files under ``configs/``, environment overrides.

Precedence (lowest first): built-in defaults → the YAML file (``--config`` or
``$ECGFLOW_CONFIG``) → environment variables (:data:`ENV_OVERRIDES`; the Helm chart's
pipeline-registration Job sets them) → command-line options.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ecgflow.errors import EcgflowError, describe_validation_error
from ecgflow.images import BASE_IMAGE, SERVE_IMAGE
from ecgflow.k8s.training_step import TrainJobParams
from ecgflow.params import EvalGemParams, EvalParams, ExportParams, PromoteParams
from ecgflow.stages.build_instructions import BuildInstructionsParams
from ecgflow.stages.ingest import IngestParams
from ecgflow.stages.label import LabelParams
from ecgflow.stages.preprocess import PreprocessParams
from ecgflow.stages.render_images import RenderParams
from ecgflow.stages.split import SplitParams
from ecgflow.training.params import FinetuneGemParams, FinetuneParams, TrainClipParams

#: The project image every KFP component runs in on a cluster (built from ``images/``).
DEFAULT_IMAGE = BASE_IMAGE
#: Training sized for the embedded default (CPU, a few hundred records, a couple of minutes).
#: CLIP's retrieval keeps rising for 10–15 epochs on PTB-XL while the small, noisy validation
#: curve dips on the way (benchmarks/quality.py): 15 epochs, best epoch kept, no early stop.
LOCAL_TRAIN_CLIP = {
    "model": {"encoder": {"width": 32, "depth": 3}, "embed_dim": 128},
    "train": {"epochs": 15, "batch_size": 32, "warmup_epochs": 0.5, "patience": 0},
}
#: The classifier starts from scratch: on PTB-XL (benchmarks/quality.py) the CLIP encoder as
#: start did not beat a random init; 2.5 s random crops (sliding windows at test time),
#: amplitude/noise augmentation, EMA of the weights and 30 epochs with early stopping did.
LOCAL_FINETUNE = {
    "pretrained": False,
    "encoder": {"width": 32, "depth": 3},
    "crop_s": 2.5,
    "augment": True,
    "train": {
        "epochs": 30,
        "batch_size": 32,
        "lr": 3e-3,
        "warmup_epochs": 0.5,
        "patience": 10,
        "ema_decay": 0.98,
    },
}

#: GEM reads the signal as recorded (mV, no filters): noise and drift questions are about
#: exactly what baseline removal and band-pass filtering take away.
GEM_SIGNAL = {"baseline": False, "bandpass": None, "normalise": "scale"}


#: environment variable → (section, field) of the config it overrides ("" : top level)
ENV_OVERRIDES = {
    "ECGFLOW_IMAGE": ("", "image"),
    "ECGFLOW_TRACKING_URI": ("", "tracking_uri"),
    "ECGFLOW_SOURCE": ("ingest", "source"),
    "ECGFLOW_TRAIN_IMAGE": ("trainjob", "image"),
    "ECGFLOW_TRAINING_RUNTIME": ("trainjob", "runtime"),
    "ECGFLOW_S3_SECRET": ("", "s3_secret"),
    "ECGFLOW_S3_ENDPOINT_URL": ("", "s3_endpoint_url"),
    "ECGFLOW_MLFLOW_SECRET": ("", "mlflow_secret"),
}


class PipelineConfig(BaseModel):
    """Everything a pipeline run needs: the image and each stage's parameters."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("ecgflow-training", description="pipeline name in KFP")
    image: str = Field(DEFAULT_IMAGE, description="container image of every component")
    serve_image: str = Field(SERVE_IMAGE, description="KServe predictor image")
    ingest: IngestParams = Field(default_factory=IngestParams)
    label: LabelParams = Field(default_factory=lambda: LabelParams(label_set="auto"))
    split: SplitParams = Field(default_factory=SplitParams)
    preprocess: PreprocessParams = Field(default_factory=PreprocessParams)
    render_images: bool = Field(True, description="run the render-images step")
    render: RenderParams = Field(default_factory=RenderParams)
    train_clip: TrainClipParams = Field(
        default_factory=lambda: TrainClipParams.model_validate(LOCAL_TRAIN_CLIP),
        description="train-clip; the default is sized for one CPU machine",
    )
    finetune: FinetuneParams = Field(
        default_factory=lambda: FinetuneParams.model_validate(LOCAL_FINETUNE),
        description="finetune-classifier; the default is sized for one CPU machine",
    )
    eval: EvalParams = Field(default_factory=EvalParams)
    export: ExportParams = Field(default_factory=ExportParams)
    promote: PromoteParams = Field(default_factory=PromoteParams)
    accelerator_type: str = Field(
        "nvidia.com/gpu", description="accelerator the training steps request on a cluster"
    )
    trainjob: TrainJobParams = Field(
        default_factory=TrainJobParams,
        description="how the training steps run on a cluster (Kubeflow Trainer TrainJobs)",
    )
    tracking_uri: str | None = Field(
        None,
        description="MLflow server every step logs to on a cluster (MLFLOW_TRACKING_URI of "
        "each step, e.g. the chart's http://ecgflow-mlflow.NS.svc.cluster.local:5000); "
        "None: the image's embedded store, lost with the pod",
    )
    s3_secret: str | None = Field(
        None,
        description="Secret with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY that every step "
        "gets as env on a cluster (reading s3:// sources); None: IAM roles or none",
    )
    s3_endpoint_url: str | None = Field(
        None,
        pattern=r"^https?://",
        description="AWS_ENDPOINT_URL of every step (an in-cluster S3 such as SeaweedFS)",
    )
    mlflow_secret: str | None = Field(
        None,
        description="Secret with MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD that every "
        "step gets as env on a cluster (the chart's MLflow requires them); None: no MLflow auth",
    )
    workspace_size: str = Field(
        "50Gi",
        pattern=r"^[0-9]+(\.[0-9]+)?(Mi|Gi|Ti)$",
        description="the run's workspace PVC, shared by a training step and its TrainJob",
    )
    workspace_storage_class: str | None = Field(
        None, description="storage class of the workspace PVC (ReadWriteMany for multi-node)"
    )
    with_gem: bool = Field(
        False,
        description="also run the GEM steps: preprocess-gem → build-instructions → "
        "finetune-gem → eval-gem → register and promote ecg-gem",
    )
    gem_qa: list[str] = Field(
        default_factory=list,
        description="ECG-QA JSON files (paths the steps can read) for build-instructions and "
        "eval-gem; eval-gem always asks the test records' own questions (test.json) too",
    )
    gem_preprocess: PreprocessParams = Field(
        default_factory=lambda: PreprocessParams.model_validate(GEM_SIGNAL),
        description="preprocess of GEM's signals (as recorded, in mV)",
    )
    instructions: BuildInstructionsParams = Field(default_factory=BuildInstructionsParams)
    finetune_gem: FinetuneGemParams = Field(default_factory=FinetuneGemParams)
    eval_gem: EvalGemParams = Field(default_factory=EvalGemParams)
    gem_promote: PromoteParams = Field(
        default_factory=lambda: PromoteParams(name="ecg-gem", metric="qa_accuracy"),
        description="GEM's registry name and gate (a tie promotes: 'not worse')",
    )


def load_config(path: Path | str | None = None) -> PipelineConfig:
    """Load the pipeline config from ``path`` (or ``$ECGFLOW_CONFIG``), then apply env overrides.

    Raises :class:`EcgflowError` naming the file and the offending field when invalid.
    """
    path = path or os.environ.get("ECGFLOW_CONFIG") or None
    data: dict[str, Any] = _read_yaml(Path(path)) if path else {}
    for variable, (section, field) in ENV_OVERRIDES.items():
        value = os.environ.get(variable)
        if value:
            (data.setdefault(section, {}) if section else data)[field] = value
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        where = str(path) if path else "environment"
        problems = describe_validation_error(exc)
        raise EcgflowError(f"invalid config ({where}): {problems}") from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EcgflowError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise EcgflowError(f"{path}: not valid YAML ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise EcgflowError(f"{path}: expected a mapping at the top level")
    return data
