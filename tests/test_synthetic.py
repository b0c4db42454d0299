"""Tests for the synthetic 12-lead ECG generator: measured on the signals, not the metadata.

Every physiological check runs a small, conventional ECG measurement (band-pass QRS
detector, median beat, spatial-velocity QRS boundaries, ST level against the PR segment)
on the generated signals and averages over several records per class.
"""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np
import pytest
from scipy import signal as sps

from ecgflow.errors import EcgflowError
from ecgflow.io.record import STANDARD_LEADS
from ecgflow.io.synthetic_ecg import (
    SYNTHETIC_CLASSES,
    SyntheticECG,
    synthesize,
    synthesize_record,
)

FS = 500.0
PER_CLASS = 6
SEED = 11
LEAD = {name: i for i, name in enumerate(STANDARD_LEADS)}
INDEPENDENT = [LEAD[n] for n in ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")]
BEFORE_R, AFTER_R = 0.3, 0.45  # beat window around each R peak (s)
SINUS_AT_REST = (
    "normal_sinus_rhythm",
    "st_elevation_anterior",
    "st_elevation_inferior",
    "left_bundle_branch_block",
    "right_bundle_branch_block",
    "left_ventricular_hypertrophy",
)


# --- Measurements -----------------------------------------------------------------------------


def bandpass(x: np.ndarray, fs: float, low: float, high: float) -> np.ndarray:
    sos = sps.butter(2, [low, min(high, 0.45 * fs)], btype="bandpass", fs=fs, output="sos")
    return sps.sosfiltfilt(sos, x, axis=-1)


def r_peaks(sig: np.ndarray, fs: float) -> np.ndarray:
    """QRS detector: band-passed energy of the 8 independent leads, smoothed, peak-picked."""
    energy = np.sum(bandpass(sig[INDEPENDENT], fs, 8.0, 30.0) ** 2, axis=0)
    width = max(1, round(0.05 * fs))
    envelope = np.convolve(energy, np.ones(width) / width, mode="same")
    peaks, _ = sps.find_peaks(
        envelope, height=0.3 * np.percentile(envelope, 99), distance=round(0.25 * fs)
    )
    return peaks


def rr_intervals(sig: np.ndarray, fs: float) -> np.ndarray:
    return np.diff(r_peaks(sig, fs)) / fs


def measured_rate(sig: np.ndarray, fs: float) -> float:
    return 60.0 / float(np.mean(rr_intervals(sig, fs)))


def rr_cv(sig: np.ndarray, fs: float) -> float:
    rr = rr_intervals(sig, fs)
    return float(np.std(rr) / np.mean(rr))


def aligned_beats(ecg: SyntheticECG) -> np.ndarray:
    """Beats ``[n_beats, 12, window]`` of the 0.5-40 Hz filtered signal, aligned on R."""
    rec = ecg.record
    fs = rec.fs
    sig = bandpass(rec.signal.astype(np.float64), fs, 0.5, 40.0)
    b, a = round(BEFORE_R * fs), round(AFTER_R * fs)
    peaks = [p for p in r_peaks(rec.signal, fs) if p - b >= 0 and p + a <= rec.n_samples]
    return np.stack([sig[:, p - b : p + a] for p in peaks])


def median_beat(ecg: SyntheticECG) -> np.ndarray:
    return np.median(aligned_beats(ecg), axis=0)


class Fiducials:
    """QRS onset/offset (samples) on a median beat, from the multi-lead spatial velocity."""

    def __init__(self, beat: np.ndarray, fs: float, r_index: int) -> None:
        velocity = np.sqrt(np.sum(np.diff(beat[INDEPENDENT], axis=1) ** 2, axis=0))
        quiet = (
            velocity < 0.1 * velocity[r_index - round(0.1 * fs) : r_index + round(0.1 * fs)].max()
        )
        run = round(0.012 * fs)  # the envelope must stay quiet this long (ignores notches)
        self.fs = fs
        self.onset = self._walk(quiet, r_index, -1, run)
        self.offset = self._walk(quiet, r_index, +1, run)
        self.baseline = np.median(
            beat[:, self.onset - round(0.025 * fs) : self.onset - round(0.008 * fs)], axis=1
        )
        self.beat = beat

    @staticmethod
    def _walk(quiet: np.ndarray, start: int, step: int, run: int) -> int:
        """Step away from ``start`` until the next ``run`` samples are all quiet."""
        i = start
        while run <= i < quiet.size - run:
            ahead = quiet[i : i + run] if step > 0 else quiet[i - run + 1 : i + 1]
            if ahead.all():
                break
            i += step
        return i

    @property
    def qrs_ms(self) -> float:
        return (self.offset - self.onset) / self.fs * 1000.0

    def st_level(self, after_j_ms: float = 60.0) -> np.ndarray:
        """ST level (mV) of every lead at J + ``after_j_ms``, relative to the PR segment."""
        at = self.offset + round(after_j_ms / 1000.0 * self.fs)
        half = round(0.005 * self.fs)
        return np.mean(self.beat[:, at - half : at + half + 1], axis=1) - self.baseline

    def qrs(self, lead: str) -> np.ndarray:
        """One lead's QRS, baseline-corrected."""
        return self.beat[LEAD[lead], self.onset : self.offset + 1] - self.baseline[LEAD[lead]]


def fiducials(ecg: SyntheticECG) -> Fiducials:
    return Fiducials(median_beat(ecg), ecg.record.fs, round(BEFORE_R * ecg.record.fs))


def sokolow_lyon(ecg: SyntheticECG) -> float:
    f = fiducials(ecg)
    return float(-f.qrs("V1").min() + max(f.qrs("V5").max(), f.qrs("V6").max()))


def _pr_windows(ecg: SyntheticECG) -> np.ndarray:
    """Lead II, 240-70 ms before every R: where the P wave is, if there is one."""
    fs = ecg.record.fs
    r = round(BEFORE_R * fs)
    return aligned_beats(ecg)[:, LEAD["II"], r - round(0.24 * fs) : r - round(0.07 * fs)]


def p_wave_size(ecg: SyntheticECG) -> float:
    """Peak-to-peak of the mean PR window: the P wave survives averaging, noise does not."""
    mean_window = np.mean(_pr_windows(ecg), axis=0)
    return float(mean_window.max() - mean_window.min())


def p_wave_coherence(ecg: SyntheticECG) -> float:
    """Energy of the mean PR window over the mean energy of single ones (1: identical).

    A P wave repeats before every R; fibrillatory waves and the previous T at varying RR
    intervals do not, so their average cancels.
    """
    windows = sps.detrend(_pr_windows(ecg), axis=1)  # drop the tail of the previous T
    return float(np.sum(windows.mean(axis=0) ** 2) / np.mean(np.sum(windows**2, axis=1)))


# --- Fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def by_class() -> dict[str, list[SyntheticECG]]:
    groups: dict[str, list[SyntheticECG]] = defaultdict(list)
    for ecg in synthesize(PER_CLASS * len(SYNTHETIC_CLASSES), seed=SEED, fs=FS):
        groups[ecg.label].append(ecg)
    return groups


def mean_of(values: list[float]) -> float:
    return float(np.mean(values))


# --- Data set layout ----------------------------------------------------------------------------


def test_every_class_appears_equally_often(by_class: dict[str, list[SyntheticECG]]) -> None:
    assert set(by_class) == set(SYNTHETIC_CLASSES)
    assert all(len(records) == PER_CLASS for records in by_class.values())


def test_record_shape_dtype_units_and_metadata(by_class: dict[str, list[SyntheticECG]]) -> None:
    for label, records in by_class.items():
        for ecg in records:
            rec = ecg.record
            assert rec.signal.shape == (12, 5000) and rec.signal.dtype == np.float32
            assert rec.fs == FS and rec.leads == list(STANDARD_LEADS) and rec.units == ["mV"] * 12
            assert re.fullmatch(r"syn\d{5}", rec.record_id)
            assert re.fullmatch(r"SYN\d{5}", rec.patient_id or "")
            meta = rec.metadata
            assert meta["label"] == ecg.label == label and meta["report"] == ecg.report
            assert isinstance(meta["age"], int) and 18 <= meta["age"] <= 95
            assert meta["sex"] in ("male", "female")
            assert isinstance(meta["heart_rate"], float) and isinstance(meta["qrs_ms"], float)
            assert np.all(np.isfinite(rec.signal)) and np.abs(rec.signal).max() < 8.0
            rec.validate("synthetic")


@pytest.mark.parametrize("fs", [100.0, 250.0, 400.0, 500.0, 1000.0])
@pytest.mark.parametrize("seconds", [2.5, 10.0])
def test_shapes_for_sampling_rates_and_durations(fs: float, seconds: float) -> None:
    ecg = synthesize_record(3, seed=1, fs=fs, seconds=seconds)
    assert ecg.record.signal.shape == (12, round(fs * seconds))
    assert ecg.record.signal.dtype == np.float32
    assert ecg.record.fs == fs
    assert ecg.record.duration_s == pytest.approx(seconds)


@pytest.mark.parametrize("fs", [100.0, 500.0])
def test_r_peaks_are_detectable_at_low_and_high_rates(fs: float) -> None:
    for ecg in synthesize(9, seed=5, fs=fs):
        expected = ecg.record.metadata["heart_rate"]
        assert measured_rate(ecg.record.signal, fs) == pytest.approx(expected, abs=4.0), ecg.label


def test_patients_have_one_or_more_records_with_stable_demographics() -> None:
    records = [ecg.record for ecg in synthesize(240, seed=3, fs=100.0, seconds=2.0)]
    per_patient: dict[str, list] = defaultdict(list)
    for rec in records:
        per_patient[rec.patient_id].append(rec)
    assert 1.15 < len(records) / len(per_patient) < 1.6
    assert any(len(recs) >= 2 for recs in per_patient.values())
    for recs in per_patient.values():
        assert len({(r.metadata["age"], r.metadata["sex"]) for r in recs}) == 1


def test_reports_name_the_finding_and_vary_in_wording() -> None:
    keyword = {
        "normal_sinus_rhythm": "normal",
        "sinus_bradycardia": "bradycardia",
        "sinus_tachycardia": "tachycardia",
        "atrial_fibrillation": "atrial fibrillation",
        "st_elevation_anterior": "anterior",
        "st_elevation_inferior": "inferior",
        "left_bundle_branch_block": "left bundle branch block",
        "right_bundle_branch_block": "right bundle branch block",
        "left_ventricular_hypertrophy": "left ventricular hypertrophy",
    }
    wordings: dict[str, set[str]] = defaultdict(set)
    for ecg in synthesize(90, seed=2, fs=100.0, seconds=4.0):
        assert keyword[ecg.label] in ecg.report.lower(), ecg.report
        assert ecg.report.endswith(".")
        wordings[ecg.label].add(re.sub(r"\d+(\.\d+)?", "#", ecg.report))
    assert all(len(w) >= 2 for w in wordings.values())


# --- Determinism ------------------------------------------------------------------------------


def test_same_seed_gives_identical_records() -> None:
    a = list(synthesize(5, seed=42))
    b = list(synthesize(5, seed=42))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.record.signal, y.record.signal)
        assert x.record.metadata == y.record.metadata and x.record.patient_id == y.record.patient_id


def test_different_seeds_give_different_records() -> None:
    a = synthesize_record(0, seed=1)
    b = synthesize_record(0, seed=2)
    assert not np.array_equal(a.record.signal, b.record.signal)


def test_first_records_do_not_depend_on_n_and_any_record_stands_alone() -> None:
    short = list(synthesize(4, seed=9, fs=250.0))
    long = list(synthesize(12, seed=9, fs=250.0))
    for x, y in zip(short, long[:4], strict=True):
        np.testing.assert_array_equal(x.record.signal, y.record.signal)
        assert x.report == y.report and x.record.patient_id == y.record.patient_id
    alone = synthesize_record(10, seed=9, fs=250.0)
    np.testing.assert_array_equal(alone.record.signal, long[10].record.signal)


# --- Arguments ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n": -1}, "n"),
        ({"n": 2, "fs": 0.0}, "fs"),
        ({"n": 2, "fs": -250.0}, "fs"),
        ({"n": 2, "fs": float("nan")}, "fs"),
        ({"n": 2, "seconds": 0.0}, "seconds"),
        ({"n": 2, "seconds": -1.0}, "seconds"),
        ({"n": 2, "seed": -3}, "seed"),
        ({"n": 2.5}, "n"),
    ],
)
def test_bad_arguments_raise_ecgflow_error_naming_the_parameter(kwargs: dict, name: str) -> None:
    n = kwargs.pop("n")
    with pytest.raises(EcgflowError, match=rf"^{name} "):
        synthesize(n, **kwargs)


def test_bad_record_index_raises() -> None:
    with pytest.raises(EcgflowError, match=r"^index "):
        synthesize_record(-1)
    with pytest.raises(EcgflowError, match="fs"):
        synthesize_record(0, fs=0.0)


# --- Lead relationships ---------------------------------------------------------------------


def test_limb_leads_obey_einthoven_and_goldberger(by_class: dict[str, list[SyntheticECG]]) -> None:
    for records in by_class.values():
        s = records[0].record.signal.astype(np.float64)
        i, ii, iii, avr, avl, avf = (s[LEAD[n]] for n in ("I", "II", "III", "aVR", "aVL", "aVF"))
        np.testing.assert_allclose(iii, ii - i, atol=1e-5)
        np.testing.assert_allclose(avr + avl + avf, 0.0, atol=1e-5)
        np.testing.assert_allclose(avr, -(i + ii) / 2, atol=1e-5)
        np.testing.assert_allclose(avf, ii - i / 2, atol=1e-5)


def test_normal_amplitudes_and_intervals_are_realistic(
    by_class: dict[str, list[SyntheticECG]],
) -> None:
    r_ii, widths, t_ii = [], [], []
    for ecg in by_class["normal_sinus_rhythm"]:
        f = fiducials(ecg)
        r_ii.append(f.qrs("II").max())
        widths.append(f.qrs_ms)
        t_ii.append(f.beat[LEAD["II"], f.offset :].max() - f.baseline[LEAD["II"]])
    assert 0.8 < mean_of(r_ii) < 1.8
    assert 70.0 < mean_of(widths) < 115.0
    assert 0.15 < mean_of(t_ii) < 0.7  # upright T in II
    assert mean_of([p_wave_size(e) for e in by_class["normal_sinus_rhythm"]]) > 0.08


# --- Rhythm ----------------------------------------------------------------------------------


def test_heart_rates_match_the_rhythm_class(by_class: dict[str, list[SyntheticECG]]) -> None:
    for ecg in by_class["sinus_bradycardia"]:
        assert measured_rate(ecg.record.signal, FS) < 60.0
    for ecg in by_class["sinus_tachycardia"]:
        assert measured_rate(ecg.record.signal, FS) > 100.0
    for ecg in by_class["normal_sinus_rhythm"]:
        assert 60.0 <= measured_rate(ecg.record.signal, FS) <= 100.0
    for ecg in by_class["atrial_fibrillation"]:
        assert 60.0 < measured_rate(ecg.record.signal, FS) < 140.0


def test_atrial_fibrillation_is_irregular_and_sinus_is_not(
    by_class: dict[str, list[SyntheticECG]],
) -> None:
    af = [rr_cv(e.record.signal, FS) for e in by_class["atrial_fibrillation"]]
    sinus = [
        rr_cv(e.record.signal, FS)
        for label in ("normal_sinus_rhythm", "sinus_bradycardia", "sinus_tachycardia")
        for e in by_class[label]
    ]
    assert mean_of(af) > 0.15 and min(af) > 0.1
    assert max(sinus) < 0.06
    assert mean_of(af) > 4 * mean_of(sinus)


def test_atrial_fibrillation_has_no_p_waves(by_class: dict[str, list[SyntheticECG]]) -> None:
    af = by_class["atrial_fibrillation"]
    sinus = [e for label in (*SINUS_AT_REST, "sinus_bradycardia") for e in by_class[label]]
    assert max(p_wave_coherence(e) for e in af) < 0.6
    assert min(p_wave_coherence(e) for e in sinus) > 0.8


def test_atrial_fibrillation_baseline_oscillates_at_4_to_9_hz(
    by_class: dict[str, list[SyntheticECG]],
) -> None:
    """QRST cancellation: subtract the median beat at every R; what is left is the f waves."""
    for ecg in by_class["atrial_fibrillation"]:
        sig = bandpass(ecg.record.signal[LEAD["V1"]].astype(np.float64), FS, 0.5, 40.0)
        template = median_beat(ecg)[LEAD["V1"]]
        b = round(BEFORE_R * FS)
        residual = sig.copy()
        for p in r_peaks(ecg.record.signal, FS):
            lo, hi = max(p - b, 0), min(p - b + template.size, sig.size)
            residual[lo:hi] -= template[lo - (p - b) : hi - (p - b)]
        freqs, power = sps.welch(residual, fs=FS, nperseg=round(4 * FS))
        band = (freqs >= 3.0) & (freqs <= 15.0)
        assert 4.0 <= freqs[band][np.argmax(power[band])] <= 9.0


# --- Conduction and morphology ------------------------------------------------------------------


def test_bundle_branch_blocks_widen_the_qrs(by_class: dict[str, list[SyntheticECG]]) -> None:
    normal = [fiducials(e).qrs_ms for e in by_class["normal_sinus_rhythm"]]
    assert max(normal) < 120.0
    for label in ("left_bundle_branch_block", "right_bundle_branch_block"):
        widths = [fiducials(e).qrs_ms for e in by_class[label]]
        assert min(widths) > 120.0, (label, widths)


def test_right_bundle_branch_block_has_rsr_prime_in_v1(
    by_class: dict[str, list[SyntheticECG]],
) -> None:
    for ecg in by_class["right_bundle_branch_block"]:
        f = fiducials(ecg)
        v1 = f.qrs("V1")
        terminal = slice(round(0.6 * v1.size), None)
        assert v1[terminal].max() > 0.3  # R'
        assert np.argmin(v1) < round(0.6 * v1.size) + np.argmax(v1[terminal])  # S before R'
        assert f.qrs("I")[terminal].min() < -0.15  # wide terminal S in I
        assert f.qrs("V6")[terminal].min() < -0.15  # ... and in V6
    for ecg in by_class["normal_sinus_rhythm"]:
        v1 = fiducials(ecg).qrs("V1")
        assert v1[round(0.6 * v1.size) :].max() < 0.15


def test_left_bundle_branch_block_is_negative_in_v1_and_positive_in_v6(
    by_class: dict[str, list[SyntheticECG]],
) -> None:
    for ecg in by_class["left_bundle_branch_block"]:
        f = fiducials(ecg)
        v1, v6, lead_i = f.qrs("V1"), f.qrs("V6"), f.qrs("I")
        assert v1.sum() < 0 and -v1.min() > 3 * max(v1.max(), 0.05)  # deep QS / rS
        assert v6.sum() > 0 and v6.max() > 3 * max(-v6.min(), 0.05)  # broad monophasic R
        assert lead_i.sum() > 0


def test_st_elevation_in_the_territory_leads(by_class: dict[str, list[SyntheticECG]]) -> None:
    def mean_st(label: str) -> dict[str, float]:
        levels = np.mean([fiducials(e).st_level(60.0) for e in by_class[label]], axis=0)
        return dict(zip(STANDARD_LEADS, levels, strict=True))

    anterior, inferior, normal = (
        mean_st(label)
        for label in ("st_elevation_anterior", "st_elevation_inferior", "normal_sinus_rhythm")
    )
    assert all(anterior[lead] > 0.1 for lead in ("V1", "V2", "V3", "V4")), anterior
    assert anterior["V2"] > 0.2 and anterior["V3"] > 0.2
    assert all(inferior[lead] > 0.1 for lead in ("II", "III", "aVF")), inferior
    assert inferior["aVL"] < -0.05  # reciprocal depression
    assert all(abs(level) < 0.1 for level in normal.values()), normal


def test_left_ventricular_hypertrophy_meets_sokolow_lyon(
    by_class: dict[str, list[SyntheticECG]],
) -> None:
    lvh = [sokolow_lyon(e) for e in by_class["left_ventricular_hypertrophy"]]
    normal = [sokolow_lyon(e) for e in by_class["normal_sinus_rhythm"]]
    assert min(lvh) > 3.5, lvh
    assert max(normal) < 3.5, normal


def test_qrs_duration_metadata_matches_the_measurement(
    by_class: dict[str, list[SyntheticECG]],
) -> None:
    for label in ("normal_sinus_rhythm", "left_bundle_branch_block", "right_bundle_branch_block"):
        for ecg in by_class[label]:
            measured = fiducials(ecg).qrs_ms
            assert measured == pytest.approx(ecg.record.metadata["qrs_ms"], abs=25.0), label


# --- Speed ----------------------------------------------------------------------------------
