"""Read signals stored as CSV tables, NumPy arrays and serial-port logs.

These formats carry no sampling frequency (except a serial log's time column), so ``fs`` is
an argument; values are taken as mV unless ``units`` (or, for serial logs, ``adc_gain``) say
otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from ecgflow.errors import RecordError
from ecgflow.io.record import STANDARD_LEADS, ECGRecord, millivolt_factor

#: Names of a leading time column in a multi-lead CSV (compared case-insensitively).
TIME_COLUMNS = frozenset({"time", "t", "timestamp", "ms"})
#: Largest share of garbled lines a serial log may contain.
MAX_GARBLED_FRACTION = 0.10
#: Most leads an NPY array may have for ``[samples, leads]`` to be recognised and transposed.
MAX_NPY_LEADS = 16

_SEPARATORS = re.compile(r"[,;\s]+")


def default_leads(n: int) -> list[str]:
    """The twelve standard leads for 12 signals, else ``ch1`` … ``chN``."""
    return list(STANDARD_LEADS) if n == len(STANDARD_LEADS) else [f"ch{i + 1}" for i in range(n)]


def _build(
    path: Path,
    signal: np.ndarray,
    fs: float | None,
    leads: Sequence[str] | None,
    units: str | Sequence[str] | None,
    record_id: str | None,
    metadata: dict[str, object],
) -> ECGRecord:
    """Check fs, lead names and units, convert voltages to mV, and make the record."""
    if fs is None:
        raise RecordError(f"{path}: sampling frequency unknown: pass the `fs` option (Hz)")
    n = signal.shape[0]
    names = list(leads) if leads is not None else default_leads(n)
    if len(names) != n:
        raise RecordError(f"{path}: {len(names)} lead names given for {n} signals")
    unit_list = [units] * n if units is None or isinstance(units, str) else list(units)
    if len(unit_list) != n:
        raise RecordError(f"{path}: {len(unit_list)} units given for {n} signals")
    out_units = []
    for row, unit in zip(signal, unit_list, strict=True):
        factor = millivolt_factor(unit)
        if factor is not None and factor != 1.0:
            row *= factor
        out_units.append("mV" if factor is not None else str(unit))
    return ECGRecord(
        signal=signal,
        fs=float(fs),
        leads=names,
        units=out_units,
        record_id=record_id or path.stem,
        metadata=metadata,
    )


def read_csv_leads(
    path: Path,
    *,
    fs: float | None,
    leads: Sequence[str] | None = None,
    units: str | Sequence[str] | None = None,
    record_id: str | None = None,
) -> ECGRecord:
    """Read a CSV with one column per lead (header row of lead names; optional time column).

    A file whose first row is numeric has no header; its leads get :func:`default_leads`
    names unless ``leads`` is given. Non-numeric cells become NaN (missing samples).
    """
    import pandas as pd  # CSV records only: pandas takes ~0.3 s to import

    has_header = sniff_header(path)
    try:
        table = pd.read_csv(path, header=0 if has_header else None, skip_blank_lines=True)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise RecordError(f"{path}: cannot parse CSV: {exc}") from None
    columns = [str(c).strip() for c in table.columns]
    time_column = has_header and bool(columns) and columns[0].lower() in TIME_COLUMNS
    if time_column:
        table, columns = table.iloc[:, 1:], columns[1:]
    if not columns:
        raise RecordError(f"{path}: CSV has no signal columns")
    values = table.apply(pd.to_numeric, errors="coerce").to_numpy(np.float32).T
    if not np.isfinite(values).any():
        raise RecordError(f"{path}: CSV has no numeric rows")
    names = leads if leads is not None else (columns if has_header else None)
    meta: dict[str, object] = {"format": "csv", "time_column_dropped": time_column}
    return _build(path, np.ascontiguousarray(values), fs, names, units, record_id, meta)


def read_npy(
    path: Path,
    *,
    fs: float | None,
    leads: Sequence[str] | None = None,
    units: str | Sequence[str] | None = None,
    record_id: str | None = None,
) -> ECGRecord:
    """Read a ``.npy`` array ``[leads, samples]`` (or ``[samples, leads]``, transposed)."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise RecordError(f"{path}: cannot load NumPy array: {exc}") from None
    if array.ndim != 2:
        raise RecordError(f"{path}: expected a 2-D array [leads, samples], got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise RecordError(f"{path}: expected a numeric array, got dtype {array.dtype}")
    transposed = array.shape[0] > array.shape[1] and array.shape[1] <= MAX_NPY_LEADS
    signal = np.array(array.T if transposed else array, dtype=np.float32, order="C")
    meta: dict[str, object] = {"format": "npy", "transposed": transposed}
    return _build(path, signal, fs, leads, units, record_id, meta)


def read_serial_csv(
    path: Path,
    *,
    fs: float | None = None,
    adc_gain: float | None = None,
    adc_zero: float = 0.0,
    lead: str = "I",
    record_id: str | None = None,
) -> ECGRecord:
    """Read a single-lead log written by a microcontroller over a serial port.

    Each line holds ``value`` or ``time,value`` (also ``;``, tab or space separated). Blank
    and garbled lines are skipped and counted; more than 10 % garbled lines, or fewer than two
    numeric rows, is an error. ``fs`` defaults to the median step of the time column (in ms,
    or s / µs when the step says so). Values are ADC counts when ``adc_gain`` (counts per mV)
    is given — ``mV = (value - adc_zero) / adc_gain`` — and mV otherwise.
    """
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise RecordError(f"{path}: cannot read serial log: {exc}") from None
    rows, blank, garbled, width = _numeric_rows(text)
    if garbled > MAX_GARBLED_FRACTION * (len(rows) + garbled):
        raise RecordError(
            f"{path}: serial log is too garbled: {garbled} of {len(rows) + garbled} non-blank "
            f"lines are not numeric (more than {MAX_GARBLED_FRACTION:.0%})"
        )
    if len(rows) < 2:
        raise RecordError(f"{path}: serial log has {len(rows)} numeric rows, need at least 2")
    data = np.array(rows, dtype=np.float64)
    time_unit = None
    if width == 2 and fs is None:
        fs, time_unit = _fs_from_time(path, data[:, 0])
    values = data[:, -1]
    if adc_gain is not None:
        if adc_gain == 0 or not np.isfinite(adc_gain):
            raise RecordError(f"{path}: adc_gain must be a non-zero number, got {adc_gain}")
        values = (values - adc_zero) / adc_gain
    meta: dict[str, object] = {
        "format": "serial-csv",
        "skipped_lines": blank + garbled,
        "garbled_lines": garbled,
        "blank_lines": blank,
        "time_column": width == 2,
        "time_unit": time_unit,
        "adc_gain": adc_gain,
        "adc_zero": adc_zero if adc_gain is not None else None,
    }
    return _build(path, values[np.newaxis].astype(np.float32), fs, [lead], "mV", record_id, meta)


def _numeric_rows(text: str) -> tuple[list[list[float]], int, int, int]:
    """Numeric rows of the log's majority width (1 or 2), and blank / garbled line counts."""
    parsed: list[list[float] | None] = []
    blank = 0
    for line in text.splitlines():
        fields = [f for f in _SEPARATORS.split(line.strip()) if f]
        if not fields:
            blank += 1
            continue
        try:
            parsed.append([float(f) for f in fields] if len(fields) <= 2 else None)
        except ValueError:
            parsed.append(None)
    widths = [len(p) for p in parsed if p is not None]
    width = max((1, 2), key=widths.count) if widths else 1
    rows = [p for p in parsed if p is not None and len(p) == width and np.isfinite(p).all()]
    # A non-numeric first line is a header ("time,value"), not garbage.
    header = 1 if parsed and parsed[0] is None else 0
    return rows, blank + header, len(parsed) - len(rows) - header, width


def _fs_from_time(path: Path, times: np.ndarray) -> tuple[float, str]:
    """Sampling frequency from the median time step; the unit is guessed from its size."""
    step = float(np.median(np.diff(times)))
    if not step > 0:
        raise RecordError(
            f"{path}: time column is not increasing (median step {step}); pass the `fs` option"
        )
    # ECG is sampled at 50 Hz–10 kHz: a step below 0.5 is seconds, 100 or more microseconds.
    unit, scale = ("s", 1.0) if step < 0.5 else ("ms", 1e3) if step < 100 else ("us", 1e6)
    return scale / step, unit


def sniff_header(path: Path) -> bool:
    """Whether the first non-blank line of a CSV holds a non-numeric field (a header row)."""
    first = _first_line(path)
    return any(not _is_number(f) for f in first.split(","))


def sniff_csv(path: Path) -> Literal["leads", "serial"]:
    """``"leads"`` for a multi-lead table, ``"serial"`` for a serial-port log.

    A header row (lead names or any non-numeric names) means a multi-lead table; one or two
    numeric columns without a header mean a serial log; more numeric columns a headerless
    multi-lead table.
    """
    first = _first_line(path)
    fields = [f for f in _SEPARATORS.split(first.strip()) if f]
    if any(not _is_number(f) for f in fields):
        return "leads"
    return "serial" if len(fields) <= 2 else "leads"


def _first_line(path: Path) -> str:
    """The first non-blank line of a text file (empty if none)."""
    try:
        with path.open("r", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.strip():
                    return line.strip()
    except OSError as exc:
        raise RecordError(f"{path}: cannot read CSV: {exc}") from None
    raise RecordError(f"{path}: CSV file is empty")


def _is_number(text: str) -> bool:
    """Whether ``text`` parses as a float."""
    try:
        float(text)
    except ValueError:
        return False
    return True
