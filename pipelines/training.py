"""The training pipeline.

ingest → label → split → preprocess → render-images (switchable) → train-clip →
finetune-classifier → eval → export → register → promote; with ``with_gem`` also
preprocess-gem → build-instructions → finetune-gem (after train-clip) → eval-gem →
register and promote ``ecg-gem``.

:func:`build_training_pipeline` bakes a config's values in as the parameters' defaults
(``ecgflow compile --config``); ``training_pipeline`` has the embedded defaults.
"""

from typing import Any, NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Model

from ecgflow.components.data.build_instructions.component import build_instructions
from ecgflow.components.data.ingest.component import ingest
from ecgflow.components.data.label.component import label
from ecgflow.components.data.preprocess.component import preprocess
from ecgflow.components.data.render_images.component import render_images as render_images_op
from ecgflow.components.data.split.component import split
from ecgflow.components.deployment.export.component import export
from ecgflow.components.deployment.promote.component import promote
from ecgflow.components.deployment.register.component import register
from ecgflow.components.deployment.register_gem.component import register_gem
from ecgflow.components.evaluation.eval_gem.component import eval_gem
from ecgflow.components.evaluation.evaluate.component import evaluate
from ecgflow.components.training.finetune_classifier.component import finetune_classifier
from ecgflow.components.training.finetune_gem.component import finetune_gem
from ecgflow.components.training.train_clip.component import train_clip
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

    @dsl.pipeline(
        name=config.name,
        description="ECG workflow: ingest → label → split → preprocess → render-images → "
        "train-clip (DDP) → finetune-classifier → eval → export → register → promote.",
        pipeline_config=_workspace(config),
    )
    def training_pipeline(
        ingest_params: str = config.ingest.model_dump_json(),
        label_params: str = config.label.model_dump_json(),
        split_params: str = config.split.model_dump_json(),
        preprocess_params: str = config.preprocess.model_dump_json(),
        render_images: bool = config.render_images,
        render_params: str = config.render.model_dump_json(),
        train_clip_params: str = config.train_clip.model_dump_json(),
        train_nproc: int = config.train_clip.nproc,
        finetune_params: str = config.finetune.model_dump_json(),
        finetune_nproc: int = config.finetune.nproc,
        trainjob_params: str = config.trainjob.model_dump_json(),
        eval_params: str = config.eval.model_dump_json(),
        export_params: str = config.export.model_dump_json(),
        promote_params: str = config.promote.model_dump_json(),
        with_gem: bool = config.with_gem,
        gem_qa: str = ",".join(config.gem_qa),
        gem_preprocess_params: str = config.gem_preprocess.model_dump_json(),
        instructions_params: str = config.instructions.model_dump_json(),
        finetune_gem_params: str = config.finetune_gem.model_dump_json(),
        gem_nproc: int = config.finetune_gem.nproc,
        eval_gem_params: str = config.eval_gem.model_dump_json(),
        gem_promote_params: str = config.gem_promote.model_dump_json(),
    ) -> TrainingOutputs:
        """Ingest ``ingest_params``' source and take it through every stage.

        ``render_images`` switches the image step on or off; its images are that step's
        output (a conditional step's artifacts cannot be pipeline outputs in KFP).
        """
        ingested = ingest(params=ingest_params)
        # The source's contents can change behind an unchanged URI: never reuse a cached ingest.
        ingested.set_display_name("ingest").set_caching_options(False)
        records = ingested.outputs["records"]
        labelled = label(records=records, params=label_params).set_display_name("label")
        splitted = split(
            records=records, labels=labelled.outputs["labels"], params=split_params
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
            trainjob=trainjob_params,
            workspace=dsl.WORKSPACE_PATH_PLACEHOLDER,
        ).set_display_name("train-clip")
        _on_accelerators(clip, config, train_nproc)
        classifier = finetune_classifier(
            clip=clip.outputs["clip"],
            data=prepared.outputs["data"],
            labels=labelled.outputs["labels"],
            params=finetune_params,
            nproc=finetune_nproc,
            trainjob=trainjob_params,
            workspace=dsl.WORKSPACE_PATH_PLACEHOLDER,
        ).set_display_name("finetune-classifier")
        _on_accelerators(classifier, config, finetune_nproc)
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
            params=promote_params,
            pipeline_run=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
        ).set_display_name("register")
        # the registry lives outside the pipeline: always talk to it, never reuse a cached step
        registered.set_caching_options(False)
        promoted = (
            promote(params=promote_params, version=registered.outputs["Output"])
            .set_display_name("promote")
            .set_caching_options(False)
        )
        with dsl.If(with_gem == True, name="gem-enabled"):  # noqa: E712
            _gem_steps(
                records=records,
                labels=labelled.outputs["labels"],
                splits=splitted.outputs["splits"],
                clip=clip.outputs["clip"],
                exported=exported.outputs["exported"],
                qa=gem_qa,
                preprocess_params=gem_preprocess_params,
                instructions_params=instructions_params,
                finetune_params=finetune_gem_params,
                nproc=gem_nproc,
                trainjob=trainjob_params,
                eval_params=eval_gem_params,
                promote_params=gem_promote_params,
                config=config,
            )
        _every_step(config)
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


def build_training_gem_pipeline(config: PipelineConfig) -> Any:
    """The training pipeline with the GEM steps on by default, named ``<config name>-gem``."""
    return build_training_pipeline(
        config.model_copy(update={"with_gem": True, "name": f"{config.name}-gem"})
    )


def _gem_steps(
    records: Any,
    labels: Any,
    splits: Any,
    clip: Any,
    exported: Any,
    qa: Any,
    preprocess_params: Any,
    instructions_params: Any,
    finetune_params: Any,
    nproc: Any,
    trainjob: Any,
    eval_params: Any,
    promote_params: Any,
    config: PipelineConfig,
) -> None:
    """preprocess-gem → build-instructions → finetune-gem → eval-gem → register → promote."""
    signals = preprocess(records=records, splits=splits, params=preprocess_params)
    signals.set_display_name("preprocess-gem")
    instructions = build_instructions(
        records=records,
        labels=labels,
        splits=splits,
        qa=qa,
        params=instructions_params,
        classifier=exported,
    ).set_display_name("build-instructions")
    gem = finetune_gem(
        clip=clip,
        data=signals.outputs["data"],
        instructions=instructions.outputs["instructions"],
        params=finetune_params,
        nproc=nproc,
        trainjob=trainjob,
        workspace=dsl.WORKSPACE_PATH_PLACEHOLDER,
    ).set_display_name("finetune-gem")
    _on_accelerators(gem, config, nproc)
    evaluated = eval_gem(
        gem=gem.outputs["gem"],
        data=signals.outputs["data"],
        labels=labels,
        instructions=instructions.outputs["instructions"],
        qa=qa,
        params=eval_params,
    ).set_display_name("eval-gem")
    registered = register_gem(
        gem=gem.outputs["gem"],
        evaluation=evaluated.outputs["evaluation"],
        params=promote_params,
        pipeline_run=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
    ).set_display_name("register-gem")
    registered.set_caching_options(False)
    promoted = promote(
        params=promote_params, version=registered.outputs["Output"], allow_equal=True
    )
    promoted.set_display_name("promote-gem").set_caching_options(False)


def _every_step(config: PipelineConfig) -> None:
    """Give every step created so far the config's image, MLflow server and S3 access.

    The components' ``base_image`` is only the project default (``ecgflow.images``): the
    image of the config passed to the builder wins, with no import-time environment.
    """
    from kfp import kubernetes

    keys = {k: k for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    mlflow_keys = {k: k for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    for task in dsl.pipeline_context.Pipeline.get_default_pipeline().tasks.values():
        task.set_container_image(config.image)
        if config.tracking_uri:
            task.set_env_variable("MLFLOW_TRACKING_URI", config.tracking_uri)
        if config.s3_endpoint_url:
            task.set_env_variable("AWS_ENDPOINT_URL", config.s3_endpoint_url)
        if config.s3_secret:
            kubernetes.use_secret_as_env(task, config.s3_secret, keys)
        if config.mlflow_secret:  # the chart's MLflow requires a user: its Secret as env
            kubernetes.use_secret_as_env(task, config.mlflow_secret, mlflow_keys)


def _workspace(config: PipelineConfig) -> dsl.PipelineConfig:
    """The run's workspace PVC: training steps share files with their TrainJobs through it."""
    patch: dict[str, Any] = {"accessModes": ["ReadWriteMany"]}
    if config.workspace_storage_class:
        patch["storageClassName"] = config.workspace_storage_class
    return dsl.PipelineConfig(
        workspace=dsl.WorkspaceConfig(
            size=config.workspace_size,
            kubernetes=dsl.KubernetesWorkspaceConfig(pvcSpecPatch=patch),
        )
    )


def _on_accelerators(task: dsl.PipelineTask, config: PipelineConfig, count: Any) -> None:
    """Request ``count`` accelerators (one per torchrun process), CPU and memory per node.

    On a cluster the component hands these to its TrainJob's nodes (TaskConfig passthrough:
    the launcher pod itself takes none); ``kfp.local`` ignores them.
    """
    task.set_accelerator_type(config.accelerator_type).set_accelerator_limit(count)
    task.set_cpu_request(config.trainjob.cpu)
    task.set_memory_request(config.trainjob.memory).set_memory_limit(config.trainjob.memory)


training_pipeline = build_training_pipeline(PipelineConfig())
