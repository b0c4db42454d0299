"""The train-clip component through ``.python_func``: what it hands the stage and publishes.

Training itself is covered by tests/test_train_clip.py; here the stage function is a stand-in,
so the test sees how the component builds the stage's parameters and paths from its inputs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kfp import dsl
from kfp.dsl import Dataset, Metrics, Model

import ecgflow.stages.train_clip
from ecgflow.components.tests.artifacts import TRAINED, StageCall, artifact
from ecgflow.components.training.train_clip.component import train_clip
from ecgflow.errors import EcgflowError
from ecgflow.params import TrainClipParams, TrainJobParams


def _run(tmp_path: Path, trainjob: TrainJobParams) -> tuple[StageCall, Model, Metrics]:
    params = TrainClipParams.model_validate({"train": {"epochs": 2}, "nproc": 1})
    clip, metrics = artifact(Model, tmp_path / "clip"), artifact(Metrics, tmp_path / "m")
    call = StageCall(TRAINED)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ecgflow.stages.train_clip, "train_clip", call)
        train_clip.python_func(
            data=artifact(Dataset, tmp_path / "data"),
            records=artifact(Dataset, tmp_path / "records"),
            params=params.model_dump_json(),
            nproc=3,
            trainjob=trainjob.model_dump_json(),
            workspace="",
            task_config=dsl.TaskConfig(),
            clip=clip,
            metrics=metrics,
        )
    return call, clip, metrics


def test_the_params_json_and_nproc_reach_the_stage(tmp_path: Path) -> None:
    call, clip, metrics = _run(tmp_path, TrainJobParams(launcher="local"))
    settings, data_dir, records_dir, out_dir = call.args
    assert isinstance(settings, TrainClipParams)
    assert settings.train.epochs == 2 and settings.nproc == 3  # nproc: the step's input
    assert settings.model == TrainClipParams().model  # the rest: the model's defaults
    assert (data_dir, records_dir, out_dir) == (
        tmp_path / "data",
        tmp_path / "records",
        tmp_path / "clip",
    )
    assert call.kwargs == {"launch": None}  # locally: the stage's own torchrun
    assert clip.metadata["best_epoch"] == 2 and clip.metadata["mlflow_run_id"] == "run-1"
    assert metrics.metadata == {"val_loss": 0.25}  # numbers only


def test_a_trainjob_without_a_workspace_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EcgflowError, match="workspace"):
        _run(tmp_path, TrainJobParams(launcher="trainjob"))
