"""KFP component: register finetune-gem's model folder in MLflow (see ``ecgflow.registry``)."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from ecgflow.images import BASE_IMAGE
from ecgflow.params import PromoteParams

#: the model the ``params`` input is validated against (the README's parameter table)
PARAMS = PromoteParams


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def register_gem(
    gem: Input[Model],
    evaluation: Input[Dataset],
    params: str,
    pipeline_run: str,
    registered: Output[Artifact],
) -> str:
    """Register finetune-gem's model folder as a new version of ``params``' name; the version."""
    from ecgflow.step_timing import StepClock

    clock = StepClock()  # first: the imports below count as start-up

    from pathlib import Path

    from ecgflow.params import PromoteParams
    from ecgflow.registry import register_with_params

    settings = PromoteParams.model_validate_json(params)
    with clock.stage():
        version = register_with_params(
            "gem", Path(gem.path) / "model", Path(evaluation.path), settings, pipeline_run
        )
    registered.metadata.update(version.summary())
    clock.record(registered)
    return version.version
