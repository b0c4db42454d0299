"""Every pipeline ecgflow compiles and submits, by name.

``ecgflow compile`` writes each of them; ``ecgflow submit --pipeline NAME`` sends one.
"""

from collections.abc import Callable
from typing import Any

from ecgflow.config import PipelineConfig
from ecgflow.errors import EcgflowError
from ecgflow.pipelines.training import build_training_pipeline


def _training_with_gem(config: PipelineConfig) -> Any:
    return build_training_pipeline(
        config.model_copy(update={"with_gem": True, "name": f"{config.name}-gem"})
    )


#: pipeline name → builder taking the config whose values become the parameters' defaults
PIPELINES: dict[str, Callable[[PipelineConfig], Any]] = {
    "training": build_training_pipeline,
    "training-gem": _training_with_gem,
}


def build_pipeline(name: str, config: PipelineConfig | None = None) -> Any:
    """The pipeline called ``name`` with ``config``'s values (embedded defaults without one)."""
    if name not in PIPELINES:
        raise EcgflowError(f"unknown pipeline {name!r}; known: {', '.join(PIPELINES)}")
    return PIPELINES[name](config or PipelineConfig())
