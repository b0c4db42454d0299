"""Each component folder's README.md is what the generator makes of the component and its params
model (so it cannot drift), and every component takes its stage settings as one validated
``params`` JSON input."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from ecgflow.pipelines.component_readmes import Wiring, component_folders, load, render, wiring

FOLDERS = component_folders()


@pytest.fixture(scope="module")
def wired() -> dict[str, Wiring]:
    return wiring()


def test_every_component_has_a_folder() -> None:
    names = {folder.name for folder in FOLDERS}
    assert len(FOLDERS) == len(names) == 15
    assert {"ingest", "finetune_classifier", "evaluate", "export", "promote"} <= names


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda f: f.name)
def test_the_readme_is_generated(folder: Path, wired: dict[str, Wiring]) -> None:
    readme = folder / "README.md"
    assert readme.is_file(), f"{readme} missing: run `make component-readmes`"
    assert readme.read_text(encoding="utf-8") == render(folder, wired), (
        f"{readme} is stale: run `make component-readmes` (python -m "
        "ecgflow.pipelines.component_readmes) and commit the result"
    )


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda f: f.name)
def test_the_stage_settings_are_one_validated_params_input(folder: Path) -> None:
    component, model, _ = load(folder)
    spec = component.component_spec
    assert str(spec.inputs["params"].type) == "String"
    source = inspect.getsource(component.python_func)
    assert f"{model.__name__}.model_validate_json(params)" in source
    assert (folder / "tests" / "test_component_unit.py").is_file()  # through .python_func


def test_the_readme_lists_the_params_fields_and_the_wiring(wired: dict[str, Wiring]) -> None:
    (train_clip,) = [f for f in FOLDERS if f.name == "train_clip"]
    text = render(train_clip, wired)
    assert "| `train.epochs` | int | `15` |" in text
    assert "| `params` | String (JSON: [`TrainClipParams`]" in text
    assert "pipeline input `train_clip_params`" in text
    assert "accelerator `nvidia.com/gpu` × the pipeline input `train_nproc`" in text
