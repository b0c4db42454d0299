"""Polyphase resampling by a rational factor (``scipy.signal.resample_poly``)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy import signal as sps

#: Largest denominator of the rational up/down factor.
MAX_DENOMINATOR = 1000


def ratio(fs_in: float, fs_out: float) -> tuple[int, int]:
    """The ``(up, down)`` integers with ``up / down ≈ fs_out / fs_in``."""
    frac = Fraction(fs_out / fs_in).limit_denominator(MAX_DENOMINATOR)
    return frac.numerator, frac.denominator


def resampled_length(n: int, fs_in: float, fs_out: float) -> int:
    """Number of samples :func:`resample` returns for ``n`` input samples."""
    up, down = ratio(fs_in, fs_out)
    return -(-n * up // down)


def resample(x: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Resample ``x`` along its last axis from ``fs_in`` to ``fs_out`` Hz (polyphase FIR)."""
    up, down = ratio(fs_in, fs_out)
    if up == down:
        return x
    return sps.resample_poly(x, up, down, axis=-1)
