"""KFP component: gate a registered version's promotion to champion (``ecgflow.registry``)."""

from kfp import dsl
from kfp.dsl import Artifact, Output

from ecgflow.images import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def promote(
    name: str,
    version: str,
    metric: str,
    min_delta: float,
    promotion: Output[Artifact],
    allow_equal: bool = False,
) -> None:
    """Alias ``version`` challenger; move champion to it only if it passes the gate."""
    from ecgflow.step_timing import StepClock

    clock = StepClock()  # first: the imports below count as start-up

    from ecgflow.registry import describe
    from ecgflow.registry import promote as run_promote

    with clock.stage():
        decision = run_promote(
            name, metric=metric, min_delta=min_delta, version=version, allow_equal=allow_equal
        )
    promotion.metadata.update(
        {
            "uri": f"models:/{decision.name}/{decision.version}",
            "alias": "champion" if decision.promoted else "challenger",
            "promoted": decision.promoted,
            metric: decision.value,
            "reason": decision.reason,
            "summary": describe(decision),
        }
    )
    clock.record(promotion)
