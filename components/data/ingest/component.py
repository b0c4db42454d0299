"""KFP component: the ingest stage (see ``ecgflow.stages.ingest``)."""

from kfp import dsl
from kfp.dsl import Dataset, Metrics, Output

from ecgflow.images import BASE_IMAGE
from ecgflow.params import IngestParams

#: the model the ``params`` input is validated against (the README's parameter table)
PARAMS = IngestParams


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def ingest(
    params: str,
    records: Output[Dataset],
    metrics: Output[Metrics],
) -> None:
    """Copy a dataset's records into the ``records`` artifact; ``params``: IngestParams JSON."""
    from ecgflow.step_timing import StepClock

    clock = StepClock()  # first: the imports below count as start-up

    from pathlib import Path

    from ecgflow.params import IngestParams
    from ecgflow.stages.ingest import ingest as run_ingest

    with clock.stage():
        result = run_ingest(IngestParams.model_validate_json(params), Path(records.path))
    records.metadata.update({"dataset": result.dataset, **result.metrics})
    for name, value in result.metrics.items():
        metrics.log_metric(name, value)
    clock.record(records)
