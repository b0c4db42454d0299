"""The register component through ``.python_func``: the model name comes from its params.

The MLflow registration itself is tested in tests/test_registry.py; a stand-in takes its place.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kfp.dsl import Artifact, Dataset, Model

import ecgflow.registry
from ecgflow.components.deployment.register.component import register
from ecgflow.components.tests.artifacts import StageCall, artifact
from ecgflow.params import PromoteParams
from ecgflow.registry import RegisteredVersion


def test_register_names_the_version_after_the_params(tmp_path: Path) -> None:
    registered = artifact(Artifact, tmp_path / "registered")
    call = StageCall(RegisteredVersion("ecg-tiny", "4", "models:/ecg-tiny/4", "run-9"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ecgflow.registry, "register", call)
        version = register.python_func(
            exported=artifact(Model, tmp_path / "exported"),
            evaluation=artifact(Dataset, tmp_path / "eval"),
            params=PromoteParams(name="ecg-tiny", min_delta=0.1).model_dump_json(),
            pipeline_run="run-a",
            registered=registered,
        )
    assert version == "4"
    assert call.args == (tmp_path / "exported", tmp_path / "eval")
    assert call.kwargs == {"name": "ecg-tiny", "pipeline_run": "run-a"}
    assert registered.metadata["uri"] == "models:/ecg-tiny/4"
