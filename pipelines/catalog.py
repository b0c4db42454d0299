"""Every pipeline ecgflow compiles and submits, by name, on the project's registry pattern.

``ecgflow compile`` writes each of them; ``ecgflow submit --pipeline NAME`` sends one. A builder
takes the config whose values become the pipeline parameters' defaults; entries are lazy, so
listing the names imports neither kfp nor the components.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ecgflow.config import PipelineConfig
from ecgflow.plugins import Registry

#: pipeline name → builder taking the config whose values become the parameters' defaults
PIPELINES: Registry[Callable[[PipelineConfig], Any]] = Registry("pipeline")
PIPELINES.register_lazy("training", "ecgflow.pipelines.training:build_training_pipeline")
PIPELINES.register_lazy("training-gem", "ecgflow.pipelines.training:build_training_gem_pipeline")


def build_pipeline(name: str, config: PipelineConfig | None = None) -> Any:
    """The pipeline called ``name`` with ``config``'s values (embedded defaults without one)."""
    return PIPELINES.get(name)(config or PipelineConfig())
