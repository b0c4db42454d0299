"""A servable model: the exported ONNX classifier with the files that say how to feed it.

An export folder (``ecgflow export``) holds ``model.onnx`` with ``preprocess.json``,
``thresholds.json`` and ``label_def.json`` beside it. A registered version in MLflow holds the
same files: ``model.onnx`` in its model folder and the side files in ``extra_files/`` (that
folder is what an InferenceService's ``storageUri`` points at, mounted at ``/mnt/models``).
Where a side file is absent, the copy in the ONNX metadata (written by export) is used; where
both exist they must agree.

:func:`resolve_model` turns ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or a local folder
into a folder and a version; :func:`load_bundle` opens it.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ecgflow.artifacts import GEM_JSON, MLFLOW_EXTRA, MODEL_ONNX, PREPROCESS_JSON, THRESHOLDS
from ecgflow.errors import EcgflowError
from ecgflow.manifest import sha256_file
from ecgflow.signal.transform import PreprocessParams

log = logging.getLogger(__name__)

SIDE_DIRS = ("", MLFLOW_EXTRA)
# the parameters that change what the model sees; workers / chunk_size only change speed
SPEED_ONLY = ("workers", "chunk_size")


@dataclass
class ModelBundle:
    """An ONNX session plus its labels, thresholds and preprocessing."""

    name: str
    version: str
    folder: Path
    labels: list[str]
    thresholds: np.ndarray
    preprocess: PreprocessParams
    input_name: str
    output_name: str
    session: Any

    @property
    def n_channels(self) -> int:
        """Channels the model takes."""
        return len(self.preprocess.channels)

    @property
    def n_times(self) -> int:
        """Samples per channel the model takes."""
        return self.preprocess.n_times

    def run(self, x: np.ndarray) -> np.ndarray:
        """Probabilities ``[B, L]`` for preprocessed rows ``x [B, C, T]`` (float32)."""
        return self.session.run([self.output_name], {self.input_name: x})[0]


def _side_file(folder: Path, name: str) -> dict[str, Any] | None:
    for sub in SIDE_DIRS:
        path = folder / sub / name
        if path.is_file():
            try:
                return json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise EcgflowError(f"{path}: unreadable ({exc})") from None
    return None


def _metadata(session: Any, key: str, path: Path) -> Any:
    meta = session.get_modelmeta().custom_metadata_map
    if key not in meta:
        raise EcgflowError(f"{path}: no {key!r} in the ONNX metadata and no side file for it")
    try:
        return json.loads(meta[key])
    except ValueError as exc:
        raise EcgflowError(f"{path}: ONNX metadata {key!r} is not JSON ({exc})") from None


def _comparable(params: dict[str, Any]) -> dict[str, Any]:
    clean = PreprocessParams.model_validate(params).model_dump(mode="json")
    return {k: v for k, v in clean.items() if k not in SPEED_ONLY}


def load_bundle(
    folder: Path, name: str, version: str | None = None, threads: int = 0
) -> ModelBundle:
    """Open the servable model in ``folder``; :class:`EcgflowError` says what is missing.

    ``version`` defaults to ``sha-`` and the first 12 hex digits of the ONNX file's sha256;
    ``threads`` caps onnxruntime's intra-op threads (0: onnxruntime's default).
    """
    import onnxruntime as ort

    folder = Path(folder)
    onnx_path = folder / MODEL_ONNX
    if not onnx_path.is_file():
        raise EcgflowError(f"{onnx_path}: not found (the model must be an export folder)")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(
            str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise EcgflowError(f"{onnx_path}: onnxruntime cannot load it ({exc})") from None
    preprocess_json = _side_file(folder, PREPROCESS_JSON)
    embedded = _metadata(session, "preprocess", onnx_path)
    params = preprocess_json["params"] if preprocess_json else embedded
    if _comparable(params) != _comparable(embedded):
        raise EcgflowError(
            f"{folder}: preprocess.json and the ONNX metadata disagree; re-export the model"
        )
    prep = PreprocessParams.model_validate(params)
    thresholds_json = _side_file(folder, THRESHOLDS)
    labels = (thresholds_json or {}).get("labels") or _metadata(session, "labels", onnx_path)
    by_label = (
        thresholds_json["thresholds"]
        if thresholds_json
        else _metadata(session, "thresholds", onnx_path)
    )
    missing = [label for label in labels if label not in by_label]
    if missing:
        raise EcgflowError(f"{folder}: no threshold for label(s) {missing}")
    (model_input,) = session.get_inputs()
    output = session.get_outputs()[0]
    shape = model_input.shape
    if len(shape) != 3 or shape[1:] != [len(prep.channels), prep.n_times]:
        raise EcgflowError(
            f"{onnx_path}: input shape {shape} does not match the preprocessing "
            f"[batch, {len(prep.channels)}, {prep.n_times}]"
        )
    return ModelBundle(
        name=name,
        version=version or f"sha-{sha256_file(onnx_path)[:12]}",
        folder=folder,
        labels=list(labels),
        thresholds=np.array([float(by_label[label]) for label in labels], dtype=np.float32),
        preprocess=prep,
        input_name=model_input.name,
        output_name=output.name,
        session=session,
    )


def resolve_model(uri: str, cache_dir: Path | None = None) -> tuple[Path, str | None]:
    """A local folder for ``uri`` and its registry version (``None`` for a plain folder).

    ``models:/NAME@ALIAS`` and ``models:/NAME/VERSION`` are looked up in MLflow
    (``$MLFLOW_TRACKING_URI`` or the embedded store) and downloaded into ``cache_dir``.
    """
    if not uri.startswith("models:/"):
        folder = Path(uri.removeprefix("file://"))
        if not folder.is_dir():
            raise EcgflowError(f"--model {uri}: no such folder (or use models:/NAME@ALIAS)")
        return folder, None
    import mlflow
    from mlflow.exceptions import MlflowException

    from ecgflow.registry import model_version

    version = model_version(uri)
    target = Path(cache_dir or tempfile.mkdtemp(prefix="ecgflow-model-"))
    target = target / f"{version.name}-{version.version}"
    target.mkdir(parents=True, exist_ok=True)
    try:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{version.name}/{version.version}", dst_path=os.fspath(target)
        )
    except MlflowException as exc:
        raise EcgflowError(
            f"--model {uri}: cannot download version files ({exc.message})"
        ) from None
    log.info("model %s resolved to version %s", uri, version.version)
    return Path(local), str(version.version)


def model_kind(uri: str) -> str:
    """``"gem"`` for a GEM folder (``gem.json``) or a version tagged so, else ``"classifier"``."""
    if not uri.startswith("models:/"):
        return "gem" if (Path(uri.removeprefix("file://")) / GEM_JSON).is_file() else "classifier"
    import mlflow
    from mlflow.exceptions import MlflowException

    from ecgflow import tracking
    from ecgflow.registry import KIND_TAG

    client = mlflow.MlflowClient(tracking.connected_uri())
    ref = uri.removeprefix("models:/")
    try:
        if "@" in ref:
            version = client.get_model_version_by_alias(*ref.split("@", 1))
        elif "/" in ref:
            version = client.get_model_version(*ref.split("/", 1))
        else:
            return "classifier"  # resolve_model names the problem
    except MlflowException:
        return "classifier"
    return str((version.tags or {}).get(KIND_TAG, "classifier"))
