"""The export stage: a trained classifier → ONNX, checked against PyTorch, in a Triton layout.

Input: a finetune-classifier output (or its ``model/`` folder). Output (``out_dir``)::

    model.onnx                 input "ecg" float32 [batch, C, T] (dynamic batch), output
                               "probabilities" float32 [batch, L] (sigmoid); opset pinned;
                               metadata: labels, thresholds, preprocess params, channels, fs
    preprocess.json, thresholds.json, label_def.json
                               beside the model, so serving applies the identical transform
    parity.json                max |ONNX − PyTorch| on real preprocessed rows (or synthetic ones)
    pytorch/                   model.safetensors + config.json (the weights the ONNX came from)
    triton/<name>/1/model.onnx, triton/<name>/config.pbtxt
                               a Triton model repository (onnxruntime backend)
    export.json, manifest.json

The graph is captured with ``torch.export`` (``torch.onnx.export(dynamo=True)``), the exporter
PyTorch maintains; the same model gives the same bytes.
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ecgflow import __version__
from ecgflow.artifacts import (
    CLASSIFIER_SIDE_FILES,
    EXPORT_JSON,
    MODEL,
    MODEL_CONFIG,
    MODEL_ONNX,
    PARITY,
    PREPROCESS_JSON,
    PYTORCH,
    THRESHOLDS,
    WEIGHTS,
)
from ecgflow.errors import EcgflowError
from ecgflow.manifest import sha256_file, write_manifest, writes_output
from ecgflow.params import ExportParams
from ecgflow.training.data import ShardRows, preprocess_info

__all__ = ["ExportParams", "ExportResult", "export"]

log = logging.getLogger(__name__)

INPUT, OUTPUT = "ecg", "probabilities"
PARITY_SPLITS = ("test", "val", "all", "train")


@dataclass
class ExportResult:
    """What an export produced."""

    out_dir: Path
    onnx_path: Path
    max_abs_diff: float
    n_parity_rows: int
    labels: list[str]


class _Probabilities(nn.Module):
    """The classifier with a sigmoid: what the exported graph computes."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, ecg: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.classifier(ecg))


@writes_output("export")
def export(
    params: ExportParams, model_dir: Path, out_dir: Path, data_dir: Path | None = None
) -> ExportResult:
    """Export the classifier in ``model_dir`` (see the module docstring).

    Raises :class:`EcgflowError` for a missing or non-classifier model, and when ONNX and
    PyTorch differ by more than ``params.tolerance`` (after writing ``parity.json``).
    """
    from ecgflow.models import load_model

    folder = _model_folder(Path(model_dir))
    model, config = load_model(folder)
    if model.__class__.__name__ != "Classifier":
        raise EcgflowError(f"{folder}: only classifiers export to ONNX (this is a CLIP model)")
    info = json.loads((folder / PREPROCESS_JSON).read_text(encoding="utf-8"))
    thresholds = json.loads((folder / THRESHOLDS).read_text(encoding="utf-8"))
    channels, n_times = int(info["n_channels"]), int(info["n_times"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / MODEL_ONNX
    wrapped = _Probabilities(model).eval()
    _to_onnx(wrapped, channels, n_times, params.opset, onnx_path)
    _add_metadata(onnx_path, config.labels, thresholds, info)
    for name in CLASSIFIER_SIDE_FILES:
        shutil.copyfile(folder / name, out_dir / name)
    (out_dir / PYTORCH).mkdir(exist_ok=True)
    for name in (WEIGHTS, MODEL_CONFIG):
        shutil.copyfile(folder / name, out_dir / PYTORCH / name)
    x, source = _parity_rows(params, data_dir, info)
    parity = _parity(wrapped, onnx_path, x, source, params.tolerance)
    (out_dir / PARITY).write_text(json.dumps(parity, indent=2) + "\n", encoding="utf-8")
    _triton_layout(params, onnx_path, out_dir, channels, n_times, len(config.labels))
    summary = {
        "params": params.model_dump(mode="json"),
        "labels": config.labels,
        "input": {"name": INPUT, "shape": ["batch", channels, n_times], "dtype": "float32"},
        "output": {"name": OUTPUT, "shape": ["batch", len(config.labels)], "dtype": "float32"},
        "parity": parity,
        "ecgflow_version": __version__,
    }
    (out_dir / EXPORT_JSON).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    write_manifest(
        out_dir,
        stage="export",
        inputs={WEIGHTS: sha256_file(folder / WEIGHTS)},
        params=params.model_dump(mode="json"),
        counts={"parity_rows": parity["rows"]},
    )
    if not parity["passed"]:
        raise EcgflowError(
            f"{out_dir / PARITY}: ONNX and PyTorch differ by {parity['max_abs_diff']:.3g}"
            f" > tolerance {params.tolerance:g}"
        )
    return ExportResult(out_dir, onnx_path, parity["max_abs_diff"], parity["rows"], config.labels)


def _model_folder(model_dir: Path) -> Path:
    folder = model_dir / MODEL if (model_dir / MODEL / MODEL_CONFIG).is_file() else model_dir
    for name in (MODEL_CONFIG, WEIGHTS, *CLASSIFIER_SIDE_FILES):
        if not (folder / name).is_file():
            raise EcgflowError(f"{folder / name}: not found (--model must be a classifier)")
    return folder


def _to_onnx(module: nn.Module, channels: int, n_times: int, opset: int, path: Path) -> None:
    example = torch.zeros(2, channels, n_times)
    batch = torch.export.Dim("batch", min=1, max=65536)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's chatter about optional packages
        program = torch.onnx.export(
            module,
            (example,),
            input_names=[INPUT],
            output_names=[OUTPUT],
            opset_version=opset,
            dynamo=True,
            dynamic_shapes={"ecg": {0: batch}},
            verbose=False,
        )
    assert program is not None
    program.save(str(path))


def _add_metadata(
    path: Path, labels: list[str], thresholds: dict[str, Any], info: dict[str, Any]
) -> None:
    import onnx

    model = onnx.load(str(path))
    entries = {
        "labels": json.dumps(labels),
        "thresholds": json.dumps(thresholds.get("thresholds", thresholds)),
        "preprocess": json.dumps(info.get("params", {}), sort_keys=True),
        "channels": json.dumps(info.get("channels", [])),
        "fs": str(info.get("fs")),
        "ecgflow_version": __version__,
    }
    del model.metadata_props[:]
    for key, value in entries.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _parity_rows(
    params: ExportParams, data_dir: Path | None, info: dict[str, Any]
) -> tuple[np.ndarray, str]:
    """Real preprocessed rows from ``data_dir``, else synthetic records, same transform."""
    if data_dir is not None:
        available = preprocess_info(data_dir)["splits"]
        for split in PARITY_SPLITS:
            if split in available:
                rows = ShardRows(data_dir, split)
                n = min(params.parity_rows, len(rows))
                if n:
                    return np.stack([rows.signal(i) for i in range(n)]), f"data_dir/{split}"
    from ecgflow.io.synthetic_ecg import synthesize_record
    from ecgflow.signal.transform import PreprocessParams, transform_record

    prep = PreprocessParams.model_validate(info["params"])
    rows = []
    for i in range(params.parity_rows):
        x, _ = transform_record(synthesize_record(i, seed=7).record, prep)
        rows.append(x if x.ndim == 2 else x[0])
    return np.stack(rows).astype(np.float32), "synthetic"


def _parity(
    module: nn.Module, path: Path, x: np.ndarray, source: str, tolerance: float
) -> dict[str, Any]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT], {INPUT: x})[0]
    one = session.run([OUTPUT], {INPUT: x[:1]})[0]
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    diff = float(max(np.abs(got - want).max(), np.abs(one - want[:1]).max()))
    return {
        "rows": len(x),
        "source": source,
        "max_abs_diff": diff,
        "tolerance": tolerance,
        "passed": diff <= tolerance,
        "onnxruntime": ort.__version__,
        "providers": session.get_providers(),
    }


def _triton_layout(
    params: ExportParams, onnx_path: Path, out_dir: Path, channels: int, n_times: int, n: int
) -> None:
    folder = out_dir / "triton" / params.name
    (folder / "1").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_path, folder / "1" / MODEL_ONNX)
    config = f"""name: "{params.name}"
platform: "onnxruntime_onnx"
max_batch_size: {params.max_batch_size}
input [
  {{
    name: "{INPUT}"
    data_type: TYPE_FP32
    dims: [ {channels}, {n_times} ]
  }}
]
output [
  {{
    name: "{OUTPUT}"
    data_type: TYPE_FP32
    dims: [ {n} ]
  }}
]
dynamic_batching {{ }}
"""
    (folder / "config.pbtxt").write_text(config, encoding="utf-8")
