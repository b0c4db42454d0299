"""KFP component: the train-clip stage (see ``ecgflow.stages.train_clip``)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from ecgflow.config import load_config

IMAGE = load_config().image


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train_clip(
    data: Input[Dataset],
    records: Input[Dataset],
    params: str,
    nproc: int,
    clip: Output[Model],
    metrics: Output[Metrics],
) -> None:
    """Contrastive ECG–report training; ``nproc`` > 1 runs torchrun DDP inside the pod."""
    from pathlib import Path

    from ecgflow.stages.train_clip import TrainClipParams
    from ecgflow.stages.train_clip import train_clip as run_train_clip

    settings = TrainClipParams.model_validate_json(params).model_copy(update={"nproc": nproc})
    result = run_train_clip(settings, Path(data.path), Path(records.path), Path(clip.path))
    best = {k: v for k, v in result["best"].items() if isinstance(v, int | float)}
    clip.metadata.update(best | {"best_epoch": result["best_epoch"]})
    clip.metadata["mlflow_run_id"] = result["mlflow_run_id"]
    for name, value in best.items():
        metrics.log_metric(name, value)
