"""KFP component: the finetune-gem stage (see ``ecgflow.stages.finetune_gem``)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from ecgflow.components.training.shared.passthroughs import TRAINING_PASSTHROUGHS
from ecgflow.images import BASE_IMAGE
from ecgflow.params import FinetuneGemParams

#: the model the ``params`` input is validated against (the README's parameter table)
PARAMS = FinetuneGemParams


@dsl.component(
    base_image=BASE_IMAGE, install_kfp_package=False, task_config_passthroughs=TRAINING_PASSTHROUGHS
)
def finetune_gem(
    clip: Input[Model],
    data: Input[Dataset],
    instructions: Input[Dataset],
    params: str,
    nproc: int,
    trainjob: str,
    workspace: str,
    task_config: dsl.TaskConfig,
    gem: Output[Model],
    metrics: Output[Metrics],
) -> None:
    """GEM (signal and lead towers → LoRA LM): torchrun in the pod, or a TrainJob."""
    from ecgflow.step_timing import StepClock

    clock = StepClock()  # first: the imports below count as start-up

    from ecgflow.k8s.training_step import TrainingStep
    from ecgflow.params import FinetuneGemParams, TrainJobParams
    from ecgflow.stages.finetune_gem import GemPaths
    from ecgflow.stages.finetune_gem import finetune_gem as run_finetune_gem

    settings = FinetuneGemParams.model_validate_json(params).model_copy(update={"nproc": nproc})
    step = TrainingStep(
        "finetune-gem", TrainJobParams.model_validate_json(trainjob), workspace, task_config
    )
    with clock.stage():
        paths = GemPaths(
            step.stage_in("clip", clip.path),
            step.stage_in("data", data.path),
            step.stage_in("instructions", instructions.path),
            None,
            step.out_dir(gem.path),
        )
        result = run_finetune_gem(settings, paths, launch=step.launch)
    step.publish(result, gem, metrics)
    clock.record(gem)
