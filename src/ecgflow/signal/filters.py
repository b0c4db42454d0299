"""Zero-phase IIR filters (second-order sections) applied along the last axis."""

from __future__ import annotations

import functools

import numpy as np
from scipy import signal as sps

#: Butterworth order of the band-pass filter.
BANDPASS_ORDER = 4
#: Baseline-wander removal: zero-phase Butterworth high-pass of this order and cut-off (Hz).
BASELINE_ORDER = 2
BASELINE_CUTOFF_HZ = 0.5
#: Quality factor of the power-line notch filter.
NOTCH_Q = 30.0


@functools.lru_cache(maxsize=64)
def bandpass_sos(low: float, high: float, fs: float) -> np.ndarray:
    """Second-order sections of an order-4 Butterworth band-pass ``low``–``high`` Hz."""
    return sps.butter(BANDPASS_ORDER, [low, high], btype="bandpass", fs=fs, output="sos")


@functools.lru_cache(maxsize=64)
def highpass_sos(cutoff: float, fs: float) -> np.ndarray:
    """Second-order sections of the baseline-removal Butterworth high-pass."""
    return sps.butter(BASELINE_ORDER, cutoff, btype="highpass", fs=fs, output="sos")


@functools.lru_cache(maxsize=64)
def notch_sos(freq: float, fs: float) -> np.ndarray:
    """Second-order sections of an IIR notch at ``freq`` Hz (quality factor :data:`NOTCH_Q`)."""
    b, a = sps.iirnotch(freq, NOTCH_Q, fs=fs)
    return sps.tf2sos(b, a)


def filtfilt(x: np.ndarray, sos: np.ndarray) -> np.ndarray:
    """Zero-phase filter ``x`` along its last axis (``scipy.signal.sosfiltfilt``)."""
    return sps.sosfiltfilt(sos, x, axis=-1)


def min_length(*soses: np.ndarray) -> int:
    """Shortest signal every filter in ``soses`` can run on (sosfiltfilt's default padding)."""
    need = 1
    for sos in soses:
        zeros = min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
        need = max(need, 3 * (2 * len(sos) + 1 - zeros) + 1)
    return need
