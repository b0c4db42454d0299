"""Zero-phase IIR filters (second-order sections) applied along the last axis, in NumPy.

The numbers are those of ``scipy.signal.butter(..., output="sos")`` / ``iirnotch`` and
``scipy.signal.sosfiltfilt`` (odd extension, steady-state initial conditions), to rounding:
about 1e-11 of the signal's peak for the default band, up to 1e-8 for a band reaching close to
Nyquist at 1 kHz, far below the float32 output's resolution (the tests hold them against
scipy). They are computed here because importing ``scipy.signal`` costs 0.6–0.8 s, more than a
data stage's whole work on 500 records, and every pipeline step is its own process.

Design: a Butterworth analog prototype, frequency transformation and the bilinear transform in
zero-pole-gain form (scipy's ``buttap`` → ``lp2bp_zpk``/``lp2hp_zpk`` → ``bilinear_zpk``), then
one section per conjugate pole pair.

Filtering: the cascade as one state-space system ``s' = A s + B u, y = C s + D u``, run over
blocks of :data:`BLOCK` samples. Within a block the output is the exact convolution with the
impulse response plus the free response to the block's start state, so all blocks of all leads
are one matrix product each (BLAS), and only the block start states are carried sequentially
(``T / BLOCK`` small steps). There is no truncation: the result equals the sample-by-sample
recursion up to rounding.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

#: Butterworth order of the band-pass filter.
BANDPASS_ORDER = 4
#: Baseline-wander removal: zero-phase Butterworth high-pass of this order and cut-off (Hz).
BASELINE_ORDER = 2
BASELINE_CUTOFF_HZ = 0.5
#: Quality factor of the power-line notch filter.
NOTCH_Q = 30.0
#: Samples per block of the block-recursive filter (matrix products of this size).
BLOCK = 32
#: Rows (leads) per output product: ~140 KB of operands at 10 s and 100 Hz (measured best).
ROWS_PER_PRODUCT = 16


@functools.lru_cache(maxsize=64)
def bandpass_sos(low: float, high: float, fs: float) -> np.ndarray:
    """Second-order sections of an order-4 Butterworth band-pass ``low``–``high`` Hz."""
    w1, w2 = _prewarp(low, fs), _prewarp(high, fs)
    z, p, k = _butter_prototype(BANDPASS_ORDER)
    z, p, k = _lp2bp(z, p, k, np.sqrt(w1 * w2), w2 - w1)
    return _sections(*_bilinear(z, p, k))


@functools.lru_cache(maxsize=64)
def highpass_sos(cutoff: float, fs: float) -> np.ndarray:
    """Second-order sections of the baseline-removal Butterworth high-pass."""
    z, p, k = _butter_prototype(BASELINE_ORDER)
    z, p, k = _lp2hp(z, p, k, _prewarp(cutoff, fs))
    return _sections(*_bilinear(z, p, k))


@functools.lru_cache(maxsize=64)
def notch_sos(freq: float, fs: float) -> np.ndarray:
    """Second-order section of an IIR notch at ``freq`` Hz (quality factor :data:`NOTCH_Q`)."""
    w0 = 2.0 * freq / fs * np.pi
    gain = 1.0 / (1.0 + np.tan(w0 / NOTCH_Q / 2.0))
    b = gain * np.array([1.0, -2.0 * np.cos(w0), 1.0])
    a = np.array([1.0, -2.0 * gain * np.cos(w0), 2.0 * gain - 1.0])
    return np.concatenate([b, a])[None, :]


def filtfilt(x: np.ndarray, sos: np.ndarray) -> np.ndarray:
    """Zero-phase filter ``x`` along its last axis (the numbers of ``scipy.signal.sosfiltfilt``).

    Forward and backward passes over the odd extension of ``x`` by :func:`padlen` samples at
    each end, each pass starting in the steady state for the first sample. Returns float64.
    """
    pad = padlen(sos)
    n = x.shape[-1]
    if n <= pad:
        raise ValueError(f"the signal needs more than {pad} samples to filter, it has {n}")
    rows = np.asarray(x, dtype=np.float64).reshape(-1, n)
    system = _system(sos.tobytes(), len(sos))
    n_ext = n + 2 * pad
    width = -(-n_ext // BLOCK) * BLOCK
    # two buffers, each pass reading one and writing the other; the tails stay zero
    signal = np.empty((len(rows), width))
    signal[:, :pad] = 2.0 * rows[:, :1] - rows[:, pad:0:-1]
    signal[:, pad : pad + n] = rows
    signal[:, pad + n : n_ext] = 2.0 * rows[:, -1:] - rows[:, -2 : -pad - 2 : -1]
    signal[:, n_ext:] = 0.0
    filtered = np.empty_like(signal)
    system.run(signal, filtered)
    signal[:, :n_ext] = filtered[:, n_ext - 1 :: -1]  # the backward pass runs on reversed time
    system.run(signal, filtered)
    return filtered[:, n_ext - 1 - pad : pad - 1 : -1].reshape(x.shape)


def padlen(sos: np.ndarray) -> int:
    """The default odd-extension length of ``sosfiltfilt`` for ``sos``."""
    zeros = min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    return 3 * (2 * len(sos) + 1 - zeros)


def min_length(*soses: np.ndarray) -> int:
    """Shortest signal every filter in ``soses`` can run on (sosfiltfilt's default padding)."""
    return max([1, *(padlen(sos) + 1 for sos in soses)])


# --- design (zero-pole-gain, as scipy.signal does it) ------------------------------------------


def _prewarp(freq: float, fs: float) -> float:
    """Analog frequency of digital ``freq`` for the bilinear transform at scipy's fs = 2."""
    return 4.0 * np.tan(np.pi * (2.0 * freq / fs) / 2.0)


def _butter_prototype(order: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Analog Butterworth low-pass with cut-off 1 rad/s: no zeros, poles on the unit circle."""
    m = np.arange(-order + 1, order, 2)
    return np.array([]), -np.exp(1j * np.pi * m / (2 * order)), 1.0


def _lp2bp(
    z: np.ndarray, p: np.ndarray, k: float, wo: float, bw: float
) -> tuple[np.ndarray, np.ndarray, float]:
    degree = len(p) - len(z)
    z_lp, p_lp = z * bw / 2, p * bw / 2
    z_bp = np.concatenate([z_lp + np.sqrt(z_lp**2 - wo**2), z_lp - np.sqrt(z_lp**2 - wo**2)])
    p_bp = np.concatenate([p_lp + np.sqrt(p_lp**2 - wo**2), p_lp - np.sqrt(p_lp**2 - wo**2)])
    return np.append(z_bp, np.zeros(degree)), p_bp, k * bw**degree


def _lp2hp(
    z: np.ndarray, p: np.ndarray, k: float, wo: float
) -> tuple[np.ndarray, np.ndarray, float]:
    degree = len(p) - len(z)
    gain = k * float(np.real(np.prod(-z) / np.prod(-p)))
    return np.append(wo / z, np.zeros(degree)), wo / p, gain


def _bilinear(z: np.ndarray, p: np.ndarray, k: float) -> tuple[np.ndarray, np.ndarray, float]:
    fs2 = 4.0  # 2 * fs at scipy's normalised fs = 2
    degree = len(p) - len(z)
    gain = k * float(np.real(np.prod(fs2 - z) / np.prod(fs2 - p)))
    z_d = np.append((fs2 + z) / (fs2 - z), -np.ones(degree))
    return z_d, (fs2 + p) / (fs2 - p), gain


def _sections(z: np.ndarray, p: np.ndarray, k: float) -> np.ndarray:
    """Second-order sections ``[b0, b1, b2, 1, a1, a2]``, one per conjugate pole pair.

    Even-order designs only (every pole has its conjugate; as many zeros as poles, all real,
    here at +1 and −1): zeros are paired lowest with highest; the gain sits on the first
    section, as in scipy's ``zpk2sos``.
    """
    upper = p[p.imag > 0]
    if len(upper) * 2 != len(p) or len(z) != len(p) or np.abs(z.imag).max() > 1e-9:
        raise ValueError("only even-order designs with real zeros are supported")
    zeros = np.sort(z.real)
    sos = np.zeros((len(upper), 6))
    for i, pole in enumerate(upper):
        sos[i, :3] = np.poly([zeros[i], zeros[-1 - i]])
        sos[i, 3:] = [1.0, -2.0 * pole.real, abs(pole) ** 2]
    sos[0, :3] *= k
    return sos


# --- filtering ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _BlockSystem:
    """A cascade of sections as state space, with its block matrices (see the module doc)."""

    impulse: np.ndarray  # [L, L] lower-triangular Toeplitz of the impulse response (transposed)
    free: np.ndarray  # [M, L] output of the block's start state (transposed C A^j rows)
    drive: np.ndarray  # [L, M] end state from each input sample (transposed A^(L-1-i) B)
    step: np.ndarray  # [M, M] A^L transposed
    steady: np.ndarray  # [M] state for a constant unit input (sosfilt_zi)

    def run(self, x: np.ndarray, out: np.ndarray) -> None:
        """Filter the rows of ``x [R, N]`` into ``out``, from each row's first-sample steady state.

        ``N`` is a whole number of blocks; the output is computed in groups of about
        :data:`ROWS_PER_PRODUCT` rows so that each product's operands stay in cache.
        """
        n_rows, n = x.shape
        size = len(self.impulse)
        n_blocks = n // size
        drive = (x.reshape(-1, size) @ self.drive).reshape(n_rows, n_blocks, -1)
        starts = np.empty_like(drive)
        state = x[:, :1] * self.steady
        for b in range(n_blocks):
            starts[:, b] = state
            state = state @ self.step + drive[:, b]
        for first in range(0, n_rows, ROWS_PER_PRODUCT):
            part = slice(first, first + ROWS_PER_PRODUCT)
            target = out[part].reshape(-1, size)
            np.matmul(x[part].reshape(-1, size), self.impulse, out=target)
            target += starts[part].reshape(len(target), -1) @ self.free


@functools.lru_cache(maxsize=64)
def _system(sos_bytes: bytes, n_sections: int) -> _BlockSystem:
    sos = np.frombuffer(sos_bytes, dtype=np.float64).reshape(n_sections, 6)
    a, b, c, d = _state_space(sos)
    size = BLOCK
    m = len(b)
    free = np.empty((size, m))
    drive = np.empty((m, size))
    response = np.empty(size)
    power = np.eye(m)
    response[0] = d
    for j in range(size):
        free[j] = c @ power
        if j + 1 < size:
            response[j + 1] = c @ power @ b
        power = a @ power
    vector = b.copy()
    for i in range(size - 1, -1, -1):
        drive[:, i] = vector
        vector = a @ vector
    lag = np.subtract.outer(np.arange(size), np.arange(size))
    impulse = np.where(lag >= 0, response[np.clip(lag, 0, None)], 0.0)
    steady = np.linalg.solve(np.eye(m) - a, b)
    return _BlockSystem(impulse.T.copy(), free.T.copy(), drive.T.copy(), power.T.copy(), steady)


def _state_space(sos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """``(A, B, C, D)`` of the sections in cascade, each in transposed direct form II.

    Section ``k`` (``y = b0 u + s0``, ``s0' = b1 u − a1 y + s1``, ``s1' = b2 u − a2 y``) reads
    the output of section ``k − 1``, i.e. ``u_k = C_{k-1} s + D_{k-1} x``.
    """
    m = 2 * len(sos)
    a = np.zeros((m, m))
    b = np.zeros(m)
    c = np.zeros(m)
    d = 1.0
    for k, (b0, b1, b2, _, a1, a2) in enumerate(sos / sos[:, 3:4]):
        i = 2 * k
        gain = np.array([b1 - a1 * b0, b2 - a2 * b0])
        a[i : i + 2] += np.outer(gain, c)
        a[i : i + 2, i : i + 2] += np.array([[-a1, 1.0], [-a2, 0.0]])
        b[i : i + 2] = gain * d
        c, d = b0 * c, b0 * d
        c[i] += 1.0
    return a, b, c, d
