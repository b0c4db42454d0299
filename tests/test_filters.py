"""ecgflow's own filter design and zero-phase filtering, held against scipy.signal."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal as sps

from ecgflow.signal import filters
from ecgflow.signal.resample import lowpass_taps

RATES = [100.0, 128.0, 250.0, 257.0, 360.0, 500.0, 1000.0]


def _designs(fs: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """(ecgflow's sections, scipy's sections) for each filter the preprocess stage uses."""
    return [
        (
            filters.bandpass_sos(0.5, 40.0, fs),
            sps.butter(filters.BANDPASS_ORDER, [0.5, 40.0], btype="bandpass", fs=fs, output="sos"),
        ),
        (
            filters.bandpass_sos(1.0, 0.45 * fs, fs),
            sps.butter(4, [1.0, 0.45 * fs], btype="bandpass", fs=fs, output="sos"),
        ),
        (
            filters.highpass_sos(filters.BASELINE_CUTOFF_HZ, fs),
            sps.butter(filters.BASELINE_ORDER, 0.5, btype="highpass", fs=fs, output="sos"),
        ),
        (
            filters.notch_sos(50.0, fs),
            sps.tf2sos(*sps.iirnotch(50.0, filters.NOTCH_Q, fs=fs)),
        ),
    ]


@pytest.mark.parametrize("fs", RATES)
def test_designs_have_scipys_frequency_response(fs: float) -> None:
    for own, reference in _designs(fs):
        assert own.shape == reference.shape
        _, got = sps.sosfreqz(own, 4096, fs=fs)
        _, want = sps.sosfreqz(reference, 4096, fs=fs)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)


@pytest.mark.parametrize("fs", RATES)
def test_filtfilt_gives_scipys_sosfiltfilt(fs: float) -> None:
    rng = np.random.default_rng(int(fs))
    x = rng.standard_normal((3, 12, int(10 * fs))).cumsum(axis=-1) + 50.0  # drift + offset
    for own, reference in _designs(fs):
        got = filters.filtfilt(x, own)
        want = sps.sosfiltfilt(reference, x, axis=-1)
        assert got.shape == x.shape and got.dtype == np.float64
        # ~1e-11 of the peak for the default band; bands reaching near Nyquist ~1e-8 at 1 kHz
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-8 * np.abs(want).max())


def test_filtfilt_at_the_shortest_length_and_any_shape() -> None:
    sos = filters.bandpass_sos(0.5, 40.0, 100.0)
    reference = sps.butter(4, [0.5, 40.0], btype="bandpass", fs=100.0, output="sos")
    n = filters.min_length(sos)
    assert n == 3 * (2 * len(sos) + 1) + 1  # sosfiltfilt's default padlen, plus one
    rng = np.random.default_rng(0)
    for shape in [(n,), (5, n), (2, 3, n + 33), (1, 1, 1000)]:
        x = rng.standard_normal(shape)
        np.testing.assert_allclose(
            filters.filtfilt(x, sos), sps.sosfiltfilt(reference, x, axis=-1), atol=1e-10
        )
    with pytest.raises(ValueError, match="more than 27 samples"):
        filters.filtfilt(np.zeros((2, n - 1)), sos)


def test_a_constant_passes_the_baseline_filter_as_zero() -> None:
    """The steady-state start: a constant signal leaves a zero-phase high-pass as zeros."""
    y = filters.filtfilt(np.full((2, 500), 3.0), filters.highpass_sos(0.5, 100.0))
    np.testing.assert_allclose(y, 0.0, atol=1e-9)


@pytest.mark.parametrize(("n_taps", "cutoff"), [(21, 0.5), (101, 0.2), (201, 0.1), (1281, 1 / 64)])
def test_lowpass_taps_are_scipys_firwin(n_taps: int, cutoff: float) -> None:
    np.testing.assert_allclose(
        lowpass_taps(n_taps, cutoff),
        sps.firwin(n_taps, cutoff, window=("kaiser", 5.0)),
        rtol=0,
        atol=1e-15,
    )
