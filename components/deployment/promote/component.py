"""KFP component: gate a registered version's promotion to champion (``ecgflow.registry``)."""

from kfp import dsl
from kfp.dsl import Artifact, Output

from ecgflow.images import BASE_IMAGE
from ecgflow.params import PromoteParams

#: the model the ``params`` input is validated against (the README's parameter table)
PARAMS = PromoteParams


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def promote(
    params: str,
    version: str,
    promotion: Output[Artifact],
    allow_equal: bool = False,
) -> None:
    """Alias ``version`` challenger; move champion to it only if it passes ``params``' gate.

    ``params``: PromoteParams as JSON (model name, metric, min_delta); ``allow_equal``: a tie
    passes too.
    """
    from ecgflow.step_timing import StepClock

    clock = StepClock()  # first: the imports below count as start-up

    from ecgflow.params import PromoteParams
    from ecgflow.registry import describe
    from ecgflow.registry import promote as run_promote

    gate = PromoteParams.model_validate_json(params)
    with clock.stage():
        decision = run_promote(
            gate.name,
            metric=gate.metric,
            min_delta=gate.min_delta,
            version=version,
            allow_equal=allow_equal,
        )
    promotion.metadata.update(
        {
            "uri": f"models:/{decision.name}/{decision.version}",
            "alias": "champion" if decision.promoted else "challenger",
            "promoted": decision.promoted,
            gate.metric: decision.value,
            "reason": decision.reason,
            "summary": describe(decision),
        }
    )
    clock.record(promotion)
