"""Synthetic, physiologically plausible 12-lead ECGs with labels and free-text reports.

The model in a few lines:

* The heart is one time-varying current dipole ``d(t)`` in Frank coordinates
  (X towards the patient's left, Y towards the feet, Z towards the back), in mV.
* Every beat adds a handful of waves to ``d(t)``: two for the P wave (right, then left
  atrium), two to six for the QRS complex, one asymmetric Gaussian for the T wave and,
  for ST elevation, a flat-topped "injury current" from the J point to the end of T. Each
  wave has a time, a width and a 3-D direction: McSharry's ECGSYN sum-of-Gaussians,
  extended to a 3-D dipole (Sayadi et al., 2010).
* The eight independent leads I, II, V1-V6 are the dipole seen through Dower's transform;
  III, aVR, aVL and aVF are derived from I and II (Einthoven, Goldberger), so the six limb
  leads are exactly consistent.
* A diagnostic class changes the rhythm (RR series, P waves, fibrillatory waves) or the
  waves (bundle branch blocks, hypertrophy, injury currents). Baseline wander, mains hum and
  muscle noise are added last, to the electrode-level leads.

Record ``i`` depends only on ``(seed, i)``, so any subset of a data set can be generated on
its own, in any order, in parallel.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
from scipy import signal as sps

from ecgflow.errors import EcgflowError
from ecgflow.io.record import STANDARD_LEADS, ECGRecord

SYNTHETIC_CLASSES: tuple[str, ...] = (
    "normal_sinus_rhythm",
    "sinus_bradycardia",
    "sinus_tachycardia",
    "atrial_fibrillation",
    "st_elevation_anterior",
    "st_elevation_inferior",
    "left_bundle_branch_block",
    "right_bundle_branch_block",
    "left_ventricular_hypertrophy",
)

Vector = tuple[float, float, float]

# --- Lead geometry --------------------------------------------------------------------------

#: Dower's transform: rows are the leads I, II, V1-V6, columns Frank X, Y, Z.
_DOWER = np.array(
    [
        [0.632, -0.235, 0.059],  # I
        [0.235, 1.066, -0.132],  # II
        [-0.515, 0.157, -0.917],  # V1
        [0.044, 0.164, -1.387],  # V2
        [0.882, 0.098, -1.277],  # V3
        [1.213, 0.127, -0.601],  # V4
        [1.125, 0.127, -0.086],  # V5
        [0.831, 0.076, 0.230],  # V6
    ]
)
#: Rows of the 12 standard leads as combinations of the 8 independent ones (I, II, V1-V6).
_LIMB_AND_CHEST = np.zeros((12, 8))
_LIMB_AND_CHEST[0, 0] = 1.0  # I
_LIMB_AND_CHEST[1, 1] = 1.0  # II
_LIMB_AND_CHEST[2, :2] = (-1.0, 1.0)  # III = II - I
_LIMB_AND_CHEST[3, :2] = (-0.5, -0.5)  # aVR = -(I + II) / 2
_LIMB_AND_CHEST[4, :2] = (1.0, -0.5)  # aVL = I - II / 2
_LIMB_AND_CHEST[5, :2] = (-0.5, 1.0)  # aVF = II - I / 2
_LIMB_AND_CHEST[6:, 2:] = np.eye(6)  # V1-V6
_INDEPENDENT = {
    name: row for row, name in enumerate(("I", "II", "V1", "V2", "V3", "V4", "V5", "V6"))
}

# --- Physiological parameters ---------------------------------------------------------------

#: A Gaussian wave is taken to start and end this many sigmas from its centre.
_EDGE_SIGMAS = 2.5
#: Shape exponent of the waves: 2 is a Gaussian, 6 a flat-topped plateau (injury current).
_GAUSSIAN, _PLATEAU = 2.0, 6.0

_PR_MS = (140.0, 190.0)  # P onset to QRS onset, at 75 bpm
_PR_LIMITS_MS = (120.0, 200.0)  # normal AV conduction, whatever the rate
_QTC_MS = (390.0, 440.0)  # Fridericia-corrected QT
_NORMAL_QRS_MS = 90.0  # QT lengthens by however much the QRS is wider than this
_T_SIGMA_MS = 42.0  # width of the T wave's down-slope at QT = _REFERENCE_QT_MS
_REFERENCE_QT_MS = 400.0
_T_UPSLOPE_RATIO = 1.5  # the T wave rises slower than it falls
_P_WAVES: tuple[tuple[float, float, Vector], ...] = (
    # (centre after P onset [ms], sigma [ms], dipole [mV]): right atrium, then left atrium.
    (45.0, 17.0, (0.02, 0.09, -0.06)),
    (62.0, 17.0, (0.08, 0.05, 0.05)),
)
_SINUS_RR_CV = (0.012, 0.035)  # respiratory sinus arrhythmia, as a fraction of the RR
_RESPIRATION_HZ = (0.15, 0.4)
_AF_RR_CV = (0.2, 0.32)  # "irregularly irregular"
_MIN_RR_S = 0.3
_FWAVE_HZ = (5.0, 8.0)  # fibrillatory waves: dominant frequency, wanders by about ±0.7 Hz
_FWAVE_MV = (0.05, 0.12)  # f-wave amplitude in V1
_FWAVE_DIPOLE: Vector = (-0.25, 0.55, -0.8)  # best seen in V1 and the inferior leads


@dataclass(frozen=True)
class _Wave:
    """One Gaussian wave of the dipole: when (ms from the R peak), how wide, which way (mV)."""

    at_ms: float
    sigma_ms: float
    dipole: Vector


@dataclass(frozen=True)
class _Morphology:
    """The ventricular waves of a class: QRS waves, T-wave dipole, optional injury current."""

    qrs: tuple[_Wave, ...]
    t_wave: Vector
    qrs_ms: tuple[float, float]  # QRS duration drawn per record (stretches the QRS waves)
    injury: Vector | None = None  # ST-segment shift, J point to T end
    strain_t_wave: Vector | None = None  # T wave of a strain pattern, in half the records
    min_sokolow_lyon_mv: float | None = None  # voltage criterion the QRS must always meet


@dataclass(frozen=True)
class _ClassSpec:
    """Everything that makes one diagnostic class: waves, rate range, rhythm."""

    morphology: _Morphology
    rate_bpm: tuple[float, float]
    fibrillation: bool = False


_NORMAL_QRS = (
    _Wave(-24.0, 7.0, (-0.20, 0.04, -0.22)),  # septum: small q in I/V6, r in V1
    _Wave(-8.0, 9.0, (0.30, 0.15, -0.45)),  # anterior free wall: R progression V2-V4
    _Wave(4.0, 10.0, (1.10, 0.85, 0.20)),  # main left-ventricular R
    _Wave(26.0, 9.0, (-0.25, -0.15, 0.90)),  # basal, posterior: S in V1-V3
)
_NORMAL_T: Vector = (0.26, 0.22, -0.24)
_NORMAL = _Morphology(_NORMAL_QRS, _NORMAL_T, qrs_ms=(80.0, 100.0))

_RBBB = _Morphology(
    qrs=(
        *_NORMAL_QRS[:3],
        _Wave(26.0, 9.0, (-0.15, -0.10, 0.45)),  # smaller S: the right ventricle is late
        # Slow right-ventricular activation, turning from anterior to superior:
        # R' in V1-V2, wide slurred S in I and V6.
        _Wave(62.0, 16.0, (-0.45, 0.05, -0.75)),
        _Wave(88.0, 16.0, (-0.45, -0.25, -0.25)),
    ),
    t_wave=(0.30, 0.18, 0.22),  # discordant: inverted in V1-V2
    qrs_ms=(135.0, 165.0),
)
_LBBB = _Morphology(
    qrs=(
        _Wave(-30.0, 18.0, (0.90, 0.20, 0.65)),  # septum activated left-to-right: no q in I/V6
        _Wave(28.0, 20.0, (1.00, -0.25, 1.15)),  # slow left ventricle: notch between the two
    ),
    t_wave=(-0.30, -0.02, -0.30),  # discordant: inverted in I, aVL, V5, V6
    qrs_ms=(130.0, 165.0),
)
_LVH = _Morphology(
    qrs=(
        _Wave(-24.0, 7.0, (-0.20, 0.04, -0.32)),
        _Wave(-8.0, 9.0, (0.30, 0.10, -0.40)),
        _Wave(4.0, 11.0, (2.60, 0.25, 0.80)),  # big, leftward, posterior R
        _Wave(28.0, 10.0, (-0.35, -0.25, 1.60)),  # deep S in V1-V2
    ),
    t_wave=_NORMAL_T,
    qrs_ms=(95.0, 110.0),
    strain_t_wave=(-0.30, 0.05, -0.20),  # inverted in I, aVL, V5, V6
    min_sokolow_lyon_mv=3.8,
)

_ANTERIOR_INJURY: Vector = (0.12, -0.08, -0.30)  # ST elevation V1-V4
_INFERIOR_INJURY: Vector = (-0.13, 0.24, 0.05)  # ST elevation II, III, aVF; depression aVL, I
_HYPERACUTE_T = 0.5  # T grows by this fraction of the injury current


def _injured(injury: Vector) -> _Morphology:
    """A normal QRS with an injury current and a hyperacute T wave in its direction."""
    tx, ty, tz = _NORMAL_T
    ix, iy, iz = injury
    k = _HYPERACUTE_T
    return _Morphology(
        _NORMAL_QRS, (tx + k * ix, ty + k * iy, tz + k * iz), qrs_ms=(80.0, 100.0), injury=injury
    )


_SPECS: dict[str, _ClassSpec] = {
    "normal_sinus_rhythm": _ClassSpec(_NORMAL, rate_bpm=(62.0, 95.0)),
    "sinus_bradycardia": _ClassSpec(_NORMAL, rate_bpm=(40.0, 55.0)),
    "sinus_tachycardia": _ClassSpec(_NORMAL, rate_bpm=(106.0, 145.0)),
    "atrial_fibrillation": _ClassSpec(_NORMAL, rate_bpm=(75.0, 125.0), fibrillation=True),
    "st_elevation_anterior": _ClassSpec(_injured(_ANTERIOR_INJURY), rate_bpm=(62.0, 98.0)),
    "st_elevation_inferior": _ClassSpec(_injured(_INFERIOR_INJURY), rate_bpm=(62.0, 92.0)),
    "left_bundle_branch_block": _ClassSpec(_LBBB, rate_bpm=(62.0, 95.0)),
    "right_bundle_branch_block": _ClassSpec(_RBBB, rate_bpm=(62.0, 95.0)),
    "left_ventricular_hypertrophy": _ClassSpec(_LVH, rate_bpm=(62.0, 92.0)),
}

# --- Noise ----------------------------------------------------------------------------------

_WANDER_MV = (0.03, 0.25)
_WANDER_HZ = (0.05, 0.45)
_MAINS_HZ = (50.0, 60.0)
_MAINS_MV = (0.002, 0.02)
_EMG_RMS_MV = (0.003, 0.025)
_EMG_BAND_HZ = (20.0, 150.0)

# --- Patients and data set layout -----------------------------------------------------------

_PATIENT_BLOCK = 8  # records are grouped into patients within blocks of this size
_SAME_PATIENT_P = 0.3  # chance a record belongs to the previous record's patient (~1.36/pt)
_MAX_HEART_ROTATION_DEG = 10.0  # anatomical variation of the heart's orientation
_VOLTAGE_GAIN = {"male": (0.95, 1.15), "female": (0.85, 1.02)}
# Distinct SeedSequence tags, so the class, patient and record streams never coincide.
_CLASS_STREAM, _GROUPING_STREAM, _PATIENT_STREAM = 0xC1A55, 0x6E0, 0xFA7


# --- Public API -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticECG:
    """One synthetic record with its class label and free-text report."""

    record: ECGRecord
    label: str
    report: str


def synthesize_record(
    index: int, *, seed: int = 0, fs: float = 500.0, seconds: float = 10.0
) -> SyntheticECG:
    """Generate record ``index`` of the synthetic data set ``seed``.

    The result depends only on ``(seed, index, fs, seconds)``.

    Raises:
        EcgflowError: for a negative ``index`` or ``seed``, ``fs <= 0`` or ``seconds <= 0``.

    """
    _check_count("index", index)
    _check_count("seed", seed)
    n_samples = _check_length(fs, seconds)
    fs = float(fs)
    label = _class_of(index, seed)
    spec = _SPECS[label]
    patient_number = _patient_number(index, seed)
    sex, age, rotation, gain = _patient(patient_number, seed)
    rng = np.random.default_rng([seed, index])

    rate = rng.uniform(*spec.rate_bpm)
    rr = _af_rr(rng, rate, seconds) if spec.fibrillation else _sinus_rr(rng, rate, seconds)
    r_times = _beat_times(rng, rr)
    in_range = r_times < seconds + 1.0
    r_times, rr = r_times[in_range], rr[in_range]
    qrs = _qrs_complex(rng, spec.morphology, rotation, gain)
    waves = _beat_waves(rng, spec, qrs, r_times, rr, rotation, gain)
    dipole = _render(waves, n_samples, fs)
    if spec.fibrillation:
        dipole += _fibrillatory_waves(rng, n_samples, fs, rotation)
    independent = _DOWER @ dipole
    independent += _noise(rng, n_samples, fs)
    signal = (_LIMB_AND_CHEST @ independent).astype(np.float32)

    heart_rate = _heart_rate(r_times, rr, seconds)
    report = _report(rng, label, heart_rate, qrs)
    record = ECGRecord(
        signal=signal,
        fs=fs,
        leads=list(STANDARD_LEADS),
        units=["mV"] * len(STANDARD_LEADS),
        record_id=f"syn{index:05d}",
        patient_id=f"SYN{patient_number:05d}",
        metadata={
            "age": age,
            "sex": sex,
            "label": label,
            "report": report,
            "heart_rate": round(heart_rate, 1),
            "qrs_ms": round(qrs.duration * 1000.0, 1),
        },
    )
    return SyntheticECG(record=record, label=label, report=report)


def synthesize(
    n: int, *, seed: int = 0, fs: float = 500.0, seconds: float = 10.0
) -> Iterator[SyntheticECG]:
    """Generate records ``0 .. n-1`` of the synthetic data set ``seed``, lazily.

    Arguments are checked when this is called, not when the iterator is first advanced.

    Raises:
        EcgflowError: for ``n < 0``, a negative ``seed``, ``fs <= 0`` or ``seconds <= 0``.

    """
    _check_count("n", n)
    _check_count("seed", seed)
    _check_length(fs, seconds)
    return (synthesize_record(i, seed=seed, fs=fs, seconds=seconds) for i in range(n))


# --- Argument checks ------------------------------------------------------------------------


def _check_count(name: str, value: object) -> None:
    """Raise unless ``value`` is an integer >= 0."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise EcgflowError(f"{name} must be an integer >= 0, got {value!r}")
    if value < 0:
        raise EcgflowError(f"{name} must be >= 0, got {value}")


def _check_length(fs: float, seconds: float) -> int:
    """Raise unless ``fs`` and ``seconds`` are positive and finite; return the sample count."""
    for name, value, unit in (("fs", fs, " Hz"), ("seconds", seconds, " s")):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise EcgflowError(f"{name} must be a number > 0, got {value!r}") from None
        if not np.isfinite(number) or number <= 0:
            raise EcgflowError(f"{name} must be a finite number > 0{unit}, got {value!r}")
    n_samples = round(float(fs) * float(seconds))
    if n_samples < 1:
        raise EcgflowError(
            f"fs * seconds must give at least one sample, got fs={fs} Hz, seconds={seconds} s"
        )
    return n_samples


# --- Data set layout: classes and patients --------------------------------------------------


def _class_of(index: int, seed: int) -> str:
    """The class of record ``index``: each block of 9 records holds every class once."""
    n_classes = len(SYNTHETIC_CLASSES)
    block, position = divmod(index, n_classes)
    order = np.random.default_rng([seed, block, _CLASS_STREAM]).permutation(n_classes)
    return SYNTHETIC_CLASSES[int(order[position])]


def _patient_number(index: int, seed: int) -> int:
    """The patient of record ``index``; a patient's records all lie in one block of 8."""
    block, position = divmod(index, _PATIENT_BLOCK)
    rng = np.random.default_rng([seed, block, _GROUPING_STREAM])
    new_patient = rng.random(_PATIENT_BLOCK) >= _SAME_PATIENT_P
    new_patient[0] = True
    slots = rng.permutation(np.cumsum(new_patient) - 1)
    return block * _PATIENT_BLOCK + int(slots[position])


def _patient(number: int, seed: int) -> tuple[str, int, np.ndarray, float]:
    """Sex, age, heart orientation (rotation matrix) and voltage gain of one patient."""
    rng = np.random.default_rng([seed, number, _PATIENT_STREAM])
    sex = "male" if rng.random() < 0.55 else "female"
    age = int(np.clip(np.rint(rng.normal(60.0, 15.0)), 18, 95))
    angles = np.deg2rad(rng.uniform(-1.0, 1.0, 3) * _MAX_HEART_ROTATION_DEG)
    return sex, age, _rotation_matrix(angles), float(rng.uniform(*_VOLTAGE_GAIN[sex]))


def _rotation_matrix(angles: np.ndarray) -> np.ndarray:
    """Rotation by ``angles`` (radians) about the X, then Y, then Z axis."""
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    about_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    about_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    about_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return about_z @ about_y @ about_x


# --- Rhythm ---------------------------------------------------------------------------------


def _beats_needed(seconds: float) -> int:
    """RR intervals to draw so the beats cover the record plus one second either side."""
    return int(np.ceil((seconds + 2.0) / _MIN_RR_S)) + 2


def _sinus_rr(rng: np.random.Generator, rate_bpm: float, seconds: float) -> np.ndarray:
    """Sinus RR intervals (s): a mean rate, breathing-driven sinus arrhythmia, a little jitter."""
    mean_rr = 60.0 / rate_bpm
    beat = np.arange(_beats_needed(seconds))
    breathing = np.sin(
        2 * np.pi * rng.uniform(*_RESPIRATION_HZ) * mean_rr * beat + rng.uniform(0, 2 * np.pi)
    )
    cv = rng.uniform(*_SINUS_RR_CV)
    jitter = rng.standard_normal(beat.size)
    # Var(sqrt(2) sin) = 1, so the CV is cv * sqrt(0.81 + 0.16), about cv.
    return mean_rr * (1.0 + cv * (0.9 * np.sqrt(2) * breathing + 0.4 * jitter))


def _af_rr(rng: np.random.Generator, rate_bpm: float, seconds: float) -> np.ndarray:
    """Atrial fibrillation RR intervals (s): independent, skewed, widely spread.

    The spread is standardised over the intervals that (roughly) fall inside the record, so
    that every record, however short, has the drawn mean rate and variability.
    """
    mean_rr = 60.0 / rate_bpm
    spread = rng.lognormal(0.0, 0.35, _beats_needed(seconds))
    inside = spread[int(1.0 / mean_rr) : int(np.ceil((1.0 + seconds) / mean_rr))]
    reference = inside if inside.size >= 3 else spread
    spread = (spread - reference.mean()) / reference.std()
    return np.maximum(mean_rr * (1.0 + rng.uniform(*_AF_RR_CV) * spread), _MIN_RR_S)


def _beat_times(rng: np.random.Generator, rr: np.ndarray) -> np.ndarray:
    """R-peak times (s), starting about one second before the record."""
    first = -1.0 + rng.uniform(0.0, rr[0])
    return first + np.concatenate(([0.0], np.cumsum(rr[:-1])))


def _heart_rate(r_times: np.ndarray, rr: np.ndarray, seconds: float) -> float:
    """Mean heart rate (bpm) of the beats inside the record."""
    inside = r_times[(r_times >= 0.0) & (r_times < seconds)]
    mean_rr = float(np.mean(np.diff(inside))) if inside.size >= 2 else float(np.mean(rr))
    return 60.0 / mean_rr


# --- Waves ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _WaveTrain:
    """One kind of wave (P, QRS, T, injury) for every beat: flat arrays, times in seconds."""

    centre: np.ndarray
    sigma_before: np.ndarray  # width of the rising side
    sigma_after: np.ndarray  # width of the falling side
    dipole: np.ndarray  # [n_waves, 3] mV
    power: float  # shape exponent: _GAUSSIAN or _PLATEAU


def _train(
    centre: np.ndarray,
    sigma: np.ndarray,
    dipole: np.ndarray,
    *,
    sigma_after: np.ndarray | None = None,
    power: float = _GAUSSIAN,
) -> _WaveTrain:
    """A wave train from arrays that broadcast against each other (flattened)."""
    centre, sigma = np.broadcast_arrays(centre, sigma)
    after = sigma if sigma_after is None else np.broadcast_to(sigma_after, sigma.shape)
    return _WaveTrain(
        centre=centre.ravel(),
        sigma_before=sigma.ravel(),
        sigma_after=after.ravel(),
        dipole=np.broadcast_to(dipole, (*centre.shape, 3)).reshape(-1, 3),
        power=power,
    )


@dataclass(frozen=True)
class _QRSComplex:
    """One record's QRS waves: centres relative to the R peak and widths (s), dipoles (mV)."""

    at: np.ndarray
    sigma: np.ndarray
    dipoles: np.ndarray  # [n_waves, 3]
    duration: float  # s

    @property
    def onset(self) -> float:
        """Start of the QRS relative to the R peak (s, negative)."""
        return float(np.min(self.at - _EDGE_SIGMAS * self.sigma))


def _qrs_complex(
    rng: np.random.Generator, morph: _Morphology, rotation: np.ndarray, gain: float
) -> _QRSComplex:
    """The class's QRS waves stretched to a random duration, scaled, jittered and rotated."""
    at = np.array([w.at_ms for w in morph.qrs]) / 1000.0
    sigma = np.array([w.sigma_ms for w in morph.qrs]) / 1000.0
    natural = float(np.max(at + _EDGE_SIGMAS * sigma) - np.min(at - _EDGE_SIGMAS * sigma))
    duration = rng.uniform(*morph.qrs_ms) / 1000.0
    stretch = duration / natural
    dipoles = np.array([w.dipole for w in morph.qrs]) * rng.uniform(0.9, 1.1, (at.size, 1))
    qrs = _QRSComplex(at * stretch, sigma * stretch, gain * dipoles @ rotation.T, duration)
    if morph.min_sokolow_lyon_mv is not None:
        shortfall = morph.min_sokolow_lyon_mv / _sokolow_lyon(qrs)
        if shortfall > 1.0:
            qrs = replace(qrs, dipoles=qrs.dipoles * shortfall)
    return qrs


def _beat_waves(
    rng: np.random.Generator,
    spec: _ClassSpec,
    qrs: _QRSComplex,
    r_times: np.ndarray,
    rr: np.ndarray,
    rotation: np.ndarray,
    gain: float,
) -> list[_WaveTrain]:
    """All P, QRS, ST and T waves of the record."""
    # Breathing moves the heart a little: QRS and T size vary by a few percent, beat to beat.
    breathing = 1.0 + 0.04 * np.sin(2 * np.pi * 0.25 * r_times + rng.uniform(0, 2 * np.pi))
    parts = [
        _train(r_times[:, None] + qrs.at, qrs.sigma, breathing[:, None, None] * qrs.dipoles),
    ]
    if not spec.fibrillation:
        parts.append(_p_waves(rng, r_times, rr, qrs.onset, rotation, gain))

    rr_before = np.concatenate(([rr[0]], rr[:-1]))
    qtc = rng.uniform(*_QTC_MS) / 1000.0
    qt = qtc * np.cbrt(rr_before) + (qrs.duration - _NORMAL_QRS_MS / 1000.0)
    t_end = r_times + qrs.onset + qt
    t_after = _T_SIGMA_MS / 1000.0 * qt / (_REFERENCE_QT_MS / 1000.0)
    t_dipole = np.array(_t_wave(rng, spec)) * rng.uniform(0.85, 1.15) * gain @ rotation.T
    parts.append(
        _train(
            t_end - _EDGE_SIGMAS * t_after,
            _T_UPSLOPE_RATIO * t_after,
            breathing[:, None] * t_dipole,
            sigma_after=t_after,
        )
    )
    injury = spec.morphology.injury
    if injury is not None:
        j_point = r_times + qrs.onset + qrs.duration
        dipole = np.array(injury) * rng.uniform(0.9, 1.3) * gain @ rotation.T
        half = (t_end - j_point) / 2
        parts.append(_train(j_point + half, 0.95 * half, dipole, power=_PLATEAU))
    return parts


def _t_wave(rng: np.random.Generator, spec: _ClassSpec) -> Vector:
    """The T-wave dipole; half the records of a class with a strain pattern show it."""
    strain = spec.morphology.strain_t_wave
    if strain is not None and rng.random() < 0.5:
        return strain
    return spec.morphology.t_wave


def _p_waves(
    rng: np.random.Generator,
    r_times: np.ndarray,
    rr: np.ndarray,
    qrs_onset: float,
    rotation: np.ndarray,
    gain: float,
) -> _WaveTrain:
    """Right- and left-atrial P waves before every QRS; PR shortens as the rate rises."""
    rr_before = np.concatenate(([rr[0]], rr[:-1]))
    pr_ms = rng.uniform(*_PR_MS) * (rr_before / 0.8) ** 0.15
    pr = np.clip(pr_ms, *_PR_LIMITS_MS) / 1000.0
    p_onset = r_times + qrs_onset - pr
    at = np.array([w[0] for w in _P_WAVES]) / 1000.0
    sigma = np.array([w[1] for w in _P_WAVES]) / 1000.0
    dipoles = np.array([w[2] for w in _P_WAVES]) * rng.uniform(0.8, 1.25) @ rotation.T
    return _train(p_onset[:, None] + at, sigma, gain * dipoles)


def _render(trains: list[_WaveTrain], n_samples: int, fs: float) -> np.ndarray:
    """Sum wave trains into a dipole signal ``[3, n_samples]`` (mV)."""
    dipole = np.zeros((3, n_samples))
    for train in trains:
        index, weights = _wave_shapes(train, n_samples, fs)
        for axis in range(3):
            dipole[axis] += np.bincount(
                index, (weights * train.dipole[:, axis : axis + 1]).ravel(), minlength=n_samples
            )
    return dipole


def _wave_shapes(train: _WaveTrain, n_samples: int, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Each wave evaluated on a short window of samples around its centre.

    Returns the flat sample indices ``[n_waves * window]`` (outside ones clipped to the last
    sample with a zero weight) and the shapes ``[n_waves, window]``, peak 1.
    """
    # exp(-|x|^p / 2) < 1e-4 beyond |x| = 18^(1/p) sigmas.
    widest = float(np.max(np.maximum(train.sigma_before, train.sigma_after)))
    half = int(np.ceil(widest * 18.0 ** (1 / train.power) * fs)) + 1
    index = np.rint(train.centre * fs).astype(np.int64)[:, None] + np.arange(-half, half + 1)
    x = index / fs - train.centre[:, None]
    x /= np.where(x < 0, train.sigma_before[:, None], train.sigma_after[:, None])
    shape = np.exp(-0.5 * (np.square(x) if train.power == _GAUSSIAN else np.abs(x) ** train.power))
    outside = (index < 0) | (index >= n_samples)
    shape[outside] = 0.0
    index[outside] = n_samples - 1
    return index.ravel(), shape


def _fibrillatory_waves(
    rng: np.random.Generator, n_samples: int, fs: float, rotation: np.ndarray
) -> np.ndarray:
    """Atrial f waves ``[3, n_samples]``: a 5-8 Hz oscillation whose rate and size wander."""
    t = np.arange(n_samples) / fs
    wander = rng.uniform(0, 2 * np.pi, 4)
    freq = rng.uniform(*_FWAVE_HZ) + 0.5 * np.sin(2 * np.pi * 0.13 * t + wander[0])
    freq += 0.2 * np.sin(2 * np.pi * 0.37 * t + wander[1])
    phase = 2 * np.pi * np.cumsum(freq) / fs + wander[2]
    size = rng.uniform(*_FWAVE_MV) * (1.0 + 0.35 * np.sin(2 * np.pi * 0.2 * t + wander[3]))
    wave = size * (np.sin(phase) + 0.25 * np.sin(2 * phase + 1.0))
    direction = np.array(_FWAVE_DIPOLE) / float(_DOWER[_INDEPENDENT["V1"]] @ _FWAVE_DIPOLE)
    return (direction @ rotation.T)[:, None] * wave[None, :]


# --- Noise ----------------------------------------------------------------------------------


def _noise(rng: np.random.Generator, n_samples: int, fs: float) -> np.ndarray:
    """Baseline wander + mains hum + muscle noise for the 8 independent leads, in mV."""
    t = np.arange(n_samples) / fs
    n_leads = _DOWER.shape[0]

    # Baseline wander: breathing and electrode drift, a different size and phase per lead.
    noise = sum(
        _sinusoid_per_lead(rng, rng.uniform(*_WANDER_HZ), rng.uniform(*_WANDER_MV) / 2, t, n_leads)
        for _ in range(2)
    )
    mains = float(rng.choice(_MAINS_HZ))
    hum = _sinusoid_per_lead(rng, mains, rng.uniform(*_MAINS_MV), t, n_leads)
    if mains < 0.45 * fs:  # a real recorder's anti-aliasing filter removes it otherwise
        noise += hum

    emg = sps.sosfilt(_emg_filter(fs), rng.standard_normal((n_leads, n_samples)), axis=1)
    emg *= rng.uniform(*_EMG_RMS_MV) / max(float(np.std(emg)), 1e-12)
    return noise + emg


def _sinusoid_per_lead(
    rng: np.random.Generator, freq: float, amplitude: float, t: np.ndarray, n_leads: int
) -> np.ndarray:
    """``[n_leads, len(t)]`` sinusoids of one frequency, random size (30-100 %) and phase."""
    size = amplitude * rng.uniform(0.3, 1.0, (n_leads, 1))
    phase = rng.uniform(0, 2 * np.pi, (n_leads, 1))
    angle = 2 * np.pi * freq * t
    # sin(a + p) = sin(a) cos(p) + cos(a) sin(p): two sines instead of one per lead.
    return size * (np.cos(phase) * np.sin(angle) + np.sin(phase) * np.cos(angle))


@lru_cache(maxsize=16)
def _emg_filter(fs: float) -> np.ndarray:
    """Band-pass (second-order sections) shaping white noise into muscle noise at ``fs``."""
    nyquist = fs / 2
    low = min(_EMG_BAND_HZ[0], 0.4 * nyquist)
    high = min(_EMG_BAND_HZ[1], 0.9 * nyquist)
    return sps.butter(2, [low, high], btype="bandpass", fs=fs, output="sos")


# --- Reports --------------------------------------------------------------------------------


#: Report wordings per class; ``{rhythm}`` reads e.g. "Sinus rhythm, rate 72 bpm."
_REPORTS: dict[str, tuple[str, ...]] = {
    "normal_sinus_rhythm": (
        "Normal sinus rhythm, rate {bpm} bpm. Normal ECG.",
        "Sinus rhythm at {bpm} bpm. Normal axis and intervals. Normal ECG.",
        "Normal sinus rhythm with a rate of {bpm} bpm. No acute ST-T changes.",
    ),
    "sinus_bradycardia": (
        "Sinus bradycardia, rate {bpm} bpm. Otherwise normal ECG.",
        "Sinus bradycardia at {bpm} bpm. Normal intervals, no ST-T changes.",
    ),
    "sinus_tachycardia": (
        "Sinus tachycardia, rate {bpm} bpm. Otherwise normal ECG.",
        "Sinus tachycardia at {bpm} bpm. No acute ST-T changes.",
    ),
    "atrial_fibrillation": (
        "Atrial fibrillation with a ventricular rate of {bpm} bpm.",
        "Atrial fibrillation, mean ventricular rate {bpm} bpm. No P waves.",
        "Irregularly irregular rhythm without P waves: atrial fibrillation, rate {bpm} bpm.",
    ),
    "st_elevation_anterior": (
        "{rhythm} ST elevation in V1-V4. Acute anterior myocardial infarction.",
        "{rhythm} Anterior ST elevation (V1-V4), consistent with acute anterior STEMI.",
    ),
    "st_elevation_inferior": (
        "{rhythm} ST elevation in II, III and aVF with reciprocal ST depression in aVL. "
        "Acute inferior myocardial infarction.",
        "{rhythm} Inferior ST elevation (II, III, aVF), consistent with acute inferior STEMI.",
    ),
    "left_bundle_branch_block": (
        "{rhythm} Left bundle branch block. QRS duration {qrs_ms} ms.",
        "{rhythm} Complete left bundle branch block (QRS {qrs_ms} ms).",
    ),
    "right_bundle_branch_block": (
        "{rhythm} Right bundle branch block. QRS duration {qrs_ms} ms.",
        "{rhythm} Complete right bundle branch block (QRS {qrs_ms} ms), rsR' in V1.",
    ),
    "left_ventricular_hypertrophy": (
        "{rhythm} Left ventricular hypertrophy by voltage criteria "
        "(Sokolow-Lyon {sokolow:.1f} mV).",
        "{rhythm} High QRS voltages consistent with left ventricular hypertrophy.",
    ),
}


def _sinus_phrase(rate: float) -> str:
    """How a cardiologist names a sinus rhythm at ``rate`` bpm."""
    if rate < 60:
        return "Sinus bradycardia"
    if rate > 100:
        return "Sinus tachycardia"
    return "Sinus rhythm"


def _report(rng: np.random.Generator, label: str, rate: float, qrs: _QRSComplex) -> str:
    """A short English report in one of the class's wordings, chosen by ``rng``."""
    options = _REPORTS[label]
    template = options[int(rng.integers(len(options)))]
    return template.format(
        rhythm=f"{_sinus_phrase(rate)}, rate {round(rate)} bpm.",
        bpm=round(rate),
        qrs_ms=round(qrs.duration * 100) * 10,
        sokolow=_sokolow_lyon(qrs) if "{sokolow" in template else 0.0,
    )


def _sokolow_lyon(qrs: _QRSComplex) -> float:
    """S(V1) + max(R(V5), R(V6)) in mV, measured on the noise-free QRS complex."""
    fs = 1000.0
    beat = _render([_train(qrs.at + 0.2, qrs.sigma, qrs.dipoles)], int(0.4 * fs), fs)
    leads = _DOWER @ beat
    v1, v5, v6 = (leads[_INDEPENDENT[name]] for name in ("V1", "V5", "V6"))
    return float(-v1.min() + max(v5.max(), v6.max()))
