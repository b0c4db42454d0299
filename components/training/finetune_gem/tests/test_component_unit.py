"""The finetune-gem component through ``.python_func`` with a stand-in stage.

A real GEM run needs the language model and minutes (tests/test_finetune_gem.py); this test
sees the stage's parameters and the folders the component gives it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kfp import dsl
from kfp.dsl import Dataset, Metrics, Model

import ecgflow.stages.finetune_gem
from ecgflow.components.tests.artifacts import TRAINED, StageCall, artifact
from ecgflow.components.training.finetune_gem.component import finetune_gem
from ecgflow.params import FinetuneGemParams, TrainJobParams
from ecgflow.stages.finetune_gem import GemPaths


def test_the_params_json_and_folders_reach_the_stage(tmp_path: Path) -> None:
    params = FinetuneGemParams.model_validate({"train": {"epochs": 1}, "eval_questions": 8})
    gem, metrics = artifact(Model, tmp_path / "gem"), artifact(Metrics, tmp_path / "m")
    call = StageCall(TRAINED)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ecgflow.stages.finetune_gem, "finetune_gem", call)
        finetune_gem.python_func(
            clip=artifact(Model, tmp_path / "clip"),
            data=artifact(Dataset, tmp_path / "data"),
            instructions=artifact(Dataset, tmp_path / "instructions"),
            params=params.model_dump_json(),
            nproc=1,
            trainjob=TrainJobParams(launcher="local").model_dump_json(),
            workspace="",
            task_config=dsl.TaskConfig(),
            gem=gem,
            metrics=metrics,
        )
    settings, paths = call.args
    assert settings == params and settings.eval_questions == 8
    assert paths == GemPaths(
        tmp_path / "clip", tmp_path / "data", tmp_path / "instructions", None, tmp_path / "gem"
    )
    assert call.kwargs == {"launch": None}
    assert gem.metadata["mlflow_run_id"] == "run-1" and metrics.metadata == {"val_loss": 0.25}
