"""KFP component: the build-instructions stage (see ``ecgflow.stages.build_instructions``)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from ecgflow.images import BASE_IMAGE
from ecgflow.params import BuildInstructionsParams

#: the model the ``params`` input is validated against (the README's parameter table)
PARAMS = BuildInstructionsParams


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def build_instructions(
    records: Input[Dataset],
    labels: Input[Dataset],
    splits: Input[Dataset],
    qa: str,
    params: str,
    instructions: Output[Dataset],
    metrics: Output[Metrics],
    classifier: Input[Model] = None,
) -> None:
    """LLaVA-style train/val instructions; ``qa``: comma-separated ECG-QA JSON paths (or "").

    ``classifier``: an export output whose per-label probabilities join each record's evidence.
    """
    from ecgflow.step_timing import StepClock

    clock = StepClock()  # first: the imports below count as start-up

    from pathlib import Path

    from ecgflow.params import BuildInstructionsParams
    from ecgflow.stages.build_instructions import build_instructions as run_build

    qa_files = [Path(p.strip()) for p in qa.split(",") if p.strip()]
    with clock.stage():
        counts = run_build(
            BuildInstructionsParams.model_validate_json(params),
            Path(records.path),
            Path(labels.path),
            Path(splits.path),
            Path(instructions.path),
            qa_files,
            None if classifier is None else Path(classifier.path),
        )
    instructions.metadata.update(counts)
    for name, value in counts.items():
        metrics.log_metric(name, value)
    clock.record(instructions)
