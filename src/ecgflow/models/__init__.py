"""Neural networks for ECG training: signal encoders, a CLIP model, a classifier, and their I/O.

The configs (``ecgflow.models.configs``) import without torch; the networks are imported on
first use, so a pipeline config or a CLI call that never builds a model stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from ecgflow.models.configs import ClassifierConfig, ClipConfig, EncoderConfig, TextEncoderConfig

_LAZY = {
    "Classifier": "classifier",
    "ClipModel": "clip",
    "clip_loss": "clip",
    "ResNet1d": "encoders",
    "ViT1d": "encoders",
    "build_encoder": "encoders",
    "TextEncoder": "text_encoder",
    "load_ecg_encoder_state": "io",
    "load_model": "io",
    "save_model": "io",
}

__all__ = [
    "ClassifierConfig",
    "ClipConfig",
    "EncoderConfig",
    "TextEncoderConfig",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    """Import the networks' modules (and torch) when one of their names is first used."""
    if name in _LAZY:
        return getattr(import_module(f"ecgflow.models.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'ecgflow.models' has no attribute {name!r}")
