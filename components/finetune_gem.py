"""KFP component: the finetune-gem stage (see ``ecgflow.stages.finetune_gem``)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from ecgflow.config import load_config

IMAGE = load_config().image


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def finetune_gem(
    clip: Input[Model],
    data: Input[Dataset],
    instructions: Input[Dataset],
    params: str,
    nproc: int,
    gem: Output[Model],
    metrics: Output[Metrics],
) -> None:
    """GEM (signal and lead towers → LoRA LM); ``nproc`` > 1 runs torchrun DDP in the pod."""
    from pathlib import Path

    from ecgflow.stages.finetune_gem import GemPaths
    from ecgflow.stages.finetune_gem import finetune_gem as run_finetune_gem
    from ecgflow.training.params import FinetuneGemParams

    settings = FinetuneGemParams.model_validate_json(params).model_copy(update={"nproc": nproc})
    paths = GemPaths(
        Path(clip.path), Path(data.path), Path(instructions.path), None, Path(gem.path)
    )
    result = run_finetune_gem(settings, paths)
    best = {k: v for k, v in result["best"].items() if isinstance(v, int | float)}
    gem.metadata.update(best | {"best_epoch": result["best_epoch"]})
    gem.metadata["mlflow_run_id"] = result["mlflow_run_id"]
    for name, value in best.items():
        metrics.log_metric(name, value)
