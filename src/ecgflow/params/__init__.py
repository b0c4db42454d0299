"""Every stage's parameters: one pydantic model per stage, the only home of every default.

The CLI options, the KFP components' params inputs, the pipeline config's sections (and its
JSON schema) all derive from these models, so ``ecgflow <stage>`` with no options runs what
the pipeline's step runs. A module per stage (its sub-models beside it); shared sub-models in
:mod:`~ecgflow.params.train` (optimisation) and :mod:`~ecgflow.params.networks` (networks).
Importing this package loads pydantic only (no NumPy, pandas, torch or the stages).
"""

from __future__ import annotations

from ecgflow.params.base import Params, deep_merge, json_schema
from ecgflow.params.eval_gem import EvalGemParams
from ecgflow.params.evaluate import EvalParams
from ecgflow.params.export import ExportParams
from ecgflow.params.finetune import FinetuneParams
from ecgflow.params.finetune_gem import FinetuneGemParams
from ecgflow.params.ingest import IngestParams
from ecgflow.params.instructions import BuildInstructionsParams
from ecgflow.params.label import LabelParams
from ecgflow.params.networks import ClipConfig, EncoderConfig, GemConfig, TextEncoderConfig
from ecgflow.params.preprocess import PreprocessParams, gem_preprocess
from ecgflow.params.promote import PromoteParams, gem_promote
from ecgflow.params.render import DistortionParams, RenderParams
from ecgflow.params.split import SplitParams
from ecgflow.params.train import TrainConfig
from ecgflow.params.train_clip import TrainClipParams
from ecgflow.params.trainjob import TrainJobParams

__all__ = [
    "BuildInstructionsParams",
    "ClipConfig",
    "DistortionParams",
    "EncoderConfig",
    "EvalGemParams",
    "EvalParams",
    "ExportParams",
    "FinetuneGemParams",
    "FinetuneParams",
    "GemConfig",
    "IngestParams",
    "LabelParams",
    "Params",
    "PreprocessParams",
    "PromoteParams",
    "RenderParams",
    "SplitParams",
    "TextEncoderConfig",
    "TrainClipParams",
    "TrainConfig",
    "TrainJobParams",
    "deep_merge",
    "gem_preprocess",
    "gem_promote",
    "json_schema",
]
