"""KFP component: the export stage (see ``ecgflow.stages.export``)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from ecgflow.images import BASE_IMAGE
from ecgflow.params import ExportParams

#: the model the ``params`` input is validated against (the README's parameter table)
PARAMS = ExportParams


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def export(
    classifier: Input[Model],
    data: Input[Dataset],
    params: str,
    exported: Output[Model],
) -> None:
    """ONNX + Triton layout with a parity check on the data's records; ``params``: ExportParams."""
    from ecgflow.step_timing import StepClock

    clock = StepClock()  # first: the imports below count as start-up

    from pathlib import Path

    from ecgflow.params import ExportParams
    from ecgflow.stages.export import export as run_export

    with clock.stage():
        result = run_export(
            ExportParams.model_validate_json(params),
            Path(classifier.path),
            Path(exported.path),
            data_dir=Path(data.path),
        )
    exported.metadata.update(
        {"parity_max_abs_diff": result.max_abs_diff, "labels": ",".join(result.labels)}
    )
    clock.record(exported)
