"""The compiled-pipeline half of "a new stage field needs one edit" (issue 27).

tests/test_cli.py adds a field to a params model and finds it in the CLI help and the config
schema. Here the same kind of field reaches the compiled pipeline: the pipeline input's default
that feeds the component's ``params``, the component (which validates that JSON and hands it
to its stage) and the component's generated README.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kfp import dsl
from kfp.dsl import Dataset, Metrics, Model
from pydantic import Field, create_model

import ecgflow.params
import ecgflow.stages.finetune_classifier
from ecgflow.components.tests.artifacts import TRAINED, StageCall, artifact
from ecgflow.components.training.finetune_classifier.component import finetune_classifier
from ecgflow.config import PipelineConfig
from ecgflow.params import FinetuneParams, TrainJobParams
from ecgflow.params.train import TrainConfig
from ecgflow.pipeline_runner import compile_pipeline
from ecgflow.pipelines.component_readmes import param_rows

TrainPlus = create_model(
    "TrainPlus", __base__=TrainConfig, label_smoothing=(float, Field(0.05, description="smooth"))
)
FinetunePlus = create_model(
    "FinetunePlus",
    __base__=FinetuneParams,
    mixup=(bool, Field(False, description="mix pairs of rows")),
    train=(TrainPlus, Field(default_factory=TrainPlus)),
)
ConfigPlus = create_model(
    "ConfigPlus",
    __base__=PipelineConfig,
    finetune=(FinetunePlus, Field(default_factory=FinetunePlus)),
)


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The training pipeline compiled from a config whose finetune model has the new fields."""
    path = compile_pipeline(tmp_path_factory.mktemp("c") / "training.yaml", ConfigPlus())
    return next(yaml.safe_load_all(path.read_text(encoding="utf-8")))


def test_the_new_field_is_in_the_compiled_default_of_the_components_params(
    spec: dict[str, Any],
) -> None:
    task = spec["root"]["dag"]["tasks"]["finetune-classifier"]
    feed = task["inputs"]["parameters"]["params"]["componentInputParameter"]
    assert feed == "finetune_params"
    default = json.loads(spec["root"]["inputDefinitions"]["parameters"][feed]["defaultValue"])
    assert default["mixup"] is False and default["train"]["label_smoothing"] == 0.05
    assert default["crop_s"] == FinetuneParams().crop_s  # the rest as before


def test_the_component_hands_the_new_field_to_its_stage(
    spec: dict[str, Any], tmp_path: Path
) -> None:
    """The compiled default, validated by the (edited) model inside the component."""
    default = spec["root"]["inputDefinitions"]["parameters"]["finetune_params"]["defaultValue"]
    call = StageCall(TRAINED)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ecgflow.params, "FinetuneParams", FinetunePlus)  # the edited model
        patch.setattr(ecgflow.stages.finetune_classifier, "finetune_classifier", call)
        finetune_classifier.python_func(
            clip=artifact(Model, tmp_path / "clip"),
            data=artifact(Dataset, tmp_path / "data"),
            labels=artifact(Dataset, tmp_path / "labels"),
            params=default,
            nproc=1,
            trainjob=TrainJobParams(launcher="local").model_dump_json(),
            workspace="",
            task_config=dsl.TaskConfig(),
            classifier=artifact(Model, tmp_path / "clf"),
            metrics=artifact(Metrics, tmp_path / "m"),
        )
    settings = call.args[0]
    assert settings.mixup is False and settings.train.label_smoothing == 0.05


def test_the_new_field_is_in_the_components_readme_table() -> None:
    rows = {name: (kind, default, text) for name, kind, default, text in param_rows(FinetunePlus)}
    assert rows["mixup"] == ("bool", "false", "mix pairs of rows")
    assert rows["train.label_smoothing"] == ("float", "0.05", "smooth")
