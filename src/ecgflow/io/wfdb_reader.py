"""Read WFDB records into :class:`ECGRecord`.

The header is parsed here, strictly: wfdb's own parser silently reads a non-numeric
frequency as 250 Hz or an unreadable gain as 200, decodes headers as ASCII (``µV`` becomes
``V``) and spends ~4 ms per header on pandas look-ups. The samples are decoded by
:mod:`ecgflow.io.wfdb_decode` (formats 8/16/24/32/61/80/160/212/310/311, byte offsets such as
the CinC ``.mat`` files' ``16x1+24``, skew), each file read once; FLAC (508/516/524) is left to
``wfdb.rdrecord``, the only use of wfdb (imported then: it costs ~0.25 s of start-up, pandas
included). Multi-segment records (fixed and variable layout) are joined here, segment by
segment, so that each segment's gain and unit apply to its own samples.

Multi-frequency records are returned at the highest rate all their signals share (see
:func:`to_common_rate`): losslessly when every signal has the same samples per frame, and at
the frame rate (wfdb's ``smooth_frames=True``) when the rates have no common multiple.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecgflow.errors import RecordError
from ecgflow.io.record import ECGRecord, millivolt_factor
from ecgflow.io.wfdb_decode import (
    FLAC_FORMATS,
    FORMATS,
    SUPPORTED_FORMATS,
    decode_file,
    invalid_value,
    read_with_wfdb,
    required_bytes,
)

#: Signal descriptions that hold EDF+ annotations rather than samples (edf2mit output).
ANNOTATION_SIGNALS = frozenset({"EDF Annotations"})

_NAME = re.compile(r"([^/\s]+)(?:/(\d+))?")
_FMT = re.compile(r"(\d+)(?:x(\d+))?(?::(\d+))?(?:\+(\d+))?")
_GAIN = re.compile(r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?:\((-?\d+)\))?(?:/(\S*))?")
_INT = re.compile(r"-?\d+")
_TIME = re.compile(r"\d{1,2}(?::\d{1,2}){0,2}(?:\.\d+)?")
_NULL = "~"  # a null signal file / null segment


@dataclass(frozen=True, slots=True)
class SignalSpec:
    """One signal line of a WFDB header (defaults filled in as WFDB defines them)."""

    file_name: str
    fmt: str
    samps_per_frame: int
    skew: int
    byte_offset: int
    adc_gain: float
    baseline: int
    units: str
    adc_res: int | None
    adc_zero: int | None
    init_value: int | None
    sig_name: str


@dataclass(frozen=True, slots=True)
class WfdbHeader:
    """A parsed WFDB header: single-segment (``signals``) or multi-segment (``segments``)."""

    record_name: str
    n_sig: int
    fs: float
    sig_len: int | None
    base_time: str | None
    base_date: str | None
    signals: tuple[SignalSpec, ...]
    segments: tuple[tuple[str, int], ...] | None
    comments: tuple[str, ...]


def _header_lines(text: str) -> tuple[list[str], list[str]]:
    """Non-empty lines of a header, split into (record/signal lines, ``#`` comment lines)."""
    lines, comments = [], []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#"):
            comments.append(line)
        elif line:
            lines.append(line)
    return lines, comments


def _base_time(text: str) -> dt.time:
    """A WFDB base time: ``SS``, ``MM:SS`` or ``HH:MM:SS``, each with optional ``.ffffff``."""
    fmt = ("%S", "%M:%S", "%H:%M:%S")[text.count(":")]
    return dt.datetime.strptime(text, fmt + (".%f" if "." in text else "")).time()


def parse_header(text: str, source: str) -> WfdbHeader:
    """Parse WFDB header text; raise :class:`RecordError` starting with ``source`` if malformed."""
    lines, comment_lines = _header_lines(text)
    if not lines:
        raise RecordError(f"{source}: malformed WFDB header: no record line")
    name, n_seg, n_sig, fs, sig_len, base_time, base_date = _parse_record_line(lines[0], source)
    body = lines[1:]
    expected = n_sig if n_seg is None else n_seg
    what = "signal" if n_seg is None else "segment"
    if len(body) != expected:
        raise RecordError(
            f"{source}: malformed WFDB header: record line declares {expected} {what}s "
            f"but {len(body)} {what} lines follow"
        )
    signals: tuple[SignalSpec, ...] = ()
    segments = None
    if n_seg is None:
        signals = tuple(_parse_signal_line(line, i + 1, source) for i, line in enumerate(body))
    else:
        segments = tuple(_parse_segment_line(line, i + 1, source) for i, line in enumerate(body))
    comments = tuple(c.lstrip("#").strip() for c in comment_lines)
    return WfdbHeader(name, n_sig, fs, sig_len, base_time, base_date, signals, segments, comments)


def _parse_record_line(
    line: str, source: str
) -> tuple[str, int | None, int, float, int | None, str | None, str | None]:
    """Fields of the record line: name, n_seg, n_sig, fs, sig_len, base time, base date."""
    tokens = line.split()
    name_match = _NAME.fullmatch(tokens[0])
    if len(tokens) < 2 or name_match is None or not tokens[1].isdecimal() or len(tokens) > 6:
        raise RecordError(
            f"{source}: malformed WFDB header: record line {line[:80]!r} is not "
            "'NAME[/SEGMENTS] N_SIGNALS [FS [N_SAMPLES [TIME [DATE]]]]'"
        )
    n_seg = int(name_match[2]) if name_match[2] else None
    fs = 250.0  # the WFDB default when the field is absent
    if len(tokens) > 2:
        fs_text = tokens[2].split("/", 1)[0]
        try:
            fs = float(fs_text)
        except ValueError:
            raise RecordError(
                f"{source}: malformed WFDB header: non-numeric sampling frequency {fs_text!r}"
            ) from None
        if not math.isfinite(fs) or fs <= 0:
            raise RecordError(f"{source}: sampling frequency must be > 0 Hz, got {fs_text}")
    sig_len = None
    if len(tokens) > 3:
        if not tokens[3].isdecimal():
            raise RecordError(
                f"{source}: malformed WFDB header: number of samples {tokens[3]!r} "
                "is not a non-negative integer"
            )
        sig_len = int(tokens[3])
    if len(tokens) > 4 and not _TIME.fullmatch(tokens[4]):
        raise RecordError(f"{source}: malformed WFDB header: invalid base time {tokens[4]!r}")
    try:
        base_time = _base_time(tokens[4]).isoformat() if len(tokens) > 4 else None
        base_date = (
            dt.datetime.strptime(tokens[5], "%d/%m/%Y").date().isoformat()
            if len(tokens) > 5
            else None
        )
    except ValueError:
        raise RecordError(
            f"{source}: malformed WFDB header: invalid base time/date in {line[:80]!r}"
        ) from None
    return name_match[1], n_seg, int(tokens[1]), fs, sig_len, base_time, base_date


def _parse_signal_line(line: str, number: int, source: str) -> SignalSpec:
    """Parse one signal line (``number`` counts from 1 for messages)."""
    parts = line.split(maxsplit=8)
    fmt = _FMT.fullmatch(parts[1]) if len(parts) > 1 else None
    gain = _GAIN.fullmatch(parts[2]) if len(parts) > 2 else None
    ints = parts[3:8]
    if fmt is None or (len(parts) > 2 and gain is None) or not all(map(_INT.fullmatch, ints)):
        raise RecordError(
            f"{source}: malformed WFDB header: signal line {number} {line[:80]!r} is not "
            "'FILE FORMAT[xSPF][:SKEW][+OFFSET] [GAIN[(BASELINE)][/UNITS] RES ZERO INIT "
            "CHECKSUM BLOCKSIZE DESCRIPTION]'"
        )
    if fmt[1] != "0" and fmt[1] not in SUPPORTED_FORMATS:
        raise RecordError(f"{source}: signal {number} has unsupported WFDB format {fmt[1]}")
    if "/" in parts[0] or "\\" in parts[0] or parts[0] in {".", ".."}:
        raise RecordError(
            f"{source}: signal {number} file name {parts[0]!r} is not a plain file name "
            "in the record's folder"
        )
    adc_res, adc_zero, init_value = ([int(v) for v in ints] + [None, None, None])[:3]
    adc_gain = float(gain[1]) if gain else 200.0
    samps_per_frame = int(fmt[2] or 1)
    if not math.isfinite(adc_gain) or samps_per_frame < 1:
        raise RecordError(
            f"{source}: signal {number} has an invalid gain ({gain[1] if gain else ''}) "
            f"or samples per frame ({samps_per_frame})"
        )
    # WFDB: a missing baseline defaults to the ADC zero
    baseline = int(gain[2]) if gain and gain[2] else adc_zero or 0
    return SignalSpec(
        file_name=parts[0],
        fmt=fmt[1],
        samps_per_frame=samps_per_frame,
        skew=int(fmt[3] or 0),
        byte_offset=int(fmt[4] or 0),
        adc_gain=adc_gain if adc_gain != 0 else 200.0,  # WFDB: a gain of 0 means 200
        baseline=baseline,
        units=(gain[3] if gain and gain[3] else "mV"),
        adc_res=adc_res,
        adc_zero=adc_zero,
        init_value=init_value,
        sig_name=parts[8].strip() if len(parts) > 8 else f"ch{number}",
    )


def _parse_segment_line(line: str, number: int, source: str) -> tuple[str, int]:
    """Parse one segment line into (segment name, number of samples)."""
    parts = line.split()
    if len(parts) != 2 or not parts[1].isdecimal() or "/" in parts[0] or "\\" in parts[0]:
        raise RecordError(
            f"{source}: malformed WFDB header: segment line {number} {line[:80]!r} "
            "is not 'SEGMENT_NAME N_SAMPLES'"
        )
    return parts[0], int(parts[1])


def read_header(header_path: Path) -> WfdbHeader:
    """Read and parse a ``.hea`` file (UTF-8, falling back to Latin-1 for ``µ``/``°``)."""
    return parse_header(_read_header_text(header_path), str(header_path))


def _read_header_text(header_path: Path) -> str:
    """The decoded text of a header file; :class:`RecordError` if missing or binary."""
    try:
        raw = header_path.read_bytes()
    except FileNotFoundError:
        raise RecordError(f"{header_path}: WFDB header file not found") from None
    except OSError as exc:
        raise RecordError(f"{header_path}: cannot read WFDB header: {exc}") from None
    if b"\0" in raw:
        raise RecordError(f"{header_path}: malformed WFDB header: binary content (NUL bytes)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def referenced_files(header_text: str, record_name: str) -> list[str]:
    """File names a WFDB header references, relative to its folder.

    Single-segment: the unique signal files in order. Multi-segment: the segment headers
    (``<segment>.hea``, null ``~`` segments skipped); the caller recurses into those.
    """
    header = parse_header(header_text, record_name)
    if header.segments is not None:
        return [f"{name}.hea" for name, _ in header.segments if name != _NULL]
    return list(dict.fromkeys(s.file_name for s in header.signals if s.file_name != _NULL))


def wfdb_record_files(header_path: Path) -> list[Path]:
    """All files of a local WFDB record: the header first, then signal files and segments.

    Segment headers are followed recursively (each once); files that do not exist are still
    listed, without recursing into them, so that the caller can report them.
    """
    files: dict[Path, None] = {}
    _collect_files(header_path, files)
    return list(files)


def _collect_files(header_path: Path, files: dict[Path, None]) -> None:
    """Add ``header_path`` and, if it exists, the files it references to ``files``."""
    files[header_path] = None
    if not header_path.is_file():
        return
    for name in referenced_files(_read_header_text(header_path), str(header_path)):
        path = header_path.parent / name
        if name.endswith(".hea") and path not in files:  # a segment header
            _collect_files(path, files)
        else:
            files.setdefault(path)


def wfdb_header_path(path: Path) -> Path:
    """The ``.hea`` file of a record given as header, signal file or base path."""
    if path.suffix.lower() == ".hea":
        return path
    if path.suffix.lower() in {".dat", ".mat"}:
        return path.with_suffix(".hea")
    return path.with_name(path.name + ".hea")


def read_wfdb(path: Path, *, record_id: str | None = None) -> ECGRecord:
    """Read a WFDB record (header, signal file or base path) with values in mV.

    Voltage signals are converted to mV (``uV`` → /1000, ``mv`` is mV); other units such as
    ``NU`` or ``mmHg`` are kept with their unit. EDF+ annotation signals are dropped.
    """
    header_path = wfdb_header_path(path)
    header = read_header(header_path)
    if header.segments is None:
        specs, channels = _read_single(header_path, header)
        units = _to_millivolts(channels, [s.units for s in specs])
    else:
        specs, channels, units = _read_multi(header_path, header)
    spf = [s.samps_per_frame for s in specs]
    signal, per_frame = to_common_rate(channels, spf)
    metadata = {
        "format": "wfdb",
        "record_name": header.record_name,
        "base_date": header.base_date,
        "base_time": header.base_time,
        "comments": list(header.comments),
        "sig_name": [s.sig_name for s in specs],
        "units_in_file": [s.units for s in specs],
        "adc_gain": [s.adc_gain for s in specs],
        "fmt": [s.fmt for s in specs],
        "samps_per_frame": spf,
        "n_segments": None if header.segments is None else len(header.segments),
    }
    return ECGRecord(
        signal=signal,
        fs=float(header.fs) * per_frame,
        leads=[s.sig_name for s in specs],
        units=units,
        record_id=record_id or header_path.stem,
        metadata=metadata,
    )


def _check_signal_files(header_path: Path, header: WfdbHeader) -> int:
    """Check that every signal file exists and is long enough; return the signal length."""
    if header.n_sig == 0:
        raise RecordError(f"{header_path}: header declares no signals")
    sig_len = header.sig_len
    for name, indices in _files_with_signals(header.signals).items():
        first = header.signals[indices[0]]
        formats = sorted({header.signals[i].fmt for i in indices})
        if len(formats) > 1:
            raise RecordError(f"{header_path}: signals stored in {name} mix formats {formats}")
        if name == _NULL or first.fmt == "0":
            raise RecordError(
                f"{header_path}: signal {indices[0] + 1} ({first.sig_name}) is a null signal "
                "with no samples (file '~' or format 0)"
            )
        data_path = header_path.parent / name
        try:
            size = os.stat(data_path).st_size
        except FileNotFoundError:
            raise RecordError(
                f"{header_path}: signal file {name} referenced by the header is missing"
            ) from None
        except OSError as exc:
            raise RecordError(f"{header_path}: cannot access signal file {name}: {exc}") from None
        frame = sum(header.signals[i].samps_per_frame for i in indices)
        if sig_len is None:  # WFDB allows omitting the length: infer it from the file size
            sig_len = _infer_sig_len(header_path, first, frame, size)
        if sig_len == 0:
            break
        if first.fmt in FLAC_FORMATS:
            expected = first.byte_offset + 1  # FLAC sizes are not computable
        else:
            expected = first.byte_offset + required_bytes(first.fmt, sig_len * frame)
        if size < expected:
            what = "is empty (0 bytes)" if size == 0 else f"is truncated: {size} bytes"
            raise RecordError(
                f"{data_path}: signal file {what}, but the header implies {expected} bytes "
                f"({sig_len} samples × {frame} per frame, format {first.fmt}"
                f"{f', offset {first.byte_offset}' if first.byte_offset else ''})"
            )
    if not sig_len:
        raise RecordError(f"{header_path}: zero-length signal (0 samples per signal)")
    return sig_len


def _files_with_signals(signals: Sequence[SignalSpec]) -> dict[str, list[int]]:
    """Signal file name → indices of the signals stored in it, in header order."""
    files: dict[str, list[int]] = {}
    for i, spec in enumerate(signals):
        files.setdefault(spec.file_name, []).append(i)
    return files


def _infer_sig_len(header_path: Path, first: SignalSpec, frame: int, size: int) -> int:
    """Number of frames in a signal file whose length the header omits."""
    if first.fmt in FLAC_FORMATS:
        raise RecordError(
            f"{header_path}: the header gives no signal length, which cannot be inferred "
            f"for compressed format {first.fmt}"
        )
    data_bytes = max(0, size - first.byte_offset)
    return int(data_bytes / (FORMATS[first.fmt].bytes_per_sample * frame))


def _read_single(
    header_path: Path, header: WfdbHeader
) -> tuple[list[SignalSpec], list[np.ndarray]]:
    """The non-annotation signals and their samples (header units, NaN where invalid)."""
    sig_len = _check_signal_files(header_path, header)
    specs = header.signals
    keep = [i for i, s in enumerate(specs) if s.sig_name not in ANNOTATION_SIGNALS]
    if not keep:
        raise RecordError(f"{header_path}: record has only annotation signals, no samples")
    digital = read_digital(header_path, header, sig_len, keep)
    channels = []
    for i, samples in zip(keep, digital, strict=True):
        spec = specs[i]
        if len(samples) != sig_len * spec.samps_per_frame:
            raise RecordError(
                f"{header_path}: signal file {spec.file_name} holds {len(samples)} samples of "
                f"signal {spec.sig_name}, the header implies {sig_len * spec.samps_per_frame}"
            )
        physical = (samples.astype(np.float64) - spec.baseline) / spec.adc_gain
        invalid = invalid_value(spec.fmt)
        if invalid is not None:
            physical[samples == invalid] = np.nan
        channels.append(physical)
    return [specs[i] for i in keep], channels


def read_wfdb_digital(path: Path) -> list[np.ndarray]:
    """The digital samples of every signal of a single-segment record, in header order.

    No scaling, no invalid samples made NaN, annotation signals included: what
    ``wfdb.rdrecord(..., physical=False, smooth_frames=False).e_d_signal`` holds. The arrays
    may be read-only views of the file's bytes.
    """
    header_path = wfdb_header_path(path)
    header = read_header(header_path)
    if header.segments is not None:
        raise RecordError(f"{header_path}: multi-segment record: read its segments one by one")
    sig_len = _check_signal_files(header_path, header)
    return read_digital(header_path, header, sig_len, range(header.n_sig))


def read_digital(
    header_path: Path, header: WfdbHeader, sig_len: int, channels: Sequence[int]
) -> list[np.ndarray]:
    """Digital samples of ``channels`` (header indices, in that order) of a checked record.

    Each file holding a wanted signal is decoded once by :func:`decode_file`; FLAC files by
    ``wfdb.rdrecord``. ``sig_len`` comes from :func:`_check_signal_files`.
    """
    specs = header.signals
    wanted = set(channels)
    digital: dict[int, np.ndarray] = {}
    flac = []
    for name, indices in _files_with_signals(specs).items():
        if wanted.isdisjoint(indices):
            continue
        first = specs[indices[0]]
        if first.fmt in FLAC_FORMATS:
            flac.extend(i for i in indices if i in wanted)
            continue
        signals = decode_file(
            header_path.parent / name,
            first.fmt,
            sig_len,
            first.byte_offset,
            [specs[i].samps_per_frame for i in indices],
            [specs[i].skew for i in indices],
            [specs[i].init_value for i in indices],
        )
        digital.update(zip(indices, signals, strict=True))
    if flac:
        try:
            digital.update(zip(flac, read_with_wfdb(header_path, flac), strict=True))
        except Exception as exc:  # wfdb raises many types for undecodable data
            files = ", ".join(dict.fromkeys(specs[i].file_name for i in flac))
            raise RecordError(
                f"{header_path}: cannot decode signal file(s) {files}: {type(exc).__name__}: {exc}"
            ) from exc
    return [digital[i] for i in channels]


def _read_multi(
    header_path: Path, header: WfdbHeader
) -> tuple[list[SignalSpec], list[np.ndarray], list[str]]:
    """Read every segment and join them (fixed layout by position, variable by name).

    Each segment is converted to mV on its own, so segments with different gains or voltage
    units join correctly; signals absent from a segment, and null ``~`` segments, are NaN.
    """
    assert header.segments is not None
    segments = list(header.segments)
    layout = None
    if segments and segments[0][1] == 0 and segments[0][0] != _NULL:
        try:
            layout = read_header(header_path.parent / f"{segments[0][0]}.hea")
        except RecordError as exc:
            raise RecordError(f"{header_path}: in layout header {segments[0][0]}: {exc}") from None
        segments = segments[1:]
    pieces: list[tuple[int, dict[object, tuple[SignalSpec, np.ndarray, str]]]] = []
    reference: list[SignalSpec] | None = None
    for name, seg_len in segments:
        if name == _NULL or seg_len == 0:
            pieces.append((seg_len, {}))
            continue
        try:
            specs, found = _read_segment(header_path, header, name, seg_len, layout is not None)
        except RecordError as exc:
            raise RecordError(f"{header_path}: in segment {name}: {exc}") from None
        pieces.append((seg_len, found))
        reference = reference or specs
    if layout is not None:
        reference = [s for s in layout.signals if s.sig_name not in ANNOTATION_SIGNALS]
    if not reference or sum(n for n, _ in pieces) == 0:
        raise RecordError(f"{header_path}: zero-length signal (no segment holds samples)")
    keys = [s.sig_name for s in reference] if layout else range(len(reference))
    return reference, *_join_segments(header_path, reference, keys, pieces)


def _read_segment(
    header_path: Path, header: WfdbHeader, name: str, seg_len: int, by_name: bool
) -> tuple[list[SignalSpec], dict[object, tuple[SignalSpec, np.ndarray, str]]]:
    """Read one segment in mV; key its signals by name (variable layout) or position."""
    seg_path = header_path.parent / f"{name}.hea"
    segment = read_header(seg_path)
    if segment.segments is not None or segment.fs != header.fs or segment.sig_len != seg_len:
        raise RecordError(
            f"{seg_path}: segment does not fit record {header_path.name}, which lists it "
            f"with {seg_len} samples at {header.fs} Hz (segment: {segment.sig_len} samples "
            f"at {segment.fs} Hz{', multi-segment' if segment.segments else ''})"
        )
    specs, channels = _read_single(seg_path, segment)
    units = _to_millivolts(channels, [s.units for s in specs])
    keys: Sequence[object] = [s.sig_name for s in specs] if by_name else range(len(specs))
    return specs, dict(zip(keys, zip(specs, channels, units, strict=True), strict=True))


def _join_segments(
    header_path: Path,
    reference: list[SignalSpec],
    keys: Sequence[object],
    pieces: list[tuple[int, dict[object, tuple[SignalSpec, np.ndarray, str]]]],
) -> tuple[list[np.ndarray], list[str]]:
    """Concatenate each reference signal across segments, NaN where a segment lacks it."""
    for _, found in pieces:
        extra = set(found) - set(keys)
        if extra:
            raise RecordError(
                f"{header_path}: a segment holds signals {sorted(map(str, extra))} "
                "that the record layout does not list"
            )
    channels, units = [], []
    for key, ref in zip(keys, reference, strict=True):
        parts, unit = [], None
        for seg_len, found in pieces:
            if key not in found:
                parts.append(np.full(seg_len * ref.samps_per_frame, np.nan))
                continue
            spec, samples, seg_unit = found[key]
            if spec.samps_per_frame != ref.samps_per_frame or unit not in (None, seg_unit):
                raise RecordError(
                    f"{header_path}: signal {ref.sig_name} changes its samples per frame or "
                    "its (non-voltage) unit between segments"
                )
            unit = seg_unit
            parts.append(samples)
        channels.append(np.concatenate(parts))
        units.append(unit or ("mV" if millivolt_factor(ref.units) is not None else ref.units))
    return channels, units


def _to_millivolts(channels: list[np.ndarray], units: Sequence[str]) -> list[str]:
    """Scale voltage signals to mV in place; return the units after conversion."""
    out = []
    for samples, unit in zip(channels, units, strict=True):
        factor = millivolt_factor(unit)
        if factor is not None and factor != 1.0:
            samples *= factor
        out.append(unit if factor is None else "mV")
    return out


def to_common_rate(
    channels: Sequence[np.ndarray], samps_per_frame: Sequence[int]
) -> tuple[np.ndarray, int]:
    """Stack per-signal samples into a float32 ``[signals, samples]`` array at one rate.

    Each signal ``i`` holds ``samps_per_frame[i]`` samples per frame. The result has
    ``g = gcd(samps_per_frame)`` samples per frame (returned as the second value), each the
    mean of the finite samples among the ``samps_per_frame[i] / g`` it covers (NaN only when
    all of them are missing). With equal rates nothing is averaged; with coprime rates this is
    wfdb's ``smooth_frames=True``, except that wfdb averages invalid samples in as numbers.
    """
    per_frame = math.gcd(*samps_per_frame)
    n_frames = len(channels[0]) // samps_per_frame[0]
    out = np.empty((len(channels), n_frames * per_frame), dtype=np.float32)
    for row, samples, spf in zip(out, channels, samps_per_frame, strict=True):
        step = spf // per_frame
        if step == 1:
            row[:] = samples
            continue
        frames = samples.reshape(-1, step)
        valid = np.isfinite(frames)
        with np.errstate(invalid="ignore"):
            row[:] = np.where(valid, frames, 0.0).sum(axis=1) / valid.sum(axis=1)
    return out, per_frame
