"""The training pipeline.

ingest → label → split → preprocess → render-images (switchable) → train-clip →
finetune-classifier → eval → export → register → promote.

:func:`build_training_pipeline` bakes a config's values in as the parameters' defaults
(``ecgflow compile --config``); ``training_pipeline`` has the embedded defaults.
"""

from typing import Any, NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Model

from components.evaluate import evaluate
from components.export import export
from components.finetune_classifier import finetune_classifier
from components.ingest import ingest
from components.label import label
from components.preprocess import preprocess
from components.registry import promote, register
from components.render_images import render_images as render_images_op
from components.split import split
from components.train_clip import train_clip
from ecgflow.config import PipelineConfig


class TrainingOutputs(NamedTuple):
    """Artifacts the pipeline hands back (shown by ``ecgflow run``)."""

    records: Dataset
    labels: Dataset
    splits: Dataset
    data: Dataset
    clip: Model
    classifier: Model
    evaluation: Dataset
    exported: Model
    promotion: Artifact


def build_training_pipeline(config: PipelineConfig) -> Any:
    """The training pipeline with ``config``'s values as parameter defaults.

    Stage parameters that are whole models (preprocess, render, training) travel as JSON text:
    KFP struct parameters cannot hold null, and null is meaningful here. The training steps
    request ``train_nproc`` / ``finetune_nproc`` accelerators of ``config.accelerator_type``
    and run that many torchrun processes in their pod; locally they run on the CPU.
    """
    ratios_default = ",".join(f"{r:g}" for r in config.split.ratios)

    @dsl.pipeline(
        name=config.name,
        description="ECG workflow: ingest → label → split → preprocess → render-images → "
        "train-clip (DDP) → finetune-classifier → eval → export → register → promote.",
    )
    def training_pipeline(
        source: str = config.ingest.source,
        limit: int = config.ingest.limit or 0,
        strict: bool = config.ingest.strict,
        workers: int = config.ingest.workers,
        label_set: str = config.label.label_set,
        drop_empty: bool = config.label.drop_empty,
        ratios: str = ratios_default,
        folds: int = config.split.folds or 0,
        seed: int = config.split.seed,
        use_strat_fold: bool = config.split.use_strat_fold,
        preprocess_params: str = config.preprocess.model_dump_json(),
        render_images: bool = config.render_images,
        render_params: str = config.render.model_dump_json(),
        train_clip_params: str = config.train_clip.model_dump_json(),
        train_nproc: int = config.train_clip.nproc,
        finetune_params: str = config.finetune.model_dump_json(),
        finetune_nproc: int = config.finetune.nproc,
        eval_params: str = config.eval.model_dump_json(),
        export_params: str = config.export.model_dump_json(),
        model_name: str = config.promote.name,
        promote_metric: str = config.promote.metric,
        min_delta: float = config.promote.min_delta,
    ) -> TrainingOutputs:
        """Ingest ``source`` (``limit`` 0: all) and take it through every stage.

        ``render_images`` switches the image step on or off; its images are that step's
        output (a conditional step's artifacts cannot be pipeline outputs in KFP).
        """
        ingested = ingest(source=source, limit=limit, strict=strict, workers=workers)
        # The source's contents can change behind an unchanged URI: never reuse a cached ingest.
        ingested.set_display_name("ingest").set_caching_options(False)
        records = ingested.outputs["records"]
        labelled = label(
            records=records, label_set=label_set, drop_empty=drop_empty
        ).set_display_name("label")
        splitted = split(
            records=records,
            labels=labelled.outputs["labels"],
            ratios=ratios,
            folds=folds,
            seed=seed,
            use_strat_fold=use_strat_fold,
        ).set_display_name("split")
        prepared = preprocess(
            records=records, splits=splitted.outputs["splits"], params=preprocess_params
        ).set_display_name("preprocess")
        with dsl.If(render_images == True, name="render-images-enabled"):  # noqa: E712
            render_images_op(
                data=prepared.outputs["data"], records=records, params=render_params
            ).set_display_name("render-images")
        clip = train_clip(
            data=prepared.outputs["data"],
            records=records,
            params=train_clip_params,
            nproc=train_nproc,
        ).set_display_name("train-clip")
        _on_accelerators(clip, config.accelerator_type, train_nproc)
        classifier = finetune_classifier(
            clip=clip.outputs["clip"],
            data=prepared.outputs["data"],
            labels=labelled.outputs["labels"],
            params=finetune_params,
            nproc=finetune_nproc,
        ).set_display_name("finetune-classifier")
        _on_accelerators(classifier, config.accelerator_type, finetune_nproc)
        evaluated = evaluate(
            classifier=classifier.outputs["classifier"],
            data=prepared.outputs["data"],
            labels=labelled.outputs["labels"],
            records=records,
            params=eval_params,
        ).set_display_name("eval")
        exported = export(
            classifier=classifier.outputs["classifier"],
            data=prepared.outputs["data"],
            params=export_params,
        ).set_display_name("export")
        registered = register(
            exported=exported.outputs["exported"],
            evaluation=evaluated.outputs["evaluation"],
            name=model_name,
            pipeline_run=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
        ).set_display_name("register")
        # the registry lives outside the pipeline: always talk to it, never reuse a cached step
        registered.set_caching_options(False)
        promoted = (
            promote(
                name=model_name,
                version=registered.outputs["Output"],
                metric=promote_metric,
                min_delta=min_delta,
            )
            .set_display_name("promote")
            .set_caching_options(False)
        )
        return TrainingOutputs(
            records=records,
            labels=labelled.outputs["labels"],
            splits=splitted.outputs["splits"],
            data=prepared.outputs["data"],
            clip=clip.outputs["clip"],
            classifier=classifier.outputs["classifier"],
            evaluation=evaluated.outputs["evaluation"],
            exported=exported.outputs["exported"],
            promotion=promoted.outputs["promotion"],
        )

    return training_pipeline


def _on_accelerators(task: dsl.PipelineTask, kind: str, count: Any) -> None:
    """Request ``count`` accelerators of ``kind`` (one per torchrun process) on a cluster."""
    task.set_accelerator_type(kind).set_accelerator_limit(count)


training_pipeline = build_training_pipeline(PipelineConfig())
