"""Read any supported record file: pick the reader by suffix and enforce the error contract.

Every failure raises :class:`~ecgflow.errors.RecordError` whose message starts with the
file path and says what is wrong; every record returned has passed
:meth:`ECGRecord.validate`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ecgflow.errors import EcgflowError, RecordError
from ecgflow.io.edf import read_edf
from ecgflow.io.record import ECGRecord
from ecgflow.io.tabular import read_csv_leads, read_npy, read_serial_csv, sniff_csv
from ecgflow.io.wfdb_reader import read_wfdb, wfdb_header_path
from ecgflow.plugins import Registry

#: A reader: (path, fs, leads, record_id, options) → the record.
Reader = Callable[[Path, float | None, Sequence[str] | None, str | None, dict[str, Any]], ECGRecord]
#: suffix → reader. A WFDB record is found by its header: ``read_record`` also accepts its
#: ``.dat``/``.mat`` signal file or its base path.
READERS: Registry[Reader] = Registry("record suffix")


@READERS.register(".hea")
def _wfdb(path: Path, fs: Any, leads: Any, record_id: str | None, options: Any) -> ECGRecord:
    return read_wfdb(path, record_id=record_id)


@READERS.register(".edf")
def _edf(path: Path, fs: Any, leads: Any, record_id: str | None, options: Any) -> ECGRecord:
    return read_edf(path, record_id=record_id)


@READERS.register(".csv")
def _csv(
    path: Path,
    fs: float | None,
    leads: Sequence[str] | None,
    record_id: str | None,
    options: dict[str, Any],
) -> ECGRecord:
    if (options.get("csv_kind") or sniff_csv(path)) == "serial":
        return read_serial_csv(
            path,
            fs=fs,
            adc_gain=options.get("adc_gain"),
            adc_zero=options.get("adc_zero", 0.0),
            lead=leads[0] if leads else "I",
            record_id=record_id,
        )
    units = options.get("units")
    return read_csv_leads(path, fs=fs, leads=leads, units=units, record_id=record_id)


@READERS.register(".npy")
def _npy(
    path: Path,
    fs: float | None,
    leads: Sequence[str] | None,
    record_id: str | None,
    options: dict[str, Any],
) -> ECGRecord:
    return read_npy(path, fs=fs, leads=leads, units=options.get("units"), record_id=record_id)


#: Suffixes of files that each stand for one record.
RECORD_SUFFIXES: tuple[str, ...] = READERS.names()

#: Reader options accepted by :func:`read_record`; each reader ignores the ones it lacks.
#: ``units`` (CSV/NPY unit, one or per lead), ``csv_kind`` (``"leads"``/``"serial"``,
#: overriding :func:`sniff_csv`), ``adc_gain``/``adc_zero`` (serial logs, counts per mV).
OPTIONS = frozenset({"units", "csv_kind", "adc_gain", "adc_zero"})


def read_record(
    path: Path,
    *,
    fs: float | None = None,
    leads: list[str] | None = None,
    record_id: str | None = None,
    **options: Any,
) -> ECGRecord:
    """Read one record, choosing the reader by suffix, and validate it.

    ``.hea`` (or a WFDB base path / ``.dat`` / ``.mat`` with a ``.hea`` beside it) → WFDB;
    ``.edf`` → EDF/EDF+; ``.csv`` → multi-lead table or serial log (:func:`sniff_csv`);
    ``.npy`` → NumPy array. ``fs`` and ``leads`` apply to the formats that do not carry them
    (CSV, NPY, serial logs: ``leads[0]`` names the lead); WFDB and EDF use their own.
    ``record_id`` defaults to the file name without suffix.

    Raises:
        RecordError: the record cannot be read or is unusable; the message starts with
            ``path``.
        EcgflowError: an option name is unknown (a configuration mistake, not the record's).

    """
    unknown = set(options) - OPTIONS
    if unknown:
        raise EcgflowError(f"unknown reader option(s) {sorted(unknown)}; known: {sorted(OPTIONS)}")
    if options.get("csv_kind") not in (None, "leads", "serial"):
        raise EcgflowError(f"csv_kind must be 'leads' or 'serial', got {options['csv_kind']!r}")
    path = Path(path)
    try:
        record = _dispatch(path, fs, leads, record_id, options)
    except EcgflowError:
        raise
    except Exception as exc:  # the contract: no bare library error escapes
        raise RecordError(f"{path}: cannot read record: {type(exc).__name__}: {exc}") from exc
    record.validate(str(path))
    return record


def _dispatch(
    path: Path,
    fs: float | None,
    leads: Sequence[str] | None,
    record_id: str | None,
    options: dict[str, Any],
) -> ECGRecord:
    """Call the reader that fits ``path``."""
    suffix = path.suffix.lower()
    if suffix in READERS and suffix != ".hea":
        if not path.is_file():
            raise RecordError(f"{path}: file not found")
        return READERS.get(suffix)(path, fs, leads, record_id, options)
    header = wfdb_header_path(path)
    if suffix == ".hea" or header.is_file():
        return READERS.get(".hea")(path, fs, leads, record_id, options)
    if suffix in {".mat", ".dat"}:
        raise RecordError(f"{path}: no WFDB header {header.name} beside this signal file")
    if not path.exists():
        raise RecordError(f"{path}: no such file or WFDB record (no {header.name})")
    raise RecordError(
        f"{path}: unsupported record type {suffix or '(no suffix)'!r}; "
        f"expected one of {', '.join(RECORD_SUFFIXES)} or a WFDB record"
    )
