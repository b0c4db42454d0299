"""The finetune-classifier component through ``.python_func`` with a stand-in stage.

A real tiny training run takes ~20 s here (tests/test_finetune*.py and the pipeline tests run
it); this test sees what the component hands the stage: the params JSON, ``nproc`` and the
CLIP encoder only when ``pretrained``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kfp import dsl
from kfp.dsl import Dataset, Metrics, Model

import ecgflow.stages.finetune_classifier
from ecgflow.components.tests.artifacts import TRAINED, StageCall, artifact
from ecgflow.components.training.finetune_classifier.component import finetune_classifier
from ecgflow.params import FinetuneParams, TrainJobParams


@pytest.mark.parametrize("pretrained", [True, False])
def test_the_params_json_reaches_the_stage(tmp_path: Path, pretrained: bool) -> None:
    params = FinetuneParams.model_validate({"pretrained": pretrained, "train": {"lr": 0.01}})
    model, metrics = artifact(Model, tmp_path / "clf"), artifact(Metrics, tmp_path / "m")
    call = StageCall(TRAINED)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ecgflow.stages.finetune_classifier, "finetune_classifier", call)
        finetune_classifier.python_func(
            clip=artifact(Model, tmp_path / "clip"),
            data=artifact(Dataset, tmp_path / "data"),
            labels=artifact(Dataset, tmp_path / "labels"),
            params=params.model_dump_json(),
            nproc=2,
            trainjob=TrainJobParams(launcher="local").model_dump_json(),
            workspace="",
            task_config=dsl.TaskConfig(),
            classifier=model,
            metrics=metrics,
        )
    settings, encoder_dir, data_dir, labels_dir, out_dir = call.args
    assert settings == params.model_copy(update={"nproc": 2})
    assert settings.train.lr == 0.01 and settings.crop_s == FinetuneParams().crop_s
    assert encoder_dir == (tmp_path / "clip" if pretrained else None)
    assert [data_dir, labels_dir, out_dir] == [tmp_path / n for n in ("data", "labels", "clf")]
    assert model.metadata["val_loss"] == metrics.metadata["val_loss"] == 0.25
