"""Serving: the exported classifier as a KServe model (``ecgflow serve``).

:mod:`~ecgflow.serving.bundle` opens an export folder or a registered version,
:mod:`~ecgflow.serving.requests` turns request instances into model rows with the preprocess
stage's transform, :mod:`~ecgflow.serving.batching` runs concurrent requests together,
:mod:`~ecgflow.serving.classifier` is the ``kserve.Model`` and :mod:`~ecgflow.serving.server`
starts KServe's server with :mod:`~ecgflow.serving.guard` (timeouts, admission) and
:mod:`~ecgflow.serving.routes` (parsing off the event loop, metadata);
:mod:`~ecgflow.serving.limits` holds every limit. A GEM folder is served by
:mod:`~ecgflow.serving.gem` (V1 predict) and :mod:`~ecgflow.serving.chat` (OpenAI-style chat
completions).
"""

from ecgflow.serving.bundle import model_kind
from ecgflow.serving.classifier import ECGClassifier
from ecgflow.serving.limits import GemLimits, ServingLimits, limits_from_options
from ecgflow.serving.requests import RequestError
from ecgflow.serving.server import serve as serve_model

__all__ = [
    "ECGClassifier",
    "GemLimits",
    "RequestError",
    "ServingLimits",
    "limits_from_options",
    "model_kind",
    "serve_model",
]
