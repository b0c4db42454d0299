"""KFP component: the render-images stage (see ``ecgflow.stages.render_images``)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from ecgflow.images import BASE_IMAGE
from ecgflow.params import RenderParams

#: the model the ``params`` input is validated against (the README's parameter table)
PARAMS = RenderParams


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def render_images(
    data: Input[Dataset],
    records: Input[Dataset],
    params: str,
    images: Output[Dataset],
    metrics: Output[Metrics],
) -> None:
    """Write paper and GAF/RP/MTF PNGs, images.parquet, llava.json; params: RenderParams JSON."""
    from ecgflow.step_timing import StepClock

    clock = StepClock()  # first: the imports below count as start-up

    from pathlib import Path

    from ecgflow.params import RenderParams
    from ecgflow.stages.render_images import render_images as run_render

    with clock.stage():
        result = run_render(
            RenderParams.model_validate_json(params),
            Path(data.path),
            Path(images.path),
            records_dir=Path(records.path),
        )
    images.metadata.update(result.metrics)
    for name, value in result.metrics.items():
        metrics.log_metric(name, value)
    clock.record(images)
