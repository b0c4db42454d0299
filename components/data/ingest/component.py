"""KFP component: the ingest stage (see ``ecgflow.stages.ingest``)."""

from kfp import dsl
from kfp.dsl import Dataset, Metrics, Output

from ecgflow.images import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def ingest(
    source: str,
    limit: int,
    strict: bool,
    workers: int,
    records: Output[Dataset],
    metrics: Output[Metrics],
) -> None:
    """Copy a dataset's records into the ``records`` artifact; ``limit`` 0 means all."""
    from ecgflow.step_timing import StepClock

    clock = StepClock()  # first: the imports below count as start-up

    from pathlib import Path

    from ecgflow.stages.ingest import IngestParams
    from ecgflow.stages.ingest import ingest as run_ingest

    params = IngestParams(source=source, limit=limit or None, strict=strict, workers=workers)
    with clock.stage():
        result = run_ingest(params, Path(records.path))
    records.metadata.update({"dataset": result.dataset, **result.metrics})
    for name, value in result.metrics.items():
        metrics.log_metric(name, value)
    clock.record(records)
