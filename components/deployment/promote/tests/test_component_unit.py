"""The promote component through ``.python_func``: the gate comes from its params.

The registry's gate itself is tested in tests/test_registry.py; a stand-in decides here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kfp.dsl import Artifact

import ecgflow.registry
from ecgflow.components.deployment.promote.component import promote
from ecgflow.components.tests.artifacts import StageCall, artifact
from ecgflow.params import PromoteParams
from ecgflow.registry import PromotionDecision


@pytest.mark.parametrize("promoted", [True, False])
def test_promote_applies_the_params_gate(tmp_path: Path, promoted: bool) -> None:
    promotion = artifact(Artifact, tmp_path / "promotion")
    decision = PromotionDecision(
        "ecg-tiny", "4", promoted, "reason", "macro_f1", 0.7, "3", 0.6
    )  # fmt: skip
    call = StageCall(decision)
    params = PromoteParams(name="ecg-tiny", metric="macro_f1", min_delta=0.05)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ecgflow.registry, "promote", call)
        promote.python_func(
            params=params.model_dump_json(), version="4", promotion=promotion, allow_equal=True
        )
    assert call.args == ("ecg-tiny",)
    assert call.kwargs == {
        "metric": "macro_f1", "min_delta": 0.05, "version": "4", "allow_equal": True,
    }  # fmt: skip
    assert promotion.metadata["alias"] == ("champion" if promoted else "challenger")
    assert promotion.metadata["macro_f1"] == 0.7 and promotion.metadata["summary"]
