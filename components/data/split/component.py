"""KFP component: the split stage (see ``ecgflow.stages.split``)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from ecgflow.images import BASE_IMAGE
from ecgflow.params import SplitParams

#: the model the ``params`` input is validated against (the README's parameter table)
PARAMS = SplitParams


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def split(
    records: Input[Dataset],
    labels: Input[Dataset],
    params: str,
    splits: Output[Dataset],
    metrics: Output[Metrics],
) -> None:
    """Write a patient-disjoint ``split.parquet``; ``params``: SplitParams as JSON."""
    from ecgflow.step_timing import StepClock

    clock = StepClock()  # first: the imports below count as start-up

    from pathlib import Path

    from ecgflow.params import SplitParams
    from ecgflow.stages.split import split as run_split

    settings = SplitParams.model_validate_json(params)
    with clock.stage():
        result = run_split(settings, Path(records.path), Path(labels.path), Path(splits.path))
    splits.metadata.update({"method": result.method, **result.metrics})
    for name, value in result.metrics.items():
        metrics.log_metric(name, value)
    clock.record(splits)
