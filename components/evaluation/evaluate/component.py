"""KFP component: the eval stage (see ``ecgflow.stages.evaluate``)."""

from kfp import dsl
from kfp.dsl import ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from ecgflow.images import BASE_IMAGE
from ecgflow.params import EvalParams

#: the model the ``params`` input is validated against (the README's parameter table)
PARAMS = EvalParams


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def evaluate(
    classifier: Input[Model],
    data: Input[Dataset],
    labels: Input[Dataset],
    records: Input[Dataset],
    params: str,
    evaluation: Output[Dataset],
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
    summary: Output[Markdown],
) -> None:
    """Test-split metrics, CIs and plots of the classifier; ``params``: EvalParams as JSON.

    For the KFP UI: ``classification`` holds the ROC (micro-averaged over labels) and the
    confusion matrix pooled over labels at their thresholds; ``summary`` the headline numbers
    with intervals and the per-label table (the full page is ``report.html`` in evaluation).
    """
    from ecgflow.step_timing import StepClock

    clock = StepClock()  # first: the imports below count as start-up

    from pathlib import Path

    from ecgflow.params import EvalParams
    from ecgflow.stages.evaluate import evaluate as run_evaluate

    with clock.stage():
        result = run_evaluate(
            EvalParams.model_validate_json(params),
            Path(classifier.path),
            Path(data.path),
            Path(labels.path),
            Path(evaluation.path),
            records_dir=Path(records.path),
        )
    flat = {k: v for k, v in result.items() if isinstance(v, int | float)}
    evaluation.metadata.update(flat | {"data_hash": result["data_hash"]})
    for name, value in flat.items():
        metrics.log_metric(name, value)
    roc = result.get("micro_roc")
    if roc:
        classification.log_roc_curve(roc["fpr"], roc["tpr"], roc["thresholds"])
    if result.get("pooled_confusion"):
        classification.log_confusion_matrix(["negative", "positive"], result["pooled_confusion"])
    Path(summary.path).write_text(
        (Path(evaluation.path) / "summary.md").read_text(encoding="utf-8"), encoding="utf-8"
    )
    clock.record(evaluation)
