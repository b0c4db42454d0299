"""The training pipeline: ingest (later stages append themselves here)."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset

from components.ingest import ingest
from ecgflow.config import PipelineConfig

DEFAULTS = PipelineConfig()


class TrainingOutputs(NamedTuple):
    """Artifacts the pipeline hands back (shown by ``ecgflow run``)."""

    records: Dataset


@dsl.pipeline(
    name="ecgflow-training",
    description="ECG training workflow: ingest → label → split → preprocess → train → export.",
)
def training_pipeline(
    source: str = DEFAULTS.ingest.source,
    limit: int = 0,
    strict: bool = False,
    workers: int = 0,
) -> TrainingOutputs:
    """Ingest ``source`` (``limit`` 0: every record)."""
    ingested = ingest(source=source, limit=limit, strict=strict, workers=workers)
    # The source's contents can change behind an unchanged URI: never reuse a cached ingest.
    ingested.set_display_name("ingest").set_caching_options(False)
    return TrainingOutputs(records=ingested.outputs["records"])
