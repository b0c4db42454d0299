"""KFP component: the train-clip stage (see ``ecgflow.stages.train_clip``)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from ecgflow.components.training.shared.passthroughs import TRAINING_PASSTHROUGHS
from ecgflow.images import BASE_IMAGE
from ecgflow.params import TrainClipParams

#: the model the ``params`` input is validated against (the README's parameter table)
PARAMS = TrainClipParams


@dsl.component(
    base_image=BASE_IMAGE, install_kfp_package=False, task_config_passthroughs=TRAINING_PASSTHROUGHS
)
def train_clip(
    data: Input[Dataset],
    records: Input[Dataset],
    params: str,
    nproc: int,
    trainjob: str,
    workspace: str,
    task_config: dsl.TaskConfig,
    clip: Output[Model],
    metrics: Output[Metrics],
) -> None:
    """Contrastive ECG–report training: torchrun DDP in the pod, or a TrainJob on a cluster."""
    from ecgflow.step_timing import StepClock

    clock = StepClock()  # first: the imports below count as start-up

    from ecgflow.k8s.training_step import TrainingStep
    from ecgflow.params import TrainClipParams, TrainJobParams
    from ecgflow.stages.train_clip import train_clip as run_train_clip

    settings = TrainClipParams.model_validate_json(params).model_copy(update={"nproc": nproc})
    step = TrainingStep(
        "train-clip", TrainJobParams.model_validate_json(trainjob), workspace, task_config
    )
    with clock.stage():
        result = run_train_clip(
            settings,
            step.stage_in("data", data.path),
            step.stage_in("records", records.path),
            step.out_dir(clip.path),
            launch=step.launch,
        )
    step.publish(result, clip, metrics)
    clock.record(clip)
