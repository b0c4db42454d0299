"""Read EDF and EDF+ files into :class:`ECGRecord`.

wfdb's ``read_edf`` (4.3.1) cannot be used: it takes one frame rate as the gcd of all signal
rates, so an EDF+ file whose annotation signal has another rate fails with a shape error
(``wfdb-formats/test_generator_2.edf``) and mixed-rate files are averaged wrongly. The EDF
header is a fixed-width ASCII table, parsed here; numpy reads the 16-bit samples in one pass.
Rates are merged as for WFDB (:func:`~ecgflow.io.wfdb_reader.to_common_rate`): one data record
plays the part of a WFDB frame.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from ecgflow.errors import RecordError
from ecgflow.io.record import ECGRecord, millivolt_factor
from ecgflow.io.wfdb_reader import ANNOTATION_SIGNALS, to_common_rate

#: Per-signal header fields and their widths, in file order (each field for all signals).
_SIGNAL_FIELDS = (
    ("label", 16), ("transducer", 80), ("units", 8), ("phys_min", 8), ("phys_max", 8),
    ("dig_min", 8), ("dig_max", 8), ("prefilter", 80), ("n_samples", 8), ("reserved", 32),
)  # fmt: skip


def read_edf(path: Path, *, record_id: str | None = None) -> ECGRecord:
    """Read an EDF/EDF+ (continuous) file; voltages in mV, annotation signals dropped."""
    try:
        with path.open("rb") as f:
            fixed = f.read(256)
            if len(fixed) < 256:
                raise RecordError(f"{path}: not an EDF file: only {len(fixed)} bytes")
            if fixed[1:8] == b"BIOSEMI":
                raise RecordError(f"{path}: BDF (24-bit) files are not supported")
            if fixed[:8] != b"0       ":
                raise RecordError(f"{path}: not an EDF file (version field {fixed[:8]!r})")
            head = fixed.decode("latin-1")
            n_sig = _integer(path, head[252:256], "number of signals")
            if n_sig < 1:
                raise RecordError(f"{path}: EDF header declares no signals")
            block = f.read(256 * n_sig).decode("latin-1")
            if len(block) < 256 * n_sig:
                raise RecordError(f"{path}: truncated EDF header ({n_sig} signals declared)")
            header_size = _integer(path, head[184:192], "header size")
            if header_size != 256 * (n_sig + 1):
                raise RecordError(
                    f"{path}: malformed EDF header: header size {header_size} bytes, "
                    f"expected {256 * (n_sig + 1)} for {n_sig} signals"
                )
            raw = f.read()
            data = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2")
    except OSError as exc:
        raise RecordError(f"{path}: cannot read EDF file: {exc}") from None
    fields = _signal_fields(block, n_sig)
    variant = head[192:236].strip()[:5] if head[192:196] == "EDF+" else "EDF"
    if variant == "EDF+D":
        raise RecordError(f"{path}: interrupted EDF+D recordings are not supported")
    duration = _real(path, head[244:252], "data record duration")
    if duration <= 0:
        raise RecordError(f"{path}: EDF data record duration must be > 0 s, got {duration}")
    signal, per_record = _samples(path, head, fields, data)
    keep = [i for i, name in enumerate(fields["label"]) if name not in ANNOTATION_SIGNALS]
    units = [fields["units"][i] for i in keep]
    factors = [millivolt_factor(u) for u in units]
    channels = [s * (f or 1.0) for s, f in zip(signal, factors, strict=True)]
    merged, per_frame = to_common_rate(channels, [per_record[i] for i in keep])
    patient = head[8:88].split()
    return ECGRecord(
        signal=merged,
        fs=per_frame / duration,
        leads=[fields["label"][i] for i in keep],
        units=[u if f is None else "mV" for u, f in zip(units, factors, strict=True)],
        record_id=record_id or path.stem,
        patient_id=patient[0] if variant != "EDF" and patient and patient[0] != "X" else None,
        metadata={
            "format": "edf",
            "edf_variant": variant,
            "base_date": _date(head[168:176]),
            "base_time": _time(head[176:184]),
            "recording": head[88:168].strip(),
            "comments": [],
            "sig_name": [fields["label"][i] for i in keep],
            "units_in_file": units,
            "transducer": [fields["transducer"][i] for i in keep],
            "prefilter": [fields["prefilter"][i] for i in keep],
            "samples_per_data_record": [per_record[i] for i in keep],
            "data_record_duration_s": duration,
        },
    )


def _signal_fields(block: str, n_sig: int) -> dict[str, list[str]]:
    """Split the per-signal part of the header into lists of stripped strings."""
    fields, offset = {}, 0
    for name, width in _SIGNAL_FIELDS:
        fields[name] = [
            block[offset + i * width : offset + (i + 1) * width].strip() for i in range(n_sig)
        ]
        offset += width * n_sig
    return fields


def _samples(
    path: Path, head: str, fields: dict[str, list[str]], data: np.ndarray
) -> tuple[list[np.ndarray], list[int]]:
    """Physical samples of the signals that are not EDF+ annotations, and samples per record."""
    per_record = [_integer(path, v, "samples per data record") for v in fields["n_samples"]]
    for label, n in zip(fields["label"], per_record, strict=True):
        if n < 0 or (n == 0 and label not in ANNOTATION_SIGNALS):
            raise RecordError(f"{path}: signal {label!r} has {n} samples per data record")
    record_size = sum(per_record)
    n_records = _integer(path, head[236:244], "number of data records")
    if n_records == -1:  # unknown (recording interrupted): use what the file holds
        n_records = len(data) // max(record_size, 1)
    if n_records <= 0 or record_size <= 0:
        raise RecordError(f"{path}: zero-length signal (no EDF data records)")
    if len(data) < n_records * record_size:
        raise RecordError(
            f"{path}: truncated EDF file: {len(data) * 2} bytes of samples, the header implies "
            f"{n_records * record_size * 2} ({n_records} data records × {record_size} samples)"
        )
    blocks = data[: n_records * record_size].reshape(n_records, record_size)
    starts = np.cumsum([0, *per_record])
    signal = []
    for i, label in enumerate(fields["label"]):
        if label in ANNOTATION_SIGNALS:
            continue
        p_min, p_max, d_min, d_max = (
            _real(path, fields[key][i], f"{key} of signal {label!r}")
            for key in ("phys_min", "phys_max", "dig_min", "dig_max")
        )
        if d_max == d_min:
            raise RecordError(f"{path}: signal {label!r} has an empty digital range")
        digital = blocks[:, starts[i] : starts[i + 1]].reshape(-1).astype(np.float64)
        signal.append((digital - d_min) * ((p_max - p_min) / (d_max - d_min)) + p_min)
    if not signal:
        raise RecordError(f"{path}: EDF file holds only annotation signals, no samples")
    return signal, per_record


def _integer(path: Path, text: str, what: str) -> int:
    """Parse an integer header field or raise :class:`RecordError` naming it."""
    try:
        return int(text.strip())
    except ValueError:
        raise RecordError(
            f"{path}: malformed EDF header: {what} {text!r} is not an integer"
        ) from None


def _real(path: Path, text: str, what: str) -> float:
    """Parse a numeric header field or raise :class:`RecordError` naming it."""
    try:
        return float(text.strip())
    except ValueError:
        raise RecordError(
            f"{path}: malformed EDF header: {what} {text!r} is not a number"
        ) from None


def _date(text: str) -> str | None:
    """``dd.mm.yy`` as an ISO date (years 85–99 → 19xx, else 20xx), None if unreadable."""
    try:
        day, month, year = (int(p) for p in text.split("."))
        return dt.date(year + (1900 if year >= 85 else 2000), month, day).isoformat()
    except ValueError:
        return None


def _time(text: str) -> str | None:
    """``hh.mm.ss`` as an ISO time, None if unreadable."""
    try:
        return dt.time(*(int(p) for p in text.split("."))).isoformat()
    except (TypeError, ValueError):
        return None
