"""Fixed-length crops and sliding windows along the last axis."""

from __future__ import annotations

import numpy as np


def fix_length(x: np.ndarray, length: int) -> tuple[np.ndarray, int]:
    """Centre-crop or zero-pad (at the end) ``x`` to ``length`` samples.

    Returns the array and the start sample of the crop in ``x`` (0 when padded).
    """
    n = x.shape[-1]
    if n >= length:
        start = (n - length) // 2
        return x[..., start : start + length], start
    pad = [(0, 0)] * (x.ndim - 1) + [(0, length - n)]
    return np.pad(x, pad), 0


def window_starts(n: int, window: int, stride: int) -> list[int]:
    """Start samples of the windows of ``window`` samples every ``stride`` over ``n``.

    A signal shorter than one window gives one window at 0 (zero-padded).
    """
    if n <= window:
        return [0]
    return list(range(0, n - window + 1, stride))


def windows(x: np.ndarray, window: int, stride: int) -> tuple[np.ndarray, list[int]]:
    """Windows of ``x[..., T]`` stacked on a new axis before the last two: ``[..., K, C, W]``.

    ``x`` is ``[..., C, T]``; returns the windows and their start samples.
    """
    starts = window_starts(x.shape[-1], window, stride)
    if x.shape[-1] < window:
        x, _ = fix_length(x, window)
    out = np.stack([x[..., s : s + window] for s in starts], axis=-3)
    return out, starts
