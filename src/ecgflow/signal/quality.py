"""Non-finite sample repair and signal-quality flags, vectorised over ``[..., C, T]``.

Flags (per lead, computed on the raw signal at the record's own rate, after repair):

* **flat**: peak-to-peak amplitude below :data:`FLAT_PTP_MV` (a disconnected or constant lead).
* **saturation**: a run of at least :data:`SATURATION_RUN_S` seconds (and at least
  :data:`SATURATION_MIN_SAMPLES` samples) sitting at the lead's own minimum or maximum value —
  the clipping of an amplifier at its rail. Flat leads are not also counted as saturated.
* **noise**: the fraction of the power above :data:`NOISE_CUTOFF_HZ` (of the power above
  :data:`NOISE_FLOOR_HZ`) exceeds :data:`NOISE_RATIO`, from a real FFT of the lead. Records
  sampled at or below ``2 * NOISE_CUTOFF_HZ + 10`` Hz carry no such band; for them the proxy is
  the share of first-difference power in the top quarter of the band, as a power ratio
  computed the same way (see :func:`noise_ratio`).
"""

from __future__ import annotations

import numpy as np

FLAT_PTP_MV = 0.01
SATURATION_RUN_S = 0.1
SATURATION_MIN_SAMPLES = 4
NOISE_CUTOFF_HZ = 40.0
NOISE_FLOOR_HZ = 0.5
NOISE_RATIO = 0.2


def repair_nonfinite(x: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
    """Linearly interpolate NaN/inf samples of each lead of ``x [C, T]`` (in place).

    Edges take the nearest finite value. Returns ``x``, the number of repaired samples and a
    bool ``[C]`` of leads with no finite sample at all (left as zeros, not counted).
    """
    finite = np.isfinite(x)
    empty = ~finite.any(axis=-1)
    bad_rows = np.flatnonzero(~finite.all(axis=-1) & ~empty)
    n_repaired = 0
    t = np.arange(x.shape[-1])
    for row in bad_rows:
        ok = finite[row]
        n_repaired += int((~ok).sum())
        x[row, ~ok] = np.interp(t[~ok], t[ok], x[row, ok])
    x[empty] = 0.0
    return x, n_repaired, empty


def lead_flags(x: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bool ``[..., C]`` arrays ``(flat, saturated, noisy)``: the three flags together.

    The same as :func:`flat_leads`, :func:`saturated_leads` and :func:`noisy_leads`, but each
    lead's minimum and maximum are found once and shared.
    """
    low, high = x.min(axis=-1, keepdims=True), x.max(axis=-1, keepdims=True)
    flat = (high - low)[..., 0] < FLAT_PTP_MV
    saturated = _runs_at(x, fs, (high, low)) & ~flat
    return flat, saturated, noisy_leads(x, fs)


def flat_leads(x: np.ndarray) -> np.ndarray:
    """Bool ``[..., C]``: leads whose peak-to-peak amplitude is below :data:`FLAT_PTP_MV`."""
    return np.ptp(x, axis=-1) < FLAT_PTP_MV


def saturated_leads(x: np.ndarray, fs: float) -> np.ndarray:
    """Bool ``[..., C]``: leads with a long run at their own minimum or maximum value."""
    extremes = (x.max(axis=-1, keepdims=True), x.min(axis=-1, keepdims=True))
    return _runs_at(x, fs, extremes) & ~flat_leads(x)


def _runs_at(x: np.ndarray, fs: float, extremes: tuple[np.ndarray, ...]) -> np.ndarray:
    """Bool ``[..., C]``: leads with a long run at one of ``extremes`` (each ``[..., C, 1]``)."""
    run = max(SATURATION_MIN_SAMPLES, round(SATURATION_RUN_S * fs))
    hit = np.zeros(x.shape[:-1], dtype=bool)
    if x.shape[-1] < run:
        return hit
    for extreme in extremes:
        at = x == extreme
        # runs are searched only where they could exist (a bool is one byte: sum its bytes)
        candidates = at.view(np.uint8).sum(axis=-1, dtype=np.int32) >= run
        if not candidates.any():
            continue
        total = np.cumsum(at[candidates], axis=-1, dtype=np.int32)
        window = total[..., run - 1 :].copy()
        window[..., 1:] -= total[..., :-run]
        hit[candidates] |= (window >= run).any(axis=-1)
    return hit


def noise_ratio(x: np.ndarray, fs: float) -> np.ndarray:
    """Float ``[..., C]``: share of power above :data:`NOISE_CUTOFF_HZ` (see the module doc)."""
    nyquist = fs / 2
    if nyquist > NOISE_CUTOFF_HZ + 5:
        cutoff, y = NOISE_CUTOFF_HZ, x
    else:  # no band above 40 Hz: high-frequency share of the first difference instead
        cutoff, y = 0.75 * nyquist, np.diff(x, axis=-1)
    # DC and < NOISE_FLOOR_HZ are excluded, so no centring is needed; a ratio: float32 is ample
    coeffs = np.fft.rfft(y.astype(np.float32), axis=-1)
    freqs = np.fft.rfftfreq(y.shape[-1], 1.0 / fs)
    first = int(np.searchsorted(freqs, NOISE_FLOOR_HZ, side="right"))
    split = max(first, int(np.searchsorted(freqs, cutoff, side="right")))
    # power |c|² summed over bins as re² + im² over the interleaved float32 view (no temporaries)
    parts = coeffs.view(np.float32)
    low_band, high_band = parts[..., 2 * first : 2 * split], parts[..., 2 * split :]
    high = np.einsum("...i,...i->...", high_band, high_band, dtype=np.float64)
    total = np.einsum("...i,...i->...", low_band, low_band, dtype=np.float64) + high
    return np.where(total > 0, high / np.where(total > 0, total, 1.0), 0.0)


def noisy_leads(x: np.ndarray, fs: float) -> np.ndarray:
    """Bool ``[..., C]``: leads whose :func:`noise_ratio` exceeds :data:`NOISE_RATIO`."""
    return noise_ratio(x, fs) > NOISE_RATIO
