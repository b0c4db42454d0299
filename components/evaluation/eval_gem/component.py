"""KFP component: the eval-gem stage (see ``ecgflow.stages.eval_gem``)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from ecgflow.images import BASE_IMAGE
from ecgflow.params import EvalGemParams

#: the model the ``params`` input is validated against (the README's parameter table)
PARAMS = EvalGemParams


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def eval_gem(
    gem: Input[Model],
    data: Input[Dataset],
    labels: Input[Dataset],
    instructions: Input[Dataset],
    qa: str,
    params: str,
    evaluation: Output[Dataset],
    metrics: Output[Metrics],
) -> None:
    """QA accuracy beside the label-prior baseline on the test records' questions.

    Asked: build-instructions' ``test.json`` and ``qa`` (comma-separated ECG-QA JSON paths, or "").
    """
    from ecgflow.step_timing import StepClock

    clock = StepClock()  # first: the imports below count as start-up

    from pathlib import Path

    from ecgflow.params import EvalGemParams
    from ecgflow.stages.eval_gem import eval_gem as run_eval_gem
    from ecgflow.stages.eval_gem import headline as headline_of

    qa_files = [Path(instructions.path) / "test.json"]
    qa_files += [Path(p.strip()) for p in qa.split(",") if p.strip()]
    with clock.stage():
        result = run_eval_gem(
            EvalGemParams.model_validate_json(params),
            Path(gem.path) / "model",
            Path(data.path),
            qa_files,
            Path(evaluation.path),
            labels_dir=Path(labels.path),
        )
    headline = headline_of(result)
    evaluation.metadata.update(headline)
    for name, value in headline.items():
        metrics.log_metric(name, value)
    clock.record(evaluation)
