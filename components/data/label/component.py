"""KFP component: the label stage (see ``ecgflow.stages.label``)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from ecgflow.images import BASE_IMAGE
from ecgflow.params import LabelParams

#: the model the ``params`` input is validated against (the README's parameter table)
PARAMS = LabelParams


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def label(
    records: Input[Dataset],
    params: str,
    labels: Output[Dataset],
    metrics: Output[Metrics],
) -> None:
    """Write ``labels.parquet`` + ``label_def.json`` for ``records``; ``params``: LabelParams."""
    from ecgflow.step_timing import StepClock

    clock = StepClock()  # first: the imports below count as start-up

    from pathlib import Path

    from ecgflow.params import LabelParams
    from ecgflow.stages.label import label as run_label

    settings = LabelParams.model_validate_json(params)
    with clock.stage():
        result = run_label(settings, Path(records.path), Path(labels.path))
    labels.metadata.update({"label_set": result.label_set, **result.metrics})
    for name, value in result.metrics.items():
        metrics.log_metric(name, value)
    clock.record(labels)
