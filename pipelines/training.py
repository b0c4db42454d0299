"""The training pipeline: ingest → label → split → preprocess → render-images (switchable)."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset

from components.ingest import ingest
from components.label import label
from components.preprocess import preprocess
from components.render_images import render_images as render_images_op
from components.split import split
from ecgflow.config import PipelineConfig

DEFAULTS = PipelineConfig()
DEFAULT_RATIOS = ",".join(f"{r:g}" for r in DEFAULTS.split.ratios)
# As JSON text: KFP struct parameters cannot hold null, and null is meaningful here.
DEFAULT_PREPROCESS = DEFAULTS.preprocess.model_dump_json()
DEFAULT_RENDER = DEFAULTS.render.model_dump_json()


class TrainingOutputs(NamedTuple):
    """Artifacts the pipeline hands back (shown by ``ecgflow run``)."""

    records: Dataset
    labels: Dataset
    splits: Dataset
    data: Dataset


@dsl.pipeline(
    name="ecgflow-training",
    description="ECG training workflow: ingest → label → split → preprocess → train → export.",
)
def training_pipeline(
    source: str = DEFAULTS.ingest.source,
    limit: int = 0,
    strict: bool = False,
    workers: int = 0,
    label_set: str = DEFAULTS.label.label_set,
    drop_empty: bool = DEFAULTS.label.drop_empty,
    ratios: str = DEFAULT_RATIOS,
    folds: int = 0,
    seed: int = DEFAULTS.split.seed,
    use_strat_fold: bool = DEFAULTS.split.use_strat_fold,
    preprocess_params: str = DEFAULT_PREPROCESS,
    render_images: bool = DEFAULTS.render_images,
    render_params: str = DEFAULT_RENDER,
) -> TrainingOutputs:
    """Ingest ``source`` (``limit`` 0: all), label, split patient-disjointly, preprocess, render.

    ``render_images`` switches the paper/signal image step on or off; its images are an
    output of that step (a conditional step's artifacts cannot be pipeline outputs in KFP).
    """
    ingested = ingest(source=source, limit=limit, strict=strict, workers=workers)
    # The source's contents can change behind an unchanged URI: never reuse a cached ingest.
    ingested.set_display_name("ingest").set_caching_options(False)
    labelled = label(
        records=ingested.outputs["records"], label_set=label_set, drop_empty=drop_empty
    ).set_display_name("label")
    splitted = split(
        records=ingested.outputs["records"],
        labels=labelled.outputs["labels"],
        ratios=ratios,
        folds=folds,
        seed=seed,
        use_strat_fold=use_strat_fold,
    ).set_display_name("split")
    prepared = preprocess(
        records=ingested.outputs["records"],
        splits=splitted.outputs["splits"],
        params=preprocess_params,
    ).set_display_name("preprocess")
    with dsl.If(render_images == True, name="render-images-enabled"):  # noqa: E712 - KFP condition
        render_images_op(
            data=prepared.outputs["data"],
            records=ingested.outputs["records"],
            params=render_params,
        ).set_display_name("render-images")
    return TrainingOutputs(
        records=ingested.outputs["records"],
        labels=labelled.outputs["labels"],
        splits=splitted.outputs["splits"],
        data=prepared.outputs["data"],
    )
