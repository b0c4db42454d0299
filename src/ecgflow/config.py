"""Typed pipeline configuration: YAML files under ``configs/``, environment overrides.

Precedence (lowest first): built-in defaults → the YAML file (``--config`` or
``$ECGFLOW_CONFIG``) → environment variables (``ECGFLOW_IMAGE``, ``ECGFLOW_SOURCE``) →
command-line options.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ecgflow import __version__
from ecgflow.errors import EcgflowError, describe_validation_error
from ecgflow.stages.ingest import IngestParams
from ecgflow.stages.label import LabelParams
from ecgflow.stages.preprocess import PreprocessParams
from ecgflow.stages.render_images import RenderParams
from ecgflow.stages.split import SplitParams

#: The project image every KFP component runs in on a cluster (built from ``images/``).
DEFAULT_IMAGE = f"ghcr.io/ecgflow/ecgflow:{__version__}"
DEFAULT_HOME = ".ecgflow"


class PipelineConfig(BaseModel):
    """Everything a pipeline run needs: the image and each stage's parameters."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("ecgflow-training", description="pipeline name in KFP")
    image: str = Field(DEFAULT_IMAGE, description="container image of every component")
    ingest: IngestParams = Field(default_factory=IngestParams)
    label: LabelParams = Field(default_factory=lambda: LabelParams(label_set="auto"))
    split: SplitParams = Field(default_factory=SplitParams)
    preprocess: PreprocessParams = Field(default_factory=PreprocessParams)
    render_images: bool = Field(True, description="run the render-images step")
    render: RenderParams = Field(default_factory=RenderParams)


def ecgflow_home() -> Path:
    """Where local runs keep their outputs: ``$ECGFLOW_HOME`` or ``./.ecgflow``."""
    return Path(os.environ.get("ECGFLOW_HOME", DEFAULT_HOME)).resolve()


def load_config(path: Path | str | None = None) -> PipelineConfig:
    """Load the pipeline config from ``path`` (or ``$ECGFLOW_CONFIG``), then apply env overrides.

    Raises :class:`EcgflowError` naming the file and the offending field when invalid.
    """
    path = path or os.environ.get("ECGFLOW_CONFIG") or None
    data: dict[str, Any] = _read_yaml(Path(path)) if path else {}
    if os.environ.get("ECGFLOW_IMAGE"):
        data["image"] = os.environ["ECGFLOW_IMAGE"]
    if os.environ.get("ECGFLOW_SOURCE"):
        data.setdefault("ingest", {})["source"] = os.environ["ECGFLOW_SOURCE"]
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
