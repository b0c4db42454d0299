"""Measured features of a 12-lead record: R peaks, heart rate, rhythm regularity, QRS axis.

R peaks: every lead is band-passed to 5–15 Hz (the QRS band), squared and summed over the
leads, smoothed over 120 ms (Pan–Tompkins-style energy), and its peaks at least 250 ms apart
(at most 240 bpm) and above 30 % of a robust maximum are the beats; each is then moved to the
largest absolute band-passed deflection within ±60 ms. The QRS axis is the angle of the net
QRS deflection in leads I and aVF (hexaxial: 0° = lead I, +90° = aVF), taken per beat within
±60 ms of the R peak against the median of the 200–120 ms before it, and averaged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import signal as sps

QRS_BAND_HZ = (5.0, 15.0)
MIN_RR_S = 0.25
SMOOTH_S = 0.12
HALF_QRS_S = 0.06


@dataclass(frozen=True)
class Rhythm:
    """Beat-level measurements of one record (NaN where fewer than 3 beats were found)."""

    n_beats: int
    heart_rate_bpm: float
    rr_cv: float  # standard deviation / mean of the RR intervals
    axis_deg: float  # QRS axis in degrees (-180, 180]; NaN without leads I and aVF


def r_peaks(x: np.ndarray, fs: float) -> np.ndarray:
    """Sample indices of the R peaks of ``x`` ``[leads, samples]`` (see the module docstring)."""
    x = np.nan_to_num(np.asarray(x, dtype=np.float64))
    if x.ndim != 2 or x.shape[1] < int(2 * fs):
        return np.zeros(0, dtype=int)
    high = min(QRS_BAND_HZ[1], 0.45 * fs)
    sos = sps.butter(2, [QRS_BAND_HZ[0], high], btype="bandpass", fs=fs, output="sos")
    band = sps.sosfiltfilt(sos, x, axis=1)
    energy = (band**2).sum(axis=0)
    width = max(int(SMOOTH_S * fs), 1)
    energy = np.convolve(energy, np.ones(width) / width, mode="same")
    top = np.percentile(energy, 99)
    if not math.isfinite(top) or top <= 0:
        return np.zeros(0, dtype=int)
    found, _ = sps.find_peaks(energy, height=0.3 * top, distance=max(int(MIN_RR_S * fs), 1))
    half = max(int(HALF_QRS_S * fs), 1)
    deflection = np.abs(band).sum(axis=0)
    refined = [
        start + int(np.argmax(deflection[start : p + half + 1]))
        for p in found
        for start in [max(p - half, 0)]
    ]
    return np.unique(np.asarray(refined, dtype=int))


def measure_rhythm(x: np.ndarray, fs: float, leads: list[str]) -> Rhythm:
    """Heart rate, RR regularity and QRS axis of ``x`` ``[leads, samples]`` in mV."""
    peaks = r_peaks(x, fs)
    if len(peaks) < 3:
        return Rhythm(len(peaks), math.nan, math.nan, math.nan)
    rr = np.diff(peaks) / fs
    rate = 60.0 / float(np.mean(rr))  # the mean: an irregular rhythm counts every beat
    cv = float(np.std(rr) / np.mean(rr))
    return Rhythm(len(peaks), rate, cv, _axis(x, fs, leads, peaks))


def _axis(x: np.ndarray, fs: float, leads: list[str], peaks: np.ndarray) -> float:
    names = [lead.upper() for lead in leads]
    if "I" not in names or "AVF" not in names:
        return math.nan
    half, before, gap = int(HALF_QRS_S * fs), int(0.2 * fs), int(0.12 * fs)
    nets = []
    for lead in (names.index("I"), names.index("AVF")):
        values = []
        for p in peaks:
            if p - before < 0 or p + half >= x.shape[1]:
                continue
            baseline = float(np.median(x[lead, p - before : p - gap]))
            window = x[lead, p - half : p + half + 1] - baseline
            values.append(float(window.max() + window.min()))  # net: up minus down
        nets.append(float(np.mean(values)) if values else math.nan)
    if not all(math.isfinite(v) for v in nets) or nets == [0.0, 0.0]:
        return math.nan
    return math.degrees(math.atan2(nets[1], nets[0]))


def axis_category(axis_deg: float) -> str | None:
    """Normal (−30° to 90°), left / right / extreme axis deviation; None when unmeasured."""
    if not math.isfinite(axis_deg):
        return None
    if -30.0 <= axis_deg <= 90.0:
        return "normal"
    if -90.0 <= axis_deg < -30.0:
        return "left axis deviation"
    if 90.0 < axis_deg <= 180.0:
        return "right axis deviation"
    return "extreme axis deviation"
