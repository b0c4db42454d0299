"""KFP components: register the exported model (or a GEM folder) in MLflow, then gate promotion."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from ecgflow.images import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def register(
    exported: Input[Model],
    evaluation: Input[Dataset],
    name: str,
    pipeline_run: str,
    registered: Output[Artifact],
) -> str:
    """Register a new version of ``name``; returns its version number."""
    from ecgflow.step_timing import StepClock

    clock = StepClock()  # first: the imports below count as start-up

    from pathlib import Path

    from ecgflow.registry import register as run_register

    with clock.stage():
        version = run_register(
            Path(exported.path), Path(evaluation.path), name=name, pipeline_run=pipeline_run
        )
    registered.metadata.update(
        {"name": version.name, "version": version.version, "uri": version.uri}
    )
    clock.record(registered)
    return version.version


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def register_gem(
    gem: Input[Model],
    evaluation: Input[Dataset],
    name: str,
    pipeline_run: str,
    registered: Output[Artifact],
) -> str:
    """Register finetune-gem's model folder as a new version of ``name``; returns the version."""
    from ecgflow.step_timing import StepClock

    clock = StepClock()  # first: the imports below count as start-up

    from pathlib import Path

    from ecgflow.registry import register_gem as run_register_gem

    with clock.stage():
        version = run_register_gem(
            Path(gem.path) / "model", Path(evaluation.path), name=name, pipeline_run=pipeline_run
        )
    registered.metadata.update(
        {"name": version.name, "version": version.version, "uri": version.uri}
    )
    clock.record(registered)
    return version.version


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def promote(
    name: str,
    version: str,
    metric: str,
    min_delta: float,
    promotion: Output[Artifact],
    allow_equal: bool = False,
) -> None:
    """Alias ``version`` challenger; move champion to it only if it passes the gate."""
    from ecgflow.step_timing import StepClock

    clock = StepClock()  # first: the imports below count as start-up

    from ecgflow.registry import describe
    from ecgflow.registry import promote as run_promote

    with clock.stage():
        decision = run_promote(
            name, metric=metric, min_delta=min_delta, version=version, allow_equal=allow_equal
        )
    promotion.metadata.update(
        {
            "uri": f"models:/{decision.name}/{decision.version}",
            "alias": "champion" if decision.promoted else "challenger",
            "promoted": decision.promoted,
            metric: decision.value,
            "reason": decision.reason,
            "summary": describe(decision),
        }
    )
    clock.record(promotion)
