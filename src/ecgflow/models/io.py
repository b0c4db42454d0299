"""Saving and loading trained models as ``model.safetensors`` plus ``config.json``.

``config.json`` holds ``{"kind": "clip" | "classifier", "config": {...},
"ecgflow_version": "..."}``; the model is rebuilt from the config and the weights are loaded
strictly. A CLIP model's text encoder is rebuilt from its ``text.path`` (the bundled
all-MiniLM-L6-v2 when unset), which must therefore exist where the model is loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from pydantic import BaseModel, ValidationError
from safetensors import SafetensorError
from torch import nn

import ecgflow
from ecgflow.artifacts import MODEL_CONFIG, WEIGHTS
from ecgflow.errors import EcgflowError, describe_validation_error
from ecgflow.models.classifier import Classifier, ClassifierConfig
from ecgflow.models.clip import ClipConfig, ClipModel
from ecgflow.models.encoders import EncoderConfig
from ecgflow.plugins import Registry

#: a saved model's kind (config.json ``kind``) → its config model
MODEL_KINDS: Registry[type[BaseModel]] = Registry("model kind")
MODEL_KINDS.register("clip")(ClipConfig)
MODEL_KINDS.register("classifier")(ClassifierConfig)
_KINDS = ", ".join(MODEL_KINDS.names())
_ECG_PREFIX = "ecg_encoder."


def save_model(folder: Path, model: nn.Module, config: BaseModel, kind: str) -> None:
    """Write ``folder/model.safetensors`` and ``folder/config.json``; kind: clip or classifier."""
    if kind not in MODEL_KINDS:
        raise EcgflowError(f"unknown model kind {kind!r}; expected one of {_KINDS}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_model(model, str(folder / WEIGHTS), force_contiguous=True)
    document = {
        "kind": kind,
        "config": config.model_dump(mode="json"),
        "ecgflow_version": ecgflow.__version__,
    }
    (folder / MODEL_CONFIG).write_text(json.dumps(document, sort_keys=True, indent=2) + "\n")


def _read_config(folder: Path) -> tuple[str, BaseModel]:
    """The kind and validated config stored in ``folder/config.json``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EcgflowError(f"model folder {folder} does not exist")
    path = folder / MODEL_CONFIG
    try:
        document: Any = json.loads(path.read_text())
    except FileNotFoundError:
        raise EcgflowError(f"model config {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EcgflowError(f"cannot read model config {path}: {exc}") from None
    if not isinstance(document, dict) or "config" not in document:
        raise EcgflowError(f"{path}: expected an object with 'kind' and 'config'")
    kind = document.get("kind")
    if kind not in MODEL_KINDS:
        raise EcgflowError(f"{path}: unknown kind {kind!r}; expected one of {_KINDS}")
    try:
        config = MODEL_KINDS.get(kind).model_validate(document["config"])
    except ValidationError as exc:
        raise EcgflowError(f"{path}: {describe_validation_error(exc, root='config')}") from None
    return kind, config


def _weights_path(folder: Path) -> Path:
    path = Path(folder) / WEIGHTS
    if not path.is_file():
        raise EcgflowError(f"model weights {path} do not exist")
    return path


def load_model(folder: Path) -> tuple[nn.Module, BaseModel]:
    """Rebuild the model saved in ``folder`` and load its weights; returned in eval mode."""
    kind, config = _read_config(folder)
    path = _weights_path(folder)
    model: nn.Module
    if isinstance(config, ClipConfig):
        model = ClipModel(config)
    else:
        assert isinstance(config, ClassifierConfig), kind
        model = Classifier(config)
    try:
        safetensors.torch.load_model(model, str(path), strict=True, device="cpu")
    except (SafetensorError, RuntimeError, OSError) as exc:
        raise EcgflowError(f"cannot load model weights {path}: {exc}") from None
    return model.eval(), config


def load_ecg_encoder_state(folder: Path) -> tuple[dict[str, torch.Tensor], EncoderConfig]:
    """The ECG encoder's state dict and config from a CLIP folder, without the text model.

    Keys lose their ``ecg_encoder.`` prefix, so the result loads into ``build_encoder(config)``
    (for example a classifier's ``encoder``).
    """
    kind, config = _read_config(folder)
    path = _weights_path(folder)
    if not isinstance(config, ClipConfig):
        raise EcgflowError(f"{Path(folder) / MODEL_CONFIG}: expected a clip model, got {kind!r}")
    try:
        tensors = safetensors.torch.load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise EcgflowError(f"cannot read model weights {path}: {exc}") from None
    state = {
        key.removeprefix(_ECG_PREFIX): value
        for key, value in tensors.items()
        if key.startswith(_ECG_PREFIX)
    }
    if not state:
        raise EcgflowError(f"{path} holds no '{_ECG_PREFIX}*' tensors")
    return state, config.encoder
