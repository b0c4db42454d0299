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
from typing import Any

import numpy as np

from ecgflow.errors import RecordError
from ecgflow.io.record import ECGRecord
from ecgflow.params.preprocess import PreprocessParams
from ecgflow.signal import filters, normalise, quality, segment
from ecgflow.signal.resample import resample

log = logging.getLogger(__name__)


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
