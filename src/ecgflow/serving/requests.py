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

Work is bounded by :class:`~ecgflow.serving.limits.ServingLimits`: a request's leads × samples
(:class:`SampleBudget`, counted before each instance is copied or decoded), the amplitude in mV,
lead lists checked in linear time; :func:`off_loop` runs decoding in one thread, off the loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
import re
import tempfile
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ecgflow.errors import EcgflowError
from ecgflow.io.record import STANDARD_LEADS, ECGRecord, millivolt_factor, normalise_lead_name
from ecgflow.io.wfdb_reader import parse_header, read_wfdb, referenced_files
from ecgflow.serving.limits import ServingLimits
from ecgflow.signal.transform import PreprocessParams, transform_record

T = TypeVar("T")
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class RequestError(EcgflowError):
    """A request the server cannot use; the message names the instance and field."""


class SampleBudget:
    """Counts leads × samples across the instances of one request (``max_samples``)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0

    def take(self, n: int, where: str) -> None:
        """Count ``n`` more values, or :class:`RequestError` naming ``where`` past the limit."""
        self.used += n
        if self.used > self.limit:
            raise RequestError(
                f"{where}: {self.used:,} leads × samples in this request, at most "
                f"{self.limit:,} (ecgflow serve --limit max_samples=N)"
            )


_decoder: ThreadPoolExecutor | None = None


async def off_loop(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` in the one decoding thread, never on the event loop.

    Parsing and decoding hold the GIL in long C calls (``orjson.loads``, ``np.asarray`` of a
    nested list); one thread for all of them means the event loop waits for at most one such
    call at a time, however many requests are being decoded (with several threads it waited
    for several: 2.9 s instead of 0.7 s with four 2-million-sample requests on 2 cores).
    Decoding holds the GIL anyway, so one thread costs no throughput; inference runs elsewhere.
    """
    global _decoder
    if _decoder is None:
        _decoder = ThreadPoolExecutor(1, thread_name_prefix="ecgflow-decode")
    return await asyncio.get_running_loop().run_in_executor(_decoder, function, *args)


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
    budget = SampleBudget(limits.max_samples)
    parts = [
        decode_instance(inst, params, limits, f"{where}[{i}]", budget)
        for i, inst in enumerate(instances)
    ]
    return join_parts(parts)


def decode_instance(
    instance: Any,
    params: PreprocessParams,
    limits: ServingLimits,
    where: str,
    budget: SampleBudget | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """``[K, C, T]`` rows (K windows, 1 for a fixed length) and the transform's info."""
    budget = budget or SampleBudget(limits.max_samples)
    if isinstance(instance, dict):
        if "wfdb" in instance:
            record = wfdb_record(instance["wfdb"], f"{where}.wfdb", budget)
            return transform(record, params, limits, where, f"{where}.wfdb")
        if "signal" in instance:
            record = raw_record(instance, where, budget)
            return transform(record, params, limits, where, f"{where}.signal")
        raise RequestError(
            f"{where}: an object needs 'signal' (with 'fs' and 'leads') or 'wfdb'; "
            f"got keys {sorted(instance)[:8]}"
        )
    budget.take(nested_size(instance), where)
    return tensor_rows(instance, params, limits, where)[None], {"kind": "tensor"}


def nested_size(data: Any) -> int:
    """Values in a nested list as its first elements' lengths say (cheap, before any copy)."""
    n = 1
    while isinstance(data, list | tuple | np.ndarray):
        if not len(data):
            return 0
        n *= len(data)
        data = data[0]
    return n


def tensor_rows(
    data: Any, params: PreprocessParams, limits: ServingLimits, where: str
) -> np.ndarray:
    """A preprocessed ``[C, T]`` tensor as float32, or :class:`RequestError`."""
    want = (len(params.channels), params.n_times)
    x = numeric_array(data, where)
    if x.shape != want:
        raise RequestError(
            f"{where}: a preprocessed tensor must have shape [{want[0]}, {want[1]}] "
            f"(channels, samples at {params.fs:g} Hz); got {list(x.shape)}"
        )
    return bounded(finite(x, where), limits.max_tensor_abs, where, "", "max_tensor_abs")


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


def bounded(x: np.ndarray, bound: float, where: str, unit: str, option: str) -> np.ndarray:
    """``x`` unchanged, or :class:`RequestError` when a ``|value|`` exceeds ``bound`` (NaN ok)."""
    with np.errstate(invalid="ignore"):
        over = np.abs(x) > bound
    n = int(np.count_nonzero(over))
    if n:
        largest = float(np.nanmax(np.abs(x)))
        raise RequestError(
            f"{where}: {n} value(s) beyond ±{bound:g}{unit} (largest {largest:.3g}{unit}); "
            f"check the units or the scaling (ecgflow serve --limit {option}=X)"
        )
    return x


def raw_record(instance: dict[str, Any], where: str, budget: SampleBudget) -> ECGRecord:
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
    budget.take(nested_size(instance["signal"]), f"{where}.signal")
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
    """Distinct standard lead names (``avr`` → ``aVR``), or :class:`RequestError`.

    Linear in the request: the count is checked before any name is looked at.
    """
    if isinstance(value, str):
        value = [part for part in value.split(",", len(STANDARD_LEADS)) if part.strip()]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise RequestError(f"{where}: a list of lead names expected, got {value!r:.80}")
    if len(value) > len(STANDARD_LEADS):
        raise RequestError(
            f"{where}: {len(value)} leads, at most {len(STANDARD_LEADS)} distinct standard leads"
        )
    names = [normalise_lead_name(v) for v in value]
    unknown = [n for n in names if n not in STANDARD_LEADS]
    if unknown:
        raise RequestError(
            f"{where}: unknown lead(s) {unknown}; known: {', '.join(STANDARD_LEADS)}"
        )
    duplicates = sorted(n for n, count in Counter(names).items() if count > 1)
    if duplicates:
        raise RequestError(f"{where}: duplicate lead(s) {duplicates}")
    return names


def wfdb_record(payload: Any, where: str, budget: SampleBudget) -> ECGRecord:
    """An :class:`ECGRecord` from base64 WFDB files (header + signal file(s)).

    The header's leads × samples (or, without a length, twice the files' bytes) count against
    ``budget`` before anything is decoded; the decoded record counts its true size.
    """
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
    declared = header.n_sig * header.sig_len if header.sig_len else None
    estimate = declared if declared is not None else 2 * sum(map(len, contents.values()))
    budget.take(estimate, f"{where}.header")
    with tempfile.TemporaryDirectory(prefix="ecgflow-req-") as tmp:
        folder = Path(tmp)
        (folder / f"{name}.hea").write_text(header_text, encoding="utf-8")
        for filename, content in contents.items():
            (folder / filename).write_bytes(content)
        try:
            record = read_wfdb(folder / f"{name}.hea", record_id=where)
            record.validate(where)
            if record.signal.size > estimate:
                budget.take(record.signal.size - estimate, f"{where}.signal")
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
    record: ECGRecord,
    params: PreprocessParams,
    limits: ServingLimits,
    where: str,
    signal_where: str | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The preprocess transform on a raw record (in mV), within the limits."""
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
    bounded(
        record.signal, limits.max_amplitude_mv, signal_where or f"{where}.signal", " mV",
        "max_amplitude_mv",
    )  # fmt: skip
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
