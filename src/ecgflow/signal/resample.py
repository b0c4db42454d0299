"""Polyphase resampling by a rational factor (the numbers of ``scipy.signal.resample_poly``).

:func:`resample` gives what ``scipy.signal.resample_poly(x, up, down, axis=-1)`` gives with its
default filter (``firwin`` low-pass of ``20 * max(up, down) + 1`` taps, Kaiser window β = 5)
and zero padding, to rounding (about 1e-15). Instead of scipy's scalar polyphase loop it
computes each block of ``q * up`` output samples from the ``q * down``-sample input chunks
around it with one small matrix (the filter is the same for every block), as a stack of small
matrix products, which BLAS does about 3.5 times faster (16 records of 12 × 5000). Every
product has the same shape whatever the batch, so a lead's numbers do not depend on the batch
it is in, and each is small enough for OpenBLAS to run it on the calling thread (no BLAS
threads competing with the stage's worker processes).
Ratios with ``max(up, down)`` above :data:`MAX_BLOCK_RATE` use ``resample_poly`` itself. The
filter is designed here (:func:`lowpass_taps`, scipy's ``firwin`` formula) so that the common
rates never import ``scipy.signal`` (0.6–0.8 s of a stage's start-up).
"""

from __future__ import annotations

import functools
from fractions import Fraction
from typing import NamedTuple

import numpy as np

#: Largest denominator of the rational up/down factor.
MAX_DENOMINATOR = 1000
#: Input samples per block (about): ``q = ceil(BLOCK_INPUT / down)`` blocks of ``q * down``.
BLOCK_INPUT = 50
#: Largest ``rows × inner × columns`` of one matrix product (OpenBLAS threads above 262,144).
SMALL_PRODUCT = 200_000
#: Rates with ``max(up, down)`` above this use scipy's loop (the block matrix would be large).
MAX_BLOCK_RATE = 64
#: Kaiser window β of scipy's default resample_poly filter.
KAISER_BETA = 5.0


def ratio(fs_in: float, fs_out: float) -> tuple[int, int]:
    """The ``(up, down)`` integers with ``up / down ≈ fs_out / fs_in``."""
    frac = Fraction(fs_out / fs_in).limit_denominator(MAX_DENOMINATOR)
    return frac.numerator, frac.denominator


def resampled_length(n: int, fs_in: float, fs_out: float) -> int:
    """Number of samples :func:`resample` returns for ``n`` input samples."""
    up, down = ratio(fs_in, fs_out)
    return -(-n * up // down)


def resample(x: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Resample ``x`` along its last axis from ``fs_in`` to ``fs_out`` Hz (polyphase FIR).

    Float64 result (``x`` itself when the rates are equal); see the module docstring.
    """
    up, down = ratio(fs_in, fs_out)
    if up == down:
        return x
    if max(up, down) > MAX_BLOCK_RATE or not np.isrealobj(x) or x.shape[-1] == 0:
        from scipy import signal as sps  # rare ratios only: the import is slow

        return sps.resample_poly(np.asarray(x, dtype=np.float64), up, down, axis=-1)
    return _resample_blocks(np.asarray(x, dtype=np.float64), up, down)


class _Plan(NamedTuple):
    matrix: np.ndarray  # [S, K * B]: column block k maps input chunk b + c0 + k to output block b
    first_chunk: int  # c0 (<= 0): the input chunk, relative to b, that output block b starts in
    n_chunks: int  # K
    block_out: int  # B = q * up output samples per block
    block_in: int  # S = q * down input samples per chunk


def _taps(up: int, down: int) -> tuple[np.ndarray, int]:
    """The filter of scipy's resample_poly (zero-padded in front) and its ``n_pre_remove``."""
    max_rate = max(up, down)
    half_len = 10 * max_rate
    h = lowpass_taps(2 * half_len + 1, 1.0 / max_rate) * up
    n_pre_pad = down - half_len % down
    return np.concatenate((np.zeros(n_pre_pad), h)), (half_len + n_pre_pad) // down


def lowpass_taps(n_taps: int, cutoff: float) -> np.ndarray:
    """A Kaiser-windowed sinc low-pass, ``cutoff`` relative to Nyquist, unit gain at DC.

    The taps of ``scipy.signal.firwin(n_taps, cutoff, window=("kaiser", KAISER_BETA))``.
    """
    m = np.arange(n_taps) - (n_taps - 1) / 2
    h = cutoff * np.sinc(cutoff * m) * np.kaiser(n_taps, KAISER_BETA)
    return h / h.sum()


@functools.lru_cache(maxsize=32)
def _plan(up: int, down: int) -> _Plan:
    """The block matrix of the ``up/down`` resampler.

    Output ``k`` is ``sum_j x[j] * h[(k + n_pre_remove) * down - j * up]`` (scipy's upfirdn with
    zero padding, then trimmed). For ``k = b * B + r`` and ``j = b * S + t`` the tap index is
    ``(r + n_pre_remove) * down - t * up``: the same for every block ``b``.
    """
    h, pre_remove = _taps(up, down)
    q = -(-BLOCK_INPUT // down)
    block_out, block_in = q * up, q * down
    t_first = -(-(pre_remove * down - len(h) + 1) // up)  # first input offset any output uses
    t_last = ((block_out - 1 + pre_remove) * down) // up  # last one
    first_chunk = t_first // block_in
    n_chunks = -(-(t_last + 1 - first_chunk * block_in) // block_in)
    t = first_chunk * block_in + np.arange(n_chunks * block_in)[:, None]
    tap = (np.arange(block_out)[None, :] + pre_remove) * down - t * up
    valid = (tap >= 0) & (tap < len(h))
    full = np.where(valid, h[np.clip(tap, 0, len(h) - 1)], 0.0)  # [K * S, B]
    matrix = np.concatenate(np.split(full, n_chunks, axis=0), axis=1)  # [S, K * B]
    matrix.setflags(write=False)
    return _Plan(np.ascontiguousarray(matrix), first_chunk, n_chunks, block_out, block_in)


def _resample_blocks(x: np.ndarray, up: int, down: int) -> np.ndarray:
    plan = _plan(up, down)
    lead, n_in = x.shape[:-1], x.shape[-1]
    n_out = -(-n_in * up // down)
    rows = int(np.prod(lead))
    size, width, c0 = plan.block_in, plan.block_out, plan.first_chunk
    n_in_chunks = -(-n_in // size)
    # each matrix product covers `group` chunks of one lead: the same small shape whatever
    # the batch, so a record's numbers do not depend on the batch it is in, and small enough
    # that BLAS runs it on the calling thread (the stage runs one process per core)
    group = min(n_in_chunks, max(1, SMALL_PRODUCT // plan.matrix.size))
    n_groups = -(-n_in_chunks // group)
    if n_groups * group * size == n_in:
        chunks = np.ascontiguousarray(x).reshape(rows * n_groups, group, size)
    else:  # zero-pad the end to whole groups (zeros are what scipy pads with too)
        padded = np.zeros((rows, n_groups * group * size))
        padded[:, :n_in] = x.reshape(rows, n_in)
        chunks = padded.reshape(rows * n_groups, group, size)
    parts = (chunks @ plan.matrix).reshape(rows, n_groups * group, plan.n_chunks, width)
    n_blocks = -(-n_out // width)
    y = np.zeros((rows, n_blocks, width))
    for k in range(plan.n_chunks):  # output block b gets chunk b + c0 + k through column block k
        lo, hi = max(0, -(c0 + k)), min(n_blocks, n_in_chunks - c0 - k)
        if hi > lo:
            y[:, lo:hi] += parts[:, lo + c0 + k : hi + c0 + k, k]
    return y.reshape(rows, n_blocks * width)[:, :n_out].reshape(*lead, n_out)
