"""KFP component: the preprocess stage (see ``ecgflow.stages.preprocess``)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from ecgflow.images import BASE_IMAGE
from ecgflow.params import PreprocessParams

#: the model the ``params`` input is validated against (the README's parameter table)
PARAMS = PreprocessParams


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def preprocess(
    records: Input[Dataset],
    splits: Input[Dataset],
    params: str,
    data: Output[Dataset],
    metrics: Output[Metrics],
) -> None:
    """Write per-split ``[N, C, T]`` shards + index; ``params``: PreprocessParams as JSON."""
    from ecgflow.step_timing import StepClock

    clock = StepClock()  # first: the imports below count as start-up

    from pathlib import Path

    from ecgflow.params import PreprocessParams
    from ecgflow.stages.preprocess import preprocess as run_preprocess

    with clock.stage():
        result = run_preprocess(
            PreprocessParams.model_validate_json(params),
            Path(records.path),
            Path(splits.path),
            Path(data.path),
        )
    data.metadata.update(result.metrics)
    for name, value in result.metrics.items():
        metrics.log_metric(name, value)
    clock.record(data)
