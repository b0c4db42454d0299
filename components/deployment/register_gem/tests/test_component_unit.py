"""The register-gem component through ``.python_func``: GEM's model folder, the params' name."""

from __future__ import annotations

from pathlib import Path

import pytest
from kfp.dsl import Artifact, Dataset, Model

import ecgflow.registry
from ecgflow.components.deployment.register_gem.component import register_gem
from ecgflow.components.tests.artifacts import StageCall, artifact
from ecgflow.params import gem_promote
from ecgflow.registry import RegisteredVersion


def test_register_gem_registers_the_model_folder_under_the_params_name(tmp_path: Path) -> None:
    registered = artifact(Artifact, tmp_path / "registered")
    call = StageCall(RegisteredVersion("ecg-gem", "2", "models:/ecg-gem/2", "run-3"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ecgflow.registry, "register_gem", call)
        version = register_gem.python_func(
            gem=artifact(Model, tmp_path / "gem"),
            evaluation=artifact(Dataset, tmp_path / "eval"),
            params=gem_promote().model_dump_json(),
            pipeline_run="run-b",
            registered=registered,
        )
    assert version == "2"
    assert call.args == (tmp_path / "gem" / "model", tmp_path / "eval")
    assert call.kwargs == {"name": "ecg-gem", "pipeline_run": "run-b"}
    assert registered.metadata["version"] == "2"
