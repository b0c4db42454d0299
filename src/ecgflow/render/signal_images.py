"""Signal → image transforms: Gramian angular field, recurrence plot, Markov transition field.

The three are stacked as the red, green and blue channels of one square image, the
representation the CLIP seed feeds its image encoder. Each is computed on the series averaged
down to ``size`` points (piecewise aggregate approximation); the Markov transition field is
aggregated exactly from the full-resolution series (``P W Pᵀ``), so its cost is linear in the
series length.
"""

from __future__ import annotations

import numpy as np


def _blocks(n: int, size: int) -> np.ndarray:
    """Block number (0…size-1) of each of ``n`` samples, nearly equal blocks."""
    return (np.arange(n) * size) // n


def paa(x: np.ndarray, size: int) -> np.ndarray:
    """Piecewise aggregate approximation: 1-D ``x`` (``len(x) ≥ size``) as ``size`` block means."""
    blocks = _blocks(x.size, size)
    return np.bincount(blocks, weights=x, minlength=size) / np.bincount(blocks, minlength=size)


def _fit_length(x: np.ndarray, size: int) -> np.ndarray:
    """``x`` itself, or linearly stretched to ``size`` samples when shorter."""
    if x.size >= size:
        return x
    return np.interp(np.linspace(0, x.size - 1, size), np.arange(x.size), x)


def _minmax(x: np.ndarray, low: float, high: float) -> np.ndarray:
    span = x.max() - x.min()
    if span <= 0:
        return np.full_like(x, (low + high) / 2)
    return low + (x - x.min()) * (high - low) / span


def gramian_angular_field(x: np.ndarray, size: int) -> np.ndarray:
    """Gramian angular summation field ``cos(φᵢ + φⱼ)`` in [-1, 1], ``[size, size]``."""
    z = np.clip(_minmax(paa(_fit_length(x, size), size), -1.0, 1.0), -1.0, 1.0)
    s = np.sqrt(1.0 - z**2)
    return np.outer(z, z) - np.outer(s, s)


def recurrence_plot(x: np.ndarray, size: int) -> np.ndarray:
    """Unthresholded recurrence plot ``|xᵢ - xⱼ|`` of the min-max scaled series, in [0, 1]."""
    z = _minmax(paa(_fit_length(x, size), size), 0.0, 1.0)
    return np.abs(z[:, None] - z[None, :])


def markov_transition_field(x: np.ndarray, size: int, bins: int = 8) -> np.ndarray:
    """Markov transition field over ``bins`` quantile bins, block-averaged to ``[size, size]``.

    ``M[i, j] = W[q(xᵢ), q(xⱼ)]`` with ``W`` the row-normalised first-order transition matrix;
    averaging over blocks equals ``P W Pᵀ`` where ``P[a, k]`` is the share of block ``a``'s
    samples that fall in bin ``k``.
    """
    x = _fit_length(x, size)
    edges = np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1])
    q = np.searchsorted(edges, x, side="right")
    counts = np.zeros((bins, bins))
    np.add.at(counts, (q[:-1], q[1:]), 1.0)
    totals = counts.sum(axis=1, keepdims=True)
    w = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    blocks = _blocks(x.size, size)
    share = np.zeros((size, bins))
    np.add.at(share, (blocks, q), 1.0)
    share /= share.sum(axis=1, keepdims=True)
    return share @ w @ share.T


def signal_image(x: np.ndarray, size: int = 224, bins: int = 8) -> np.ndarray:
    """uint8 ``[size, size, 3]``: red = GAF, green = recurrence plot, blue = MTF of 1-D ``x``."""
    x = np.asarray(x, dtype=np.float64)
    channels = (
        (gramian_angular_field(x, size) + 1.0) / 2.0,
        recurrence_plot(x, size),
        markov_transition_field(x, size, bins),
    )
    stacked = np.stack(channels, axis=-1)
    return np.round(np.clip(stacked, 0.0, 1.0) * 255).astype(np.uint8)
