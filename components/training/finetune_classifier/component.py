"""KFP component: the finetune-classifier stage (``ecgflow.stages.finetune_classifier``)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from ecgflow.components.training.shared.passthroughs import TRAINING_PASSTHROUGHS
from ecgflow.images import BASE_IMAGE
from ecgflow.params import FinetuneParams

#: the model the ``params`` input is validated against (the README's parameter table)
PARAMS = FinetuneParams


@dsl.component(
    base_image=BASE_IMAGE, install_kfp_package=False, task_config_passthroughs=TRAINING_PASSTHROUGHS
)
def finetune_classifier(
    clip: Input[Model],
    data: Input[Dataset],
    labels: Input[Dataset],
    params: str,
    nproc: int,
    trainjob: str,
    workspace: str,
    task_config: dsl.TaskConfig,
    classifier: Output[Model],
    metrics: Output[Metrics],
) -> None:
    """Multi-label classifier from the CLIP ECG encoder (or from scratch, per ``params``)."""
    from ecgflow.step_timing import StepClock

    clock = StepClock()  # first: the imports below count as start-up

    from ecgflow.k8s.training_step import TrainingStep
    from ecgflow.params import FinetuneParams, TrainJobParams
    from ecgflow.stages.finetune_classifier import finetune_classifier as run_finetune

    settings = FinetuneParams.model_validate_json(params).model_copy(update={"nproc": nproc})
    step = TrainingStep(
        "finetune-classifier", TrainJobParams.model_validate_json(trainjob), workspace, task_config
    )
    with clock.stage():
        result = run_finetune(
            settings,
            step.stage_in("clip", clip.path) if settings.pretrained else None,
            step.stage_in("data", data.path),
            step.stage_in("labels", labels.path),
            step.out_dir(classifier.path),
            launch=step.launch,
        )
    step.publish(result, classifier, metrics)
    clock.record(classifier)
