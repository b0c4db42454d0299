"""The record → model-input transform shared by the preprocess stage and serving.

:func:`transform_record` turns one :class:`~ecgflow.io.record.ECGRecord` into the float32 array a
model takes; :func:`transform_batch` does the same for a stack of records that share a rate and
a length (the stage's fast path). ``transform_record`` *is* ``transform_batch`` on a batch of
one, so both give the same numbers.

Steps, in order:

1. **Lead selection** (``leads``): ``12lead`` → I, II, III, aVR, aVL, aVF, V1–V6; ``lead1-dup`` →
   lead I copied to 12 channels; ``leads:I,II,V1`` → those leads. A lead the record lacks is
   zero with ``lead_mask`` False (``lead1-dup`` needs lead I).
2. **Repair**: NaN/inf samples are linearly interpolated per lead (count in ``n_repaired``); a
   lead with no finite sample counts as missing.
3. **Quality flags** on the raw signal (:mod:`ecgflow.signal.quality`): flat, saturation, noise.
4. **Resampling** to ``fs`` (polyphase, rational up/down).
5. **Baseline-wander removal** (``baseline``): zero-phase Butterworth high-pass, order 2, 0.5 Hz.
6. **Notch** (``notch``): IIR notch at 50/60 Hz, zero-phase; skipped with a warning if ≥ fs/2.
7. **Band-pass** (``bandpass``): Butterworth order 4, zero-phase (``sosfiltfilt``).
8. **Flat and missing leads** are set to zero (``lead_mask`` False).
9. **Normalisation**: per-lead z-score over the whole record, a fixed ``scale`` (mV), or none;
   ``lead_offset_mv`` and ``lead_scale_mv`` undo it (``mV = x * scale + offset``).
10. **Length**: centre-crop / zero-pad (at the end) to ``length_s``; or windows of ``window_s``
    every ``stride_s`` (``[n_windows, C, T]``).
"""

from __future__ import annotations

import logging
import math
from typing import Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from ecgflow.errors import RecordError, raises_ecgflow_error
from ecgflow.io.record import STANDARD_LEADS, ECGRecord, normalise_lead_name
from ecgflow.signal import filters, normalise, quality, segment
from ecgflow.signal.resample import resample

log = logging.getLogger(__name__)

LEAD_MODES = ("12lead", "lead1-dup", "leads:NAME,NAME,...")


class PreprocessParams(BaseModel):
    """Parameters of the preprocess stage and of :func:`transform_record`.

    Invalid values raise :class:`EcgflowError` naming the field.
    """

    model_config = ConfigDict(extra="forbid")

    fs: float = Field(100.0, description="target sampling rate in Hz (polyphase resampling)")
    bandpass: tuple[float, float] | None = Field(
        (0.5, 40.0),
        description="Butterworth order-4 zero-phase band-pass (low, high) in Hz after "
        "resampling; high must be below fs/2; none to skip",
    )
    notch: float | None = Field(
        None, description="power-line notch frequency in Hz (50 or 60); skipped if >= fs/2"
    )
    baseline: bool = Field(
        True, description="baseline-wander removal: zero-phase Butterworth high-pass 0.5 Hz"
    )
    normalise: Literal["zscore", "scale", "none"] = Field(
        "zscore", description="per-lead z-score, division by `scale` mV, or none"
    )
    scale: float = Field(1.0, description="mV divided out when normalise='scale'")
    length_s: float | None = Field(
        10.0, description="fixed output length in seconds (centre-crop / zero-pad at the end)"
    )
    window_s: float | None = Field(
        None, description="window length in seconds; each record gives several rows"
    )
    stride_s: float | None = Field(
        None, description="window stride in seconds (default: window_s, no overlap)"
    )
    leads: str = Field(
        "12lead", description="'12lead', 'lead1-dup' (lead I in 12 channels) or 'leads:I,II,V1'"
    )
    workers: int = Field(0, description="worker processes; 0 = one per CPU core")
    chunk_size: int = Field(256, description="records per batch / shard (memory stays flat)")

    @field_validator("bandpass", mode="before")
    @classmethod
    def _parse_band(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.strip().lower() in {"", "none"}:
                return None
            return tuple(part.strip() for part in value.split(","))
        return value

    @field_validator("fs", "scale")
    @classmethod
    def _positive(cls, value: float) -> float:
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"must be a finite number > 0, got {value}")
        return value

    @field_validator("notch", "length_s", "window_s", "stride_s")
    @classmethod
    def _positive_or_none(cls, value: float | None) -> float | None:
        if value is not None and (not math.isfinite(value) or value <= 0):
            raise ValueError(f"must be > 0 (or unset), got {value}")
        return value

    @field_validator("workers")
    @classmethod
    def _workers(cls, value: int) -> int:
        if value < 0:
            raise ValueError(f"must be >= 0 (0 = one per CPU core), got {value}")
        return value

    @field_validator("chunk_size")
    @classmethod
    def _chunk(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"must be >= 1, got {value}")
        return value

    @field_validator("leads")
    @classmethod
    def _leads(cls, value: str) -> str:
        lead_names(value)  # raises ValueError when malformed
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PreprocessParams:
        if self.bandpass is not None:
            low, high = self.bandpass
            if not 0 < low < high:
                raise ValueError(f"bandpass: need 0 < low < high, got {self.bandpass}")
            if high >= self.fs / 2:
                raise ValueError(
                    f"bandpass: high cut-off {high:g} Hz must be below fs/2 = {self.fs / 2:g} Hz"
                )
        if self.window_s is not None:
            if "length_s" in self.model_fields_set and self.length_s is not None:
                raise ValueError("length_s: set either length_s or window_s, not both")
            self.length_s = None
        elif self.length_s is None:
            raise ValueError("length_s: set length_s (fixed length) or window_s (windows)")
        if self.stride_s is not None and self.window_s is None:
            raise ValueError("stride_s: needs window_s")
        for name in ("length_s", "window_s", "stride_s"):
            value = getattr(self, name)
            if value is not None and round(value * self.fs) < 1:
                raise ValueError(f"{name}: {value} s is less than one sample at {self.fs} Hz")
        return self

    _as_ecgflow_error = raises_ecgflow_error("preprocess")

    @property
    def channels(self) -> list[str]:
        """Output channel names, in order."""
        return lead_names(self.leads)

    @property
    def n_times(self) -> int:
        """Samples per output row (fixed length or window)."""
        seconds = self.length_s if self.window_s is None else self.window_s
        assert seconds is not None
        return round(seconds * self.fs)

    @property
    def stride(self) -> int:
        """Window stride in samples at ``fs`` (windows only)."""
        return round((self.stride_s or self.window_s or 0.0) * self.fs)


def lead_names(spec: str) -> list[str]:
    """Output channel names of a ``leads`` mode; :class:`ValueError` if malformed."""
    if spec == "12lead":
        return list(STANDARD_LEADS)
    if spec == "lead1-dup":
        return ["I"] * len(STANDARD_LEADS)
    if spec.startswith("leads:"):
        names = [normalise_lead_name(n) for n in spec[len("leads:") :].split(",") if n.strip()]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"'leads:' needs distinct lead names, got {spec!r}")
        return names
    raise ValueError(f"must be one of {', '.join(LEAD_MODES)}, got {spec!r}")


def lead_rows(record: ECGRecord, params: PreprocessParams) -> list[int | None]:
    """The row of ``record.signal`` for each output channel of ``params.leads`` (None: absent).

    Raises :class:`RecordError` when the record has none of the needed leads (or no lead I for
    ``lead1-dup``).
    """
    wanted = params.channels
    position = {name: i for i, name in enumerate(record.leads)}
    if params.leads == "lead1-dup" and "I" not in position:
        raise RecordError(f"record {record.record_id}: lead1-dup needs lead I, it has none")
    if not any(name in position for name in wanted):
        raise RecordError(
            f"record {record.record_id}: none of the leads {wanted} (has {record.leads})"
        )
    return [position.get(name) for name in wanted]


def select_leads(
    record: ECGRecord, params: PreprocessParams, out: np.ndarray | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """Pick ``params.leads`` from ``record`` and repair non-finite samples (steps 1–2).

    Returns a float64 ``[C, T]`` array (missing leads zero; ``out`` when given, e.g. a row of
    a batch, filled in place) and the info so far: ``lead_mask`` (bool per channel),
    ``n_repaired``, ``n_missing_leads``.
    Raises :class:`RecordError` when the record has none of the needed leads.
    """
    rows = lead_rows(record, params)
    x = np.empty((len(rows), record.n_samples), dtype=np.float64) if out is None else out
    for i, row in enumerate(rows):
        if row is None:
            x[i] = 0.0
        else:
            x[i] = record.signal[row]
    present = np.array([row is not None for row in rows], dtype=bool)
    if np.isfinite(record.signal).all():  # the common case: nothing to repair
        n_repaired, empty = 0, np.zeros(len(rows), dtype=bool)
    else:
        x, n_repaired, empty = quality.repair_nonfinite(x)
    mask = present & ~empty
    info = {
        "n_repaired": n_repaired,
        "n_missing_leads": int((~mask).sum()),
        "lead_mask": mask,
    }
    return x, info


def min_samples(params: PreprocessParams) -> int:
    """Fewest samples (at ``params.fs``) a record needs for the filters to run."""
    soses = [filters.highpass_sos(filters.BASELINE_CUTOFF_HZ, params.fs)]
    if params.bandpass is not None:
        soses.append(filters.bandpass_sos(*params.bandpass, params.fs))
    return filters.min_length(*soses)


def transform_batch(
    x: np.ndarray, fs_in: float, lead_mask: np.ndarray, params: PreprocessParams
) -> tuple[np.ndarray, list[int], dict[str, np.ndarray]]:
    """Steps 3–10 on a batch ``x [n, C, T]`` (float64, repaired) of records at ``fs_in`` Hz.

    ``lead_mask [n, C]`` marks present leads. Returns float32 ``[n, K, C, T_out]`` (``K`` = 1
    for a fixed length), the ``K`` start samples (at ``params.fs``) and per-record flag
    arrays: ``flat_leads``, ``saturated_leads``, ``noisy_leads`` (counts), the updated
    ``lead_mask`` and ``lead_offset_mv`` / ``lead_scale_mv`` ``[n, C]`` (undo normalisation).
    Raises :class:`RecordError` if the records are too short to filter.
    """
    present = lead_mask.astype(bool)
    flat, saturated, noisy = quality.lead_flags(x, fs_in)
    flat &= present
    saturated &= present
    noisy &= present & ~flat
    y = resample(x, fs_in, params.fs)
    if y.shape[-1] < min_samples(params):
        raise RecordError(
            f"{y.shape[-1]} samples at {params.fs:g} Hz is too short to filter "
            f"(need {min_samples(params)})"
        )
    if params.baseline:
        y = filters.filtfilt(y, filters.highpass_sos(filters.BASELINE_CUTOFF_HZ, params.fs))
    if params.notch is not None:
        if params.notch >= params.fs / 2:
            log.warning("notch %g Hz >= fs/2 = %g Hz: skipped", params.notch, params.fs / 2)
        else:
            y = filters.filtfilt(y, filters.notch_sos(params.notch, params.fs))
    if params.bandpass is not None:
        y = filters.filtfilt(y, filters.bandpass_sos(*params.bandpass, params.fs))
    mask = present & ~flat
    if not mask.all():
        y = np.where(mask[..., None], y, 0.0)
    offset = np.zeros(y.shape[:-1])
    factor = np.ones(y.shape[:-1])
    if params.normalise == "zscore":  # float64 arithmetic, stored as the float32 output
        y, offset, factor = normalise.zscore_with_stats(y, dtype=np.float32)
    elif params.normalise == "scale":
        y = normalise.scale(y, params.scale)
        factor = factor * params.scale
    if params.window_s is None:
        out, start = segment.fix_length(y, params.n_times)
        out, starts = out[:, None], [start]
    else:
        out, starts = segment.windows(y, params.n_times, params.stride)
    flags = {
        "lead_mask": mask,
        "flat_leads": flat.sum(axis=-1),
        "saturated_leads": saturated.sum(axis=-1),
        "noisy_leads": noisy.sum(axis=-1),
        "lead_offset_mv": offset.astype(np.float32),
        "lead_scale_mv": factor.astype(np.float32),
    }
    return np.ascontiguousarray(out, dtype=np.float32), starts, flags


def record_info(
    selected: dict[str, Any], flags: dict[str, np.ndarray], i: int, starts: list[int]
) -> dict[str, Any]:
    """The info dict of record ``i`` of a batch (see :func:`transform_record`)."""
    mask = flags["lead_mask"][i]
    return {
        "n_repaired": int(selected["n_repaired"]),
        "lead_mask": [bool(v) for v in mask],
        "n_missing_leads": int(selected["n_missing_leads"]),
        "n_flat_leads": int(flags["flat_leads"][i]),
        "n_saturated_leads": int(flags["saturated_leads"][i]),
        "n_noisy_leads": int(flags["noisy_leads"][i]),
        "flag_repaired": bool(selected["n_repaired"] > 0),
        "flag_missing_lead": bool(selected["n_missing_leads"] > 0),
        "flag_flat": bool(flags["flat_leads"][i] > 0),
        "flag_saturation": bool(flags["saturated_leads"][i] > 0),
        "flag_noise": bool(flags["noisy_leads"][i] > 0),
        "lead_offset_mv": [float(v) for v in flags["lead_offset_mv"][i]],
        "lead_scale_mv": [float(v) for v in flags["lead_scale_mv"][i]],
        "start_samples": list(starts),
    }


def transform_record(
    record: ECGRecord, params: PreprocessParams
) -> tuple[np.ndarray, dict[str, Any]]:
    """Turn one record into model input: float32 ``[C, T]`` (``[n_windows, C, T]`` with windows).

    The info dict holds ``n_repaired``, ``lead_mask``, ``n_missing_leads``, ``n_flat_leads``,
    ``n_saturated_leads``, ``n_noisy_leads``, the ``flag_*`` booleans, ``lead_offset_mv`` and
    ``lead_scale_mv`` (``mV = output * scale + offset`` per channel) and ``start_samples``.
    Raises :class:`RecordError` for a record that cannot be transformed.
    """
    x, selected = select_leads(record, params)
    try:
        out, starts, flags = transform_batch(
            x[None], record.fs, selected["lead_mask"][None], params
        )
    except RecordError as exc:
        raise RecordError(f"record {record.record_id}: {exc}") from None
    info = record_info(selected, flags, 0, starts)
    return (out[0, 0] if params.window_s is None else out[0]), info
