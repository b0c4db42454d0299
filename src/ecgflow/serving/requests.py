"""Turn request instances into model rows with the preprocess stage's own transform.

An instance is one of:

* a preprocessed tensor ``[C, T]`` (exactly what the model takes);
* a raw signal ``{"signal": [[...], ...], "fs": 500, "leads": ["I", ...], "units": "mV"}``
  (``[leads, samples]``, any rate and length the limits allow);
* a WFDB record ``{"wfdb": {"header": B64, "signal": B64}}`` (``.dat`` or ``.mat``; or
  ``"files": {"NAME": B64, ...}`` for every file the header names).

Raw signals and WFDB records go through :func:`ecgflow.signal.transform.transform_record`, the
function the preprocess stage runs, so serving sees what training saw. Every problem raises
:class:`RequestError` naming the instance and field (the server answers 400 with it).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ecgflow.errors import EcgflowError, raises_ecgflow_error
from ecgflow.io.record import STANDARD_LEADS, ECGRecord, millivolt_factor, normalise_lead_name
from ecgflow.io.wfdb_reader import parse_header, read_wfdb, referenced_files
from ecgflow.signal.transform import PreprocessParams, transform_record

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class RequestError(EcgflowError):
    """A request the server cannot use; the message names the instance and field."""


class ServingLimits(BaseModel):
    """What one request may carry; invalid values raise EcgflowError."""

    model_config = ConfigDict(extra="forbid")

    max_body_bytes: int = Field(64 << 20, ge=1024, description="largest request body")
    max_instances: int = Field(256, ge=1, description="instances (records) per request")
    min_seconds: float = Field(1.0, gt=0, description="shortest raw signal")
    max_seconds: float = Field(600.0, gt=0, description="longest raw signal")
    max_fs: float = Field(10_000.0, gt=0, description="highest raw sampling rate")

    _as_ecgflow_error = raises_ecgflow_error("serving limits")


@dataclass
class Decoded:
    """Model rows for a request: ``rows [N, C, T]``, and which rows belong to which instance."""

    rows: np.ndarray
    counts: list[int]
    infos: list[dict[str, Any]] = field(default_factory=list)


def decode_instances(
    instances: Any, params: PreprocessParams, limits: ServingLimits, where: str = "instances"
) -> Decoded:
    """Rows for a V1 ``instances`` list (see the module docstring for the instance forms)."""
    if not isinstance(instances, list) or not instances:
        raise RequestError(f"{where}: expected a non-empty list of instances")
    if len(instances) > limits.max_instances:
        raise RequestError(
            f"{where}: {len(instances)} instances, at most {limits.max_instances} per request"
        )
    parts = [
        decode_instance(inst, params, limits, f"{where}[{i}]") for i, inst in enumerate(instances)
    ]
    return join_parts(parts)


def decode_instance(
    instance: Any, params: PreprocessParams, limits: ServingLimits, where: str
) -> tuple[np.ndarray, dict[str, Any]]:
    """``[K, C, T]`` rows (K windows, 1 for a fixed length) and the transform's info."""
    if isinstance(instance, dict):
        if "wfdb" in instance:
            return transform(wfdb_record(instance["wfdb"], f"{where}.wfdb"), params, limits, where)
        if "signal" in instance:
            return transform(raw_record(instance, where), params, limits, where)
        raise RequestError(
            f"{where}: an object needs 'signal' (with 'fs' and 'leads') or 'wfdb'; "
            f"got keys {sorted(instance)[:8]}"
        )
    return tensor_rows(instance, params, where)[None], {"kind": "tensor"}


def tensor_rows(data: Any, params: PreprocessParams, where: str) -> np.ndarray:
    """A preprocessed ``[C, T]`` tensor as float32, or :class:`RequestError`."""
    want = (len(params.channels), params.n_times)
    x = numeric_array(data, where)
    if x.shape != want:
        raise RequestError(
            f"{where}: a preprocessed tensor must have shape [{want[0]}, {want[1]}] "
            f"(channels, samples at {params.fs:g} Hz); got {list(x.shape)}"
        )
    return finite(x, where)


def numeric_array(data: Any, where: str) -> np.ndarray:
    """``data`` as a float32 array; ragged lists, strings and booleans are refused."""
    try:
        x = np.asarray(data)
    except ValueError:
        raise RequestError(f"{where}: ragged array (rows of different lengths)") from None
    if x.dtype == object:
        raise RequestError(f"{where}: ragged or non-numeric array")
    if x.dtype.kind not in "iuf":
        raise RequestError(f"{where}: numbers expected, got {x.dtype.name} values")
    return x.astype(np.float32, copy=False)


def finite(x: np.ndarray, where: str) -> np.ndarray:
    """``x`` unchanged, or :class:`RequestError` counting its NaN/inf values."""
    bad = x.size - int(np.count_nonzero(np.isfinite(x)))
    if bad:
        raise RequestError(f"{where}: {bad} NaN or infinite value(s); send finite numbers")
    return x


def raw_record(instance: dict[str, Any], where: str) -> ECGRecord:
    """An :class:`ECGRecord` from ``{signal, fs, leads[, units]}``."""
    unknown = set(instance) - {"signal", "fs", "leads", "units"}
    if unknown:
        raise RequestError(f"{where}: unknown field(s) {sorted(unknown)}")
    if "fs" not in instance:
        raise RequestError(f"{where}.fs: missing (the sampling rate in Hz)")
    fs = instance["fs"]
    if isinstance(fs, bool) or not isinstance(fs, int | float) or not math.isfinite(fs) or fs <= 0:
        raise RequestError(f"{where}.fs: must be a number > 0 (Hz), got {fs!r}")
    leads = lead_list(instance.get("leads"), f"{where}.leads")
    x = numeric_array(instance["signal"], f"{where}.signal")
    if x.ndim != 2 or x.shape[0] != len(leads):
        raise RequestError(
            f"{where}.signal: expected [leads, samples] with {len(leads)} rows (one per lead), "
            f"got shape {list(x.shape)}"
        )
    finite(x, f"{where}.signal")
    unit = instance.get("units", "mV")
    factor = millivolt_factor(unit) if isinstance(unit, str) else None
    if factor is None:
        raise RequestError(f"{where}.units: a voltage unit (mV, uV, V) expected, got {unit!r}")
    return ECGRecord(x * factor, float(fs), leads, ["mV"] * len(leads), record_id=where)


def lead_list(value: Any, where: str) -> list[str]:
    """Distinct standard lead names (``avr`` → ``aVR``), or :class:`RequestError`."""
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise RequestError(f"{where}: a list of lead names expected, got {value!r:.80}")
    names = [normalise_lead_name(v) for v in value]
    unknown = [n for n in names if n not in STANDARD_LEADS]
    if unknown:
        raise RequestError(
            f"{where}: unknown lead(s) {unknown}; known: {', '.join(STANDARD_LEADS)}"
        )
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RequestError(f"{where}: duplicate lead(s) {duplicates}")
    return names


def wfdb_record(payload: Any, where: str) -> ECGRecord:
    """An :class:`ECGRecord` from base64 WFDB files (header + signal file(s))."""
    if not isinstance(payload, dict) or "header" not in payload:
        raise RequestError(f"{where}: expected {{'header': B64, 'signal': B64}} or 'files'")
    header_text = b64(payload["header"], f"{where}.header").decode("utf-8", errors="replace")
    try:
        header = parse_header(header_text, f"{where}.header")
    except EcgflowError as exc:
        raise RequestError(str(exc)) from None
    name = header.record_name
    if not SAFE_NAME.match(name):
        raise RequestError(f"{where}.header: record name {name!r} is not a plain file name")
    needed = referenced_files(header_text, name)
    contents = _signal_files(payload, needed, where)
    with tempfile.TemporaryDirectory(prefix="ecgflow-req-") as tmp:
        folder = Path(tmp)
        (folder / f"{name}.hea").write_text(header_text, encoding="utf-8")
        for filename, content in contents.items():
            (folder / filename).write_bytes(content)
        try:
            record = read_wfdb(folder / f"{name}.hea", record_id=where)
            record.validate(where)
        except EcgflowError as exc:
            raise RequestError(str(exc).replace(str(folder), where)) from None
        except Exception as exc:  # the decoder's own errors on a corrupt file
            message = f"{type(exc).__name__}: {exc}".replace(str(folder), where)
            raise RequestError(f"{where}: cannot decode the record ({message})") from None
    return record


def _signal_files(payload: dict[str, Any], needed: list[str], where: str) -> dict[str, bytes]:
    """The decoded bytes of every file the header names, by file name."""
    files = payload.get("files")
    if files is None:
        if "signal" not in payload:
            raise RequestError(f"{where}.signal: missing (base64 of the .dat / .mat file)")
        if len(needed) != 1:
            raise RequestError(
                f"{where}: the header names {len(needed)} files {needed}; send them in 'files'"
            )
        return {needed[0]: b64(payload["signal"], f"{where}.signal")}
    if not isinstance(files, dict):
        raise RequestError(f"{where}.files: expected {{'NAME': B64, ...}}")
    missing = [n for n in needed if n not in files]
    if missing:
        raise RequestError(f"{where}.files: the header names {missing}, not sent")
    for filename in files:
        if not isinstance(filename, str) or not SAFE_NAME.match(filename):
            raise RequestError(f"{where}.files: {filename!r} is not a plain file name")
    return {n: b64(content, f"{where}.files[{n}]") for n, content in files.items()}


def b64(value: Any, where: str) -> bytes:
    """Bytes of a base64 string, or :class:`RequestError`."""
    if not isinstance(value, str):
        raise RequestError(f"{where}: a base64 string expected")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(f"{where}: malformed base64") from None


def transform(
    record: ECGRecord, params: PreprocessParams, limits: ServingLimits, where: str
) -> tuple[np.ndarray, dict[str, Any]]:
    """The preprocess transform on a raw record, within the limits."""
    if record.fs > limits.max_fs:
        raise RequestError(f"{where}.fs: {record.fs:g} Hz is above the limit {limits.max_fs:g} Hz")
    seconds = record.duration_s
    if seconds < limits.min_seconds:
        raise RequestError(
            f"{where}.signal: {seconds:.3g} s is too short (at least {limits.min_seconds:g} s)"
        )
    if seconds > limits.max_seconds:
        raise RequestError(
            f"{where}.signal: {seconds:.4g} s is too long (at most {limits.max_seconds:g} s)"
        )
    try:
        x, info = transform_record(record, params)
    except EcgflowError as exc:
        raise RequestError(f"{where}: {exc}") from None
    rows = x if x.ndim == 3 else x[None]
    keep = ("n_repaired", "n_missing_leads", "n_flat_leads", "n_saturated_leads", "n_noisy_leads")
    return rows, {"kind": "raw", "windows": len(rows), **{k: info[k] for k in keep}}


def join_parts(parts: list[tuple[np.ndarray, dict[str, Any]]]) -> Decoded:
    """One :class:`Decoded` from per-instance ``(rows, info)`` pairs."""
    rows = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    return Decoded(
        np.ascontiguousarray(rows, dtype=np.float32),
        [len(p[0]) for p in parts],
        [p[1] for p in parts],
    )
