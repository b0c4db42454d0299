"""Per-lead amplitude normalisation along the last axis."""

from __future__ import annotations

import numpy as np

#: A lead whose standard deviation is below this (mV) is left at zero by z-scoring.
STD_EPS = 1e-6


def zscore(x: np.ndarray) -> np.ndarray:
    """Per-lead z-score over the last axis; near-constant leads become zero."""
    mean = x.mean(axis=-1, keepdims=True)
    std = x.std(axis=-1, keepdims=True)
    ok = std > STD_EPS
    return np.where(ok, (x - mean) / np.where(ok, std, 1.0), 0.0)


def scale(x: np.ndarray, millivolts: float) -> np.ndarray:
    """Divide by a fixed ``millivolts`` (a fixed amplitude scale shared by every record)."""
    return x / millivolts
