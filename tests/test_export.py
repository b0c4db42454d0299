"""ONNX export of a real (briefly trained) classifier: parity, metadata, Triton layout."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from conftest import SHARED_DATA
from datasets import tiny_classifier

from ecgflow.errors import EcgflowError
from ecgflow.models import load_model
from ecgflow.params import ExportParams
from ecgflow.stages.export import export
from ecgflow.training.data import ShardRows


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(classifier output, preprocess output) after one epoch of a tiny model."""
    yield tiny_classifier(tmp_path_factory.mktemp("export"), SHARED_DATA)


@pytest.fixture(scope="module")
def exported(trained: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("onnx")
    export(ExportParams(name="ptbxl-super"), trained[0], out, data_dir=trained[1])
    return out


def test_onnx_equals_pytorch_on_real_rows(trained: tuple[Path, Path], exported: Path) -> None:
    model, _ = load_model(trained[0] / "model")
    rows = ShardRows(trained[1], "test")
    x = np.stack([rows.signal(i) for i in range(min(7, len(rows)))])
    session = ort.InferenceSession(str(exported / "model.onnx"))
    with torch.no_grad():
        want = torch.sigmoid(model(torch.from_numpy(x))).numpy()
    for batch in (x[:1], x):
        got = session.run(["probabilities"], {"ecg": batch})[0]
        np.testing.assert_allclose(got, want[: len(batch)], atol=1e-4)
    parity = json.loads((exported / "parity.json").read_text())
    assert parity["passed"] and parity["source"] == "data_dir/test"
    assert parity["max_abs_diff"] <= 1e-4


def test_metadata_side_files_and_triton_layout(exported: Path) -> None:
    model = onnx.load(str(exported / "model.onnx"))
    meta = {p.key: p.value for p in model.metadata_props}
    labels = json.loads(meta["labels"])
    thresholds = json.loads((exported / "thresholds.json").read_text())["thresholds"]
    assert json.loads(meta["thresholds"]) == thresholds and set(labels) == set(thresholds)
    assert json.loads(meta["preprocess"])["fs"] == 100.0
    assert model.opset_import[0].version == 18
    for name in ("preprocess.json", "label_def.json", "pytorch/model.safetensors"):
        assert (exported / name).is_file(), name
    triton = exported / "triton" / "ptbxl-super"
    assert (triton / "1" / "model.onnx").read_bytes() == (exported / "model.onnx").read_bytes()
    config = (triton / "config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in config and "max_batch_size: 64" in config
    assert "dims: [ 12, 1000 ]" in config and f"dims: [ {len(labels)} ]" in config


def test_export_is_byte_identical_twice(trained: tuple[Path, Path], exported: Path, tmp_path):
    export(ExportParams(name="ptbxl-super"), trained[0], tmp_path, data_dir=trained[1])
    assert (tmp_path / "model.onnx").read_bytes() == (exported / "model.onnx").read_bytes()


def test_synthetic_parity_and_bad_inputs(trained: tuple[Path, Path], tmp_path: Path) -> None:
    result = export(ExportParams(parity_rows=4), trained[0] / "model", tmp_path / "syn")
    assert json.loads((tmp_path / "syn" / "parity.json").read_text())["source"] == "synthetic"
    assert result.n_parity_rows == 4
    with pytest.raises(EcgflowError, match="not found"):
        export(ExportParams(), tmp_path / "nothing", tmp_path / "x")
    with pytest.raises(EcgflowError, match="name"):
        ExportParams(name="bad name/")
