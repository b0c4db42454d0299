"""KFP component: the finetune-classifier stage (``ecgflow.stages.finetune_classifier``)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from ecgflow.config import load_config

IMAGE = load_config().image


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def finetune_classifier(
    clip: Input[Model],
    data: Input[Dataset],
    labels: Input[Dataset],
    params: str,
    nproc: int,
    classifier: Output[Model],
    metrics: Output[Metrics],
) -> None:
    """Multi-label classifier from the CLIP ECG encoder (or from scratch, per ``params``)."""
    from pathlib import Path

    from ecgflow.stages.finetune_classifier import FinetuneParams
    from ecgflow.stages.finetune_classifier import finetune_classifier as run_finetune

    settings = FinetuneParams.model_validate_json(params).model_copy(update={"nproc": nproc})
    encoder = Path(clip.path) if settings.pretrained else None
    result = run_finetune(
        settings, encoder, Path(data.path), Path(labels.path), Path(classifier.path)
    )
    best = {k: v for k, v in result["best"].items() if isinstance(v, int | float)}
    classifier.metadata.update(best | {"best_epoch": result["best_epoch"]})
    classifier.metadata["mlflow_run_id"] = result["mlflow_run_id"]
    for name, value in best.items():
        metrics.log_metric(name, value)
