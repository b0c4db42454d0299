"""The export component through ``.python_func``: ONNX with a parity check on real rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kfp.dsl import Model

from ecgflow.artifacts import MODEL_ONNX, PARITY
from ecgflow.components.deployment.export.component import export
from ecgflow.components.tests.artifacts import artifact, classifier, upstream
from ecgflow.params import ExportParams


def test_export_writes_the_onnx_model_under_the_params_name(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    made, model = upstream(tmp_path_factory), classifier(tmp_path_factory)
    exported = artifact(Model, tmp_path / "exported")
    params = ExportParams(name="tiny-ecg", parity_rows=4)
    export.python_func(
        classifier=model, data=made.data, params=params.model_dump_json(), exported=exported
    )
    root = Path(exported.path)
    assert (root / MODEL_ONNX).is_file()
    assert (root / "triton" / "tiny-ecg" / "config.pbtxt").is_file()  # named by the params
    parity = json.loads((root / PARITY).read_text(encoding="utf-8"))
    assert exported.metadata["parity_max_abs_diff"] <= params.tolerance
    assert parity and exported.metadata["labels"].split(",")[0] == "normal_sinus_rhythm"
