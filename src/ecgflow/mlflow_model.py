"""The registered classifier as an MLflow model that takes raw ECG and answers by label.

``mlflow.pyfunc.load_model("models:/ecg-classifier@champion")`` and
``mlflow models serve -m models:/ecg-classifier@champion --env-manager local`` take raw
recordings, run the preprocess stage's own transform (``preprocess.json`` saved with the model),
the ONNX network and the thresholds tuned on validation, and answer per record:

* ``probability_<label>``: the probability (mean over windows when the recording is cut);
* ``decision_<label>``: probability ≥ the label's threshold;
* ``positive``: the labels decided positive, comma-separated; ``windows``: rows scored.

An input row (a DataFrame row, a dict, or a served ``dataframe_records`` item) is either a raw
signal ``{"signal": [[...], ...], "fs": 500, "leads": ["I", ...], "units": "mV"}``
(``[leads, samples]``; ``units`` defaults to mV) or a record file on the machine running the
model ``{"path": "/data/ptbxl/00001_lr"}`` (a WFDB base path or ``.hea``, EDF, CSV, NPY).

The version's folder keeps ``model.onnx`` at its root and the side files in ``extra_files/``
(the layout KServe's predictor and ``ecgflow deploy`` read), with two flavors: ``onnx`` (the bare
network) and ``python_function``, loaded by this module's :func:`_load_pyfunc` from that
folder. (An ``mlflow.pyfunc.PythonModel`` would keep its files under ``artifacts/``, moving
the ONNX file away from where KServe expects it, or storing it twice.)
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ecgflow.artifacts import (
    LABEL_DEF,
    MLFLOW_EXTRA,
    MODEL_ONNX,
    PREPROCESS_JSON,
    SIDE_FILES,
    THRESHOLDS,
)
from ecgflow.errors import EcgflowError
from ecgflow.io.record import ECGRecord, millivolt_factor
from ecgflow.params.preprocess import PreprocessParams
from ecgflow.signal.transform import transform_record

INPUT_COLUMNS = ("signal", "fs", "leads", "units", "path")
MAX_ROWS = 256  # records per call
MAX_SECONDS = 600.0  # longest raw signal
MAX_FS = 10_000.0  # highest raw sampling rate


class RawECGClassifier:
    """The pyfunc: raw ECG rows in, per-label probabilities and decisions out."""

    def __init__(self, folder: Path) -> None:
        import onnxruntime as ort

        folder = Path(folder)
        side = folder / MLFLOW_EXTRA if (folder / MLFLOW_EXTRA).is_dir() else folder
        self.preprocess = PreprocessParams.model_validate(
            _read_json(side / PREPROCESS_JSON).get("params", {})
        )
        thresholds = _read_json(side / THRESHOLDS)
        self.labels: list[str] = list(thresholds["labels"])
        self.thresholds = np.array([float(thresholds["thresholds"][n]) for n in self.labels])
        label_def = _read_json(side / LABEL_DEF) if (side / LABEL_DEF).is_file() else {}
        described = {
            str(e.get("name")): str(e.get("description") or "") for e in label_def.get("labels", [])
        }
        #: each label's description (label_def.json; the name where it has none)
        self.descriptions = {n: described.get(n) or n.replace("_", " ") for n in self.labels}
        self.session = ort.InferenceSession(
            str(folder / MODEL_ONNX), providers=["CPUExecutionProvider"]
        )
        model_input = self.session.get_inputs()[0]
        want = [len(self.preprocess.channels), self.preprocess.n_times]
        if list(model_input.shape[1:]) != want:
            raise EcgflowError(
                f"{folder / MODEL_ONNX}: input shape {model_input.shape} does not match "
                f"preprocess.json [batch, {want[0]}, {want[1]}]"
            )
        self.input_name = model_input.name

    def probabilities(self, record: ECGRecord) -> dict[str, float]:
        """One record's probability per label (mean over windows), by label name."""
        mean, _ = self._score(record)
        return {name: float(mean[j]) for j, name in enumerate(self.labels)}

    def _score(self, record: ECGRecord) -> tuple[np.ndarray, int]:
        """One record's per-label probabilities (mean over its windows) and its window count."""
        x, _ = transform_record(record, self.preprocess)
        batch = x if x.ndim == 3 else x[None]
        out = self.session.run(None, {self.input_name: batch.astype(np.float32)})[0]
        return np.asarray(out, dtype=np.float64).mean(axis=0), len(batch)

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        """A DataFrame with one row per input row (see the module docstring)."""
        import pandas as pd
        from mlflow.exceptions import MlflowException

        probabilities, windows = [], []
        try:
            for i, row in enumerate(_rows(model_input)):
                mean, count = self._score(_record(row, f"row {i}"))
                probabilities.append(mean)
                windows.append(count)
        except EcgflowError as exc:  # the scoring server answers 400 with the message
            raise MlflowException.invalid_parameter_value(str(exc)) from None
        p = np.stack(probabilities)
        decided = p >= self.thresholds
        table: dict[str, Any] = {f"probability_{n}": p[:, j] for j, n in enumerate(self.labels)}
        table |= {f"decision_{n}": decided[:, j] for j, n in enumerate(self.labels)}
        table["positive"] = [
            ",".join(n for n, d in zip(self.labels, row, strict=True) if d) for row in decided
        ]
        table["windows"] = np.array(windows, dtype=np.int64)
        return pd.DataFrame(table)


def _load_pyfunc(path: str) -> RawECGClassifier:
    """MLflow's loader hook: ``path`` is the model version's folder."""
    return RawECGClassifier(Path(path))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EcgflowError(f"{path}: not found (the model folder lacks it)") from None
    except (OSError, ValueError) as exc:
        raise EcgflowError(f"{path}: unreadable ({exc})") from None


# --- inputs ------------------------------------------------------------------------------------


def _rows(model_input: Any) -> list[dict[str, Any]]:
    """Input rows as dicts: a DataFrame, a dict (one record), a list of dicts, or a path."""
    import pandas as pd

    if isinstance(model_input, str | Path):
        rows: list[Any] = [{"path": str(model_input)}]
    elif isinstance(model_input, dict) and _columnar(model_input):
        n = len(next(iter(model_input.values())))
        rows = [{k: v[i] for k, v in model_input.items()} for i in range(n)]
    elif isinstance(model_input, dict):
        rows = [model_input]
    elif isinstance(model_input, pd.DataFrame):
        rows = model_input.to_dict(orient="records")
    elif isinstance(model_input, list):
        rows = model_input
    else:
        raise EcgflowError(
            f"input: a DataFrame, a dict or a list of dicts expected, got {type(model_input)}"
        )
    if not rows:
        raise EcgflowError("input: no rows")
    if len(rows) > MAX_ROWS:
        raise EcgflowError(f"input: {len(rows)} rows, at most {MAX_ROWS} per call")
    if not all(isinstance(row, dict) for row in rows):
        raise EcgflowError("input: every row must be an object with 'signal' or 'path'")
    return [{k: v for k, v in row.items() if not _missing(v)} for row in rows]


def _columnar(data: dict[str, Any]) -> bool:
    """A dict of columns (MLflow turns ``instances`` / ``inputs`` into one), not one record."""
    sequence = list | tuple | np.ndarray
    lengths = {len(v) if isinstance(v, sequence) else -1 for v in data.values()}
    if len(lengths) != 1 or -1 in lengths:
        return False
    return any(isinstance(data.get(k), sequence) for k in ("fs", "path", "units"))


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _record(row: dict[str, Any], where: str) -> ECGRecord:
    unknown = set(row) - set(INPUT_COLUMNS)
    if unknown:
        raise EcgflowError(f"{where}: unknown field(s) {sorted(unknown)}")
    if "path" in row:
        from ecgflow.io.readers import read_record

        record = read_record(Path(str(row["path"])))
    elif "signal" in row:
        record = _raw_record(row, where)
    else:
        raise EcgflowError(f"{where}: needs 'signal' (with 'fs' and 'leads') or 'path'")
    if record.fs > MAX_FS:
        raise EcgflowError(f"{where}.fs: {record.fs:g} Hz is above {MAX_FS:g} Hz")
    if record.duration_s > MAX_SECONDS:
        raise EcgflowError(f"{where}.signal: {record.duration_s:.4g} s is over {MAX_SECONDS:g} s")
    return record


def _raw_record(row: dict[str, Any], where: str) -> ECGRecord:
    fs = row.get("fs")
    if isinstance(fs, bool) or not isinstance(fs, int | float) or not fs > 0:
        raise EcgflowError(f"{where}.fs: the sampling rate in Hz (a number > 0), got {fs!r}")
    leads = row.get("leads")
    if isinstance(leads, str):
        leads = [part.strip() for part in leads.split(",") if part.strip()]
    leads = list(leads) if isinstance(leads, list | tuple | np.ndarray) else None
    if not leads or not all(isinstance(n, str) for n in leads):
        raise EcgflowError(f"{where}.leads: a list of lead names expected")
    try:
        signal = np.asarray([np.asarray(lead, dtype=np.float32) for lead in row["signal"]])
    except (TypeError, ValueError):
        raise EcgflowError(f"{where}.signal: [leads, samples] numbers expected") from None
    if signal.ndim != 2 or signal.shape[0] != len(leads):
        raise EcgflowError(
            f"{where}.signal: expected [leads, samples] with {len(leads)} rows, "
            f"got shape {list(signal.shape)}"
        )
    if not np.isfinite(signal).all():
        raise EcgflowError(f"{where}.signal: NaN or infinite values; send finite numbers")
    unit = row.get("units", "mV")
    factor = millivolt_factor(unit) if isinstance(unit, str) else None
    if factor is None:
        raise EcgflowError(f"{where}.units: a voltage unit (mV, uV, V) expected, got {unit!r}")
    return ECGRecord(signal * factor, float(fs), leads, ["mV"] * len(leads), record_id=where)


# --- logging -----------------------------------------------------------------------------------


def signature(labels: list[str]) -> Any:
    """Input: the raw-ECG columns (each optional); output: the per-label columns."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, Schema

    inputs = Schema(
        [
            ColSpec(Array(Array("double")), "signal", required=False),
            ColSpec("double", "fs", required=False),
            ColSpec(Array("string"), "leads", required=False),
            ColSpec("string", "units", required=False),
            ColSpec("string", "path", required=False),
        ]
    )
    outputs = Schema(
        [ColSpec("double", f"probability_{n}") for n in labels]
        + [ColSpec("boolean", f"decision_{n}") for n in labels]
        + [ColSpec("string", "positive"), ColSpec("long", "windows")]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def input_example(params: PreprocessParams) -> Any:
    """One synthetic 12-lead recording at the model's rate, as the pyfunc takes it."""
    import pandas as pd

    from ecgflow.io.synthetic_ecg import synthesize_record

    seconds = params.length_s or params.window_s or 10.0
    record = synthesize_record(0, fs=params.fs, seconds=seconds).record
    signal = np.round(record.signal.astype(np.float64), 3).tolist()
    return pd.DataFrame([{"signal": signal, "fs": record.fs, "leads": record.leads, "units": "mV"}])


def save_model(path: str, mlflow_model: Any, export_dir: Path, **kwargs: Any) -> None:
    """Write the model folder (MLflow's flavor hook, called by :func:`log_model`)."""
    import mlflow
    import onnx

    export_dir = Path(export_dir)
    mlflow.pyfunc.save_model(path, loader_module=__name__, mlflow_model=mlflow_model, **kwargs)
    shutil.copy2(export_dir / MODEL_ONNX, Path(path) / MODEL_ONNX)
    (Path(path) / MLFLOW_EXTRA).mkdir()
    for name in SIDE_FILES:
        shutil.copy2(export_dir / name, Path(path) / MLFLOW_EXTRA / name)
    mlflow_model.add_flavor(
        "onnx",
        onnx_version=onnx.__version__,
        data=MODEL_ONNX,
        providers=["CPUExecutionProvider"],
        onnx_session_options=None,
        code=None,
        extra_files=[{"path": f"{MLFLOW_EXTRA}/{name}"} for name in SIDE_FILES],
    )
    mlflow_model.save(str(Path(path) / "MLmodel"))


def log_model(export_dir: Path, registered_model_name: str | None = None) -> Any:
    """Log ``export_dir`` (an export output) as ``model`` in the active run; returns its info.

    With ``registered_model_name`` it is registered as a new version of that model.
    """
    import sys

    import mlflow
    import onnxruntime
    import pandas
    import scipy

    import ecgflow

    export_dir = Path(export_dir)
    labels = list(_read_json(export_dir / THRESHOLDS)["labels"])
    params = PreprocessParams.model_validate(
        _read_json(export_dir / PREPROCESS_JSON).get("params", {})
    )
    requirements = [
        f"ecgflow=={ecgflow.__version__}",
        f"mlflow=={mlflow.__version__}",
        f"onnxruntime=={onnxruntime.__version__}",
        f"numpy=={np.__version__}",
        f"pandas=={pandas.__version__}",
        f"scipy=={scipy.__version__}",
    ]
    return mlflow.models.Model.log(
        None,
        flavor=sys.modules[__name__],
        name="model",
        registered_model_name=registered_model_name,
        export_dir=export_dir,
        signature=signature(labels),
        input_example=input_example(params),
        pip_requirements=requirements,
    )
