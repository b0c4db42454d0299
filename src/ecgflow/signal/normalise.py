"""Per-lead amplitude normalisation along the last axis."""

from __future__ import annotations

import numpy as np

#: A lead whose standard deviation is below this (mV) is left at zero by z-scoring.
STD_EPS = 1e-6


def zscore(x: np.ndarray) -> np.ndarray:
    """Per-lead z-score over the last axis; near-constant leads become zero."""
    return zscore_with_stats(x)[0]


def zscore_with_stats(
    x: np.ndarray, dtype: type[np.floating] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`zscore` plus the per-lead ``offset`` and ``scale`` (mV) that undo it.

    ``x ≈ z * scale + offset`` (``scale`` is 1 for a near-constant lead, whose z is 0).
    ``dtype`` (default: that of ``x``) is the dtype of ``z``; the arithmetic is ``x``'s either
    way, and the mean and standard deviation are exactly ``x.mean`` and ``x.std``.
    """
    mean = x.mean(axis=-1, keepdims=True)
    dev = x - mean
    # x.std(): the mean of the squared deviations, summed the same way; dev is reused
    std = np.sqrt(np.add.reduce(dev * dev, axis=-1, keepdims=True) / x.shape[-1])
    ok = std > STD_EPS
    safe = np.where(ok, std, 1.0)
    z = np.divide(dev, safe, out=None if dtype is None else np.empty(dev.shape, dtype))
    if not ok.all():
        z[~ok[..., 0]] = 0.0
    return z, mean[..., 0], safe[..., 0]


def scale(x: np.ndarray, millivolts: float) -> np.ndarray:
    """Divide by a fixed ``millivolts`` (a fixed amplitude scale shared by every record)."""
    return x / millivolts
