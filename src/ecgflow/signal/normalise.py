"""Per-lead amplitude normalisation along the last axis."""

from __future__ import annotations

import numpy as np

#: A lead whose standard deviation is below this (mV) is left at zero by z-scoring.
STD_EPS = 1e-6


def zscore(x: np.ndarray) -> np.ndarray:
    """Per-lead z-score over the last axis; near-constant leads become zero."""
    return zscore_with_stats(x)[0]


def zscore_with_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`zscore` plus the per-lead ``offset`` and ``scale`` (mV) that undo it.

    ``x ≈ z * scale + offset`` (``scale`` is 1 for a near-constant lead, whose z is 0).
    """
    mean = x.mean(axis=-1, keepdims=True)
    std = x.std(axis=-1, keepdims=True)
    ok = std > STD_EPS
    safe = np.where(ok, std, 1.0)
    return np.where(ok, (x - mean) / safe, 0.0), mean[..., 0], safe[..., 0]


def scale(x: np.ndarray, millivolts: float) -> np.ndarray:
    """Divide by a fixed ``millivolts`` (a fixed amplitude scale shared by every record)."""
    return x / millivolts
