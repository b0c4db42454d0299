"""Typed pipeline configuration: one section per stage, each a model from :mod:`ecgflow.params`.

Layers, lowest first, each deep-merged onto the one below (a section that names one nested
field changes only that field): the models' defaults → the YAML file (``--config`` or
``$ECGFLOW_CONFIG``) → environment variables (:data:`ENV_OVERRIDES`; the Helm chart's
pipeline-registration Job sets them) → command-line options and ``--param``.

:func:`config_problems` lists every bad field of a file with its full dotted path, the stage
option that sets it, the bad value and the rule (``ecgflow validate-config``); :func:`load_config`
raises them all at once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError

from ecgflow.errors import EcgflowError, raises_ecgflow_error, validation_problems
from ecgflow.images import BASE_IMAGE, SERVE_IMAGE
from ecgflow.params import (
    BuildInstructionsParams,
    EvalGemParams,
    EvalParams,
    ExportParams,
    FinetuneGemParams,
    FinetuneParams,
    IngestParams,
    LabelParams,
    Params,
    PreprocessParams,
    PromoteParams,
    RenderParams,
    SplitParams,
    TrainClipParams,
    TrainJobParams,
    deep_merge,
    gem_preprocess,
    gem_promote,
)

#: The project image every KFP component runs in on a cluster (built from ``images/``).
DEFAULT_IMAGE = BASE_IMAGE

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


class PipelineConfig(Params):
    """Everything a pipeline run needs: the image and each stage's parameters."""

    name: str = Field("ecgflow-training", description="pipeline name in KFP")
    image: str = Field(DEFAULT_IMAGE, description="container image of every component")
    serve_image: str = Field(SERVE_IMAGE, description="KServe predictor image")
    ingest: IngestParams = Field(default_factory=IngestParams, description="ingest")
    label: LabelParams = Field(default_factory=LabelParams, description="label")
    split: SplitParams = Field(default_factory=SplitParams, description="split")
    preprocess: PreprocessParams = Field(default_factory=PreprocessParams, description="preprocess")
    render_images: bool = Field(True, description="run the render-images step")
    render: RenderParams = Field(default_factory=RenderParams, description="render-images")
    train_clip: TrainClipParams = Field(default_factory=TrainClipParams, description="train-clip")
    finetune: FinetuneParams = Field(
        default_factory=FinetuneParams, description="finetune-classifier"
    )
    eval: EvalParams = Field(default_factory=EvalParams, description="eval")
    export: ExportParams = Field(default_factory=ExportParams, description="export")
    promote: PromoteParams = Field(
        default_factory=PromoteParams, description="the classifier's registry name and gate"
    )
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
        default_factory=gem_preprocess,
        description="preprocess of GEM's signals (as recorded, in mV)",
    )
    instructions: BuildInstructionsParams = Field(
        default_factory=BuildInstructionsParams, description="build-instructions"
    )
    finetune_gem: FinetuneGemParams = Field(
        default_factory=FinetuneGemParams, description="finetune-gem"
    )
    eval_gem: EvalGemParams = Field(default_factory=EvalGemParams, description="eval-gem")
    gem_promote: PromoteParams = Field(
        default_factory=gem_promote,
        description="GEM's registry name and gate (a tie promotes: 'not worse')",
    )

    _collect_errors = raises_ecgflow_error(None)


#: compiled pipeline parameter holding a section as JSON text → that section: every params-model
#: section ``X`` of the config is the pipeline input ``X_params`` (pipelines/training.py)
PARAM_SECTIONS = {
    f"{name}_params": name
    for name, field in PipelineConfig.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, Params)
}


def config_layers(
    path: Path | str | None = None, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The YAML file, the environment and ``overrides`` merged (not yet validated)."""
    data: dict[str, Any] = _read_yaml(Path(path)) if path else {}
    for variable, (section, field) in ENV_OVERRIDES.items():
        value = os.environ.get(variable)
        if value:
            data = deep_merge(data, {section: {field: value}} if section else {field: value})
    return deep_merge(data, overrides or {})


def config_problems(
    path: Path | str | None = None, overrides: Mapping[str, Any] | None = None
) -> list[str]:
    """Every bad field of the layered config: ``path / --flag: rule (got value)``; [] if valid."""
    data = config_layers(path, overrides)
    try:
        PipelineConfig.model_validate(data)
    except ValidationError as exc:
        return validation_problems(exc, flags=True, model=PipelineConfig)
    return []


def load_config(
    path: Path | str | None = None, overrides: Mapping[str, Any] | None = None
) -> PipelineConfig:
    """The pipeline config: defaults ← ``path`` (or ``$ECGFLOW_CONFIG``) ← env ← ``overrides``.

    Raises :class:`EcgflowError` naming the file and every offending field with its path.
    """
    path = path or os.environ.get("ECGFLOW_CONFIG") or None
    data = config_layers(path, overrides)
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        where = str(path) if path else "environment"
        problems = "\n  ".join(validation_problems(exc, flags=True, model=PipelineConfig))
        raise EcgflowError(f"invalid config ({where}):\n  {problems}") from None


def merge_param(name: str, default: Any, value: Any) -> Any:
    """A ``--param`` value over the compiled default: a section's JSON is deep-merged onto it.

    ``--param 'finetune_params={"train":{"epochs":5}}'`` changes that one field and keeps
    every other value the pipeline was compiled with; the result is validated as the section.
    """
    section = PARAM_SECTIONS.get(name)
    if section is None or not isinstance(value, str) or not isinstance(default, str):
        return value
    try:
        given, base = json.loads(value), json.loads(default)
    except json.JSONDecodeError as exc:
        raise EcgflowError(f"--param {name}: not JSON ({exc})") from None
    if not isinstance(given, dict) or not isinstance(base, dict):
        raise EcgflowError(f"--param {name}: expected a JSON object, got {value!r}")
    model = PipelineConfig.model_fields[section].annotation
    assert isinstance(model, type) and issubclass(model, Params)
    try:
        merged = model.model_validate(deep_merge(base, given))
    except EcgflowError as exc:
        raise EcgflowError(f"--param {name}: {exc}") from None
    return merged.model_dump_json()


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
