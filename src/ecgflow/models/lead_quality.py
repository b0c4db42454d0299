"""Per-lead quality model: p(static noise, burst noise, baseline drift, electrode problems).

Supervision is dense: every training record's four PTB-XL annotation columns
(``static_noise``, ``burst_noise``, ``baseline_drift``, ``electrodes_problems``), each parsed
with :func:`ecgflow.text.instructions.parse_leads`, give all 4 kinds × 12 leads as targets
(an annotation the parser cannot read leaves that kind's 12 targets out, never guessed).

Features per lead (:func:`lead_features`) from the raw signal in mV, at the model's sampling
rate (a record at another rate is resampled to it first; the model is fitted at the rate its
training records have, 500 Hz where the ingest read ``records500``): log standard deviation,
log range, log standard deviation of the first difference, the share of 15–45 Hz power (of
0.7–45 Hz; the band stops at 0.9 × Nyquist), the log share above 45 Hz (of 0.7 Hz to 0.9 ×
Nyquist; a constant at 100 Hz, where the band does not exist; at 500 Hz it lifts the
out-of-fold static-noise AUROC on the 100 shared 500 Hz records from 0.71 to 0.75, against
0.72 for the same records at 100 Hz), log power below 0.7 Hz and its share, log range of the
< 0.7 Hz component, kurtosis (signed log), burst ratio (log max / median of 0.5 s window
standard deviations of the first difference), zero-crossing rate of the first difference and
the correlation of each beat with the lead's median beat (R peaks of
:func:`ecgflow.signal.rhythm.r_peaks`; 0 and a record-level flag when fewer than 3 beats).
Each feature also enters relative to the record's median over its leads, and the lead's
identity enters one-hot. One scikit-learn ``LogisticRegression`` per kind (standardised
features, C = 0.05, which beat 0.5 and 5 on the shared PTB-XL folds; shared over the leads)
is fitted on training records only. Saved as plain numbers (``lead_quality.json``) and
evaluated with NumPy.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ecgflow.artifacts import LEAD_QUALITY
from ecgflow.errors import EcgflowError
from ecgflow.text.instructions import LEADS, NOISE_COLUMNS, LeadParseError, parse_leads

KIND = "gem-lead-quality"
#: PTB-XL's annotation columns, the model's kinds, in this order.
KINDS: tuple[str, ...] = tuple(NOISE_COLUMNS)
BASE_FEATURES: tuple[str, ...] = (
    "log_std",
    "log_range",
    "log_diff_std",
    "hf_share",
    "log_vhf_share",
    "log_lf_power",
    "lf_share",
    "log_drift_range",
    "kurtosis",
    "burst_ratio",
    "diff_zero_crossings",
    "beat_correlation",
)
FEATURES: tuple[str, ...] = (
    *BASE_FEATURES,
    *(f"{name}_rel" for name in BASE_FEATURES),
    "no_beats",
    *(f"lead_{lead}" for lead in LEADS),
)
HF_BAND_HZ = (15.0, 45.0)
LF_CUTOFF_HZ = 0.7
BURST_WINDOW_S = 0.5
_UPPER = {lead.upper(): i for i, lead in enumerate(LEADS)}


def lead_index(name: str) -> int | None:
    """The position of a lead name in :data:`LEADS` (case-insensitive), None when unknown."""
    return _UPPER.get(str(name).strip().upper())


def lead_features(x: np.ndarray, fs: float, leads: Sequence[str]) -> np.ndarray:
    """Float ``[C, len(FEATURES)]``: the features of each lead of ``x [C, T]`` (mV, ``fs``)."""
    from scipy import signal as sps
    from scipy import stats

    from ecgflow.signal.rhythm import r_peaks

    x = np.nan_to_num(np.asarray(x, dtype=np.float64))
    x = x - x.mean(axis=-1, keepdims=True)
    n_leads, n = x.shape
    diff = np.diff(x, axis=-1)
    nperseg = min(n, int(4 * fs))
    freqs, power = sps.welch(x, fs=fs, nperseg=nperseg, axis=-1)
    df = freqs[1] - freqs[0] if len(freqs) > 1 else 1.0
    high = min(HF_BAND_HZ[1], 0.9 * fs / 2)
    band = (freqs >= LF_CUTOFF_HZ) & (freqs <= high)
    hf = (freqs >= HF_BAND_HZ[0]) & (freqs <= high)
    lf = freqs < LF_CUTOFF_HZ
    total = power[:, band].sum(axis=-1) * df
    lf_power = power[:, lf].sum(axis=-1) * df
    hf_share = power[:, hf].sum(axis=-1) * df / np.maximum(total, 1e-12)
    # above 45 Hz (to 0.9 × Nyquist): only a record sampled above ~100 Hz has this band
    vhf = (freqs > HF_BAND_HZ[1]) & (freqs <= 0.9 * fs / 2)
    whole = power[:, (freqs >= LF_CUTOFF_HZ) & (freqs <= 0.9 * fs / 2)].sum(axis=-1)
    vhf_share = power[:, vhf].sum(axis=-1) / np.maximum(whole, 1e-12)
    lf_share = lf_power / np.maximum(total + lf_power, 1e-12)
    sos = sps.butter(2, LF_CUTOFF_HZ, btype="lowpass", fs=fs, output="sos")
    slow = sps.sosfiltfilt(sos, x, axis=-1) if n > 30 else x
    kurt = np.nan_to_num(stats.kurtosis(x, axis=-1))
    width = max(int(BURST_WINDOW_S * fs), 2)
    windows = diff[:, : (diff.shape[1] // width) * width].reshape(n_leads, -1, width)
    window_std = windows.std(axis=-1) if windows.shape[1] else np.zeros((n_leads, 1))
    burst = np.log((window_std.max(axis=-1) + 1e-4) / (np.median(window_std, axis=-1) + 1e-4))
    crossings = (np.diff(np.signbit(diff), axis=-1) != 0).mean(axis=-1)
    peaks = r_peaks(x, fs)
    correlation = _beat_correlation(x, fs, peaks)
    base = np.stack(
        [
            np.log(x.std(axis=-1) + 1e-3),
            np.log(np.ptp(x, axis=-1) + 1e-3),
            np.log(diff.std(axis=-1) + 1e-4),
            hf_share,
            np.log(vhf_share + 1e-6),
            np.log(lf_power + 1e-6),
            lf_share,
            np.log(np.ptp(slow, axis=-1) + 1e-3),
            np.sign(kurt) * np.log1p(np.abs(kurt)),
            burst,
            crossings,
            correlation,
        ],
        axis=1,
    )
    relative = base - np.median(base, axis=0, keepdims=True)
    no_beats = np.full((n_leads, 1), float(len(peaks) < 3))
    identity = np.zeros((n_leads, len(LEADS)))
    for row, name in enumerate(leads):
        index = lead_index(name)
        if index is not None:
            identity[row, index] = 1.0
    return np.concatenate([base, relative, no_beats, identity], axis=1)


def _beat_correlation(x: np.ndarray, fs: float, peaks: np.ndarray) -> np.ndarray:
    """Per lead: the mean correlation of each beat with the lead's median beat (0 if < 3)."""
    before, after = int(0.25 * fs), int(0.4 * fs)
    keep = [p for p in peaks if p - before >= 0 and p + after <= x.shape[1]]
    if len(keep) < 3:
        return np.zeros(x.shape[0])
    beats = np.stack([x[:, p - before : p + after] for p in keep], axis=1)  # [C, B, W]
    beats = beats - beats.mean(axis=-1, keepdims=True)
    template = np.median(beats, axis=1, keepdims=True)
    num = (beats * template).sum(axis=-1)
    den = np.sqrt((beats**2).sum(axis=-1) * (template**2).sum(axis=-1)) + 1e-12
    return (num / den).mean(axis=-1)


def lead_targets(annotations: dict[str, Any]) -> np.ndarray:
    """Float ``[12, 4]``: 1 where a kind's annotation names the lead, 0 where not, NaN unknown.

    A column whose annotation :func:`parse_leads` cannot read is NaN for all 12 leads.
    """
    out = np.zeros((len(LEADS), len(KINDS)))
    for k, column in enumerate(KINDS):
        value = annotations.get(column)
        text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else value
        try:
            named = parse_leads(str(text))
        except LeadParseError:
            out[:, k] = np.nan
            continue
        for lead in named:
            out[LEADS.index(lead), k] = 1.0
    return out


def aligned_features(x: np.ndarray, fs: float, leads: Sequence[str], model_fs: float) -> np.ndarray:
    """``[12, F]`` features in :data:`LEADS` order at ``model_fs`` (NaN rows: lead absent)."""
    from ecgflow.signal.resample import resample

    x = np.nan_to_num(np.asarray(x, dtype=np.float64))
    if abs(float(fs) - float(model_fs)) > 1e-6:
        x = resample(x, float(fs), float(model_fs))
    features = lead_features(x, float(model_fs), leads)
    out = np.full((len(LEADS), len(FEATURES)), np.nan)
    for row, name in enumerate(leads):
        index = lead_index(name)
        if index is not None:
            out[index] = features[row]
    return out


@dataclass
class LeadQuality:
    """Standardisation and one logistic regression per kind over the lead features."""

    fs: float
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # [K, F]
    intercept: np.ndarray  # [K]
    positives: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """``[..., 12, 4]`` p(kind) per lead from ``[..., 12, F]`` features (NaN rows stay NaN)."""
        z = ((features - self.mean) / self.scale) @ self.coef.T + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def predict(
        self, x: np.ndarray, fs: float, leads: Sequence[str]
    ) -> dict[str, dict[str, float]]:
        """``{kind: {lead: p}}`` for the leads of ``x [C, T]`` (mV at ``fs``) that it knows."""
        p = self.probabilities(aligned_features(x, fs, leads, self.fs))
        return {
            kind: {LEADS[i]: float(p[i, k]) for i in range(len(LEADS)) if np.isfinite(p[i, k])}
            for k, kind in enumerate(KINDS)
        }

    def to_json(self) -> dict[str, Any]:
        """The JSON document of ``lead_quality.json``."""
        return {
            "kind": KIND,
            "fs": self.fs,
            "leads": list(LEADS),
            "kinds": list(KINDS),
            "features": list(FEATURES),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept.tolist(),
            "positives": self.positives,
            "metrics": self.metrics,
        }

    @classmethod
    def from_json(cls, data: Any, where: str = LEAD_QUALITY) -> LeadQuality:
        """The inverse of :meth:`to_json`; a document of other features is refused."""
        try:
            if data.get("kind") != KIND:
                raise ValueError(f"kind is not {KIND!r}")
            if list(data["features"]) != list(FEATURES) or list(data["kinds"]) != list(KINDS):
                raise ValueError("its features or kinds differ from this version's")
            arrays = {
                k: np.asarray(data[k], dtype=np.float64)
                for k in ("mean", "scale", "coef", "intercept")
            }
            if arrays["coef"].shape != (len(KINDS), len(FEATURES)):
                raise ValueError(f"coef has shape {arrays['coef'].shape}")
            return cls(
                float(data["fs"]),
                **arrays,
                positives={str(k): int(v) for k, v in data.get("positives", {}).items()},
                metrics=dict(data.get("metrics") or {}),
            )
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise EcgflowError(f"{where}: not a lead-quality model ({exc})") from None

    def save(self, path: Path) -> None:
        """Write the model to ``path`` (``lead_quality.json``)."""
        Path(path).write_text(json.dumps(self.to_json()) + "\n", encoding="utf-8")


def load_lead_quality(path: Path) -> LeadQuality | None:
    """The model at ``path``, or None when there is no such file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EcgflowError(f"{path}: unreadable ({exc})") from None
    return LeadQuality.from_json(data, str(path))


def fit_lead_quality(features: np.ndarray, targets: np.ndarray, fs: float) -> LeadQuality:
    """Fit on ``features [N, 12, F]`` and ``targets [N, 12, 4]`` (NaN: unknown, left out).

    A kind with fewer than 2 positive or negative leads gets a constant: its smoothed rate.
    """
    from sklearn.linear_model import LogisticRegression

    flat_x = features.reshape(-1, features.shape[-1])
    flat_y = targets.reshape(-1, targets.shape[-1])
    rows = np.isfinite(flat_x).all(axis=1)
    mean = flat_x[rows].mean(axis=0)
    scale = flat_x[rows].std(axis=0)
    scale[scale < 1e-8] = 1.0
    z = (flat_x - mean) / scale
    coef = np.zeros((len(KINDS), flat_x.shape[1]))
    intercept = np.zeros(len(KINDS))
    positives = {}
    for k, kind in enumerate(KINDS):
        use = rows & np.isfinite(flat_y[:, k])
        y = flat_y[use, k].astype(int)
        positives[kind] = int(y.sum())
        if y.sum() >= 2 and (len(y) - y.sum()) >= 2:
            model = LogisticRegression(C=0.05, max_iter=2000)
            model.fit(z[use], y)
            coef[k], intercept[k] = model.coef_[0], model.intercept_[0]
        else:
            rate = (y.sum() + 0.5) / (len(y) + 1.0)
            intercept[k] = math.log(rate / (1.0 - rate))
    return LeadQuality(float(fs), mean, scale, coef, intercept, positives)


def cross_fitted(
    features: np.ndarray, targets: np.ndarray, fs: float, folds: int = 5
) -> np.ndarray:
    """``[N, 12, 4]`` out-of-fold probabilities: each record scored by a model not fitted on it.

    Records are dealt to ``folds`` folds in order (``i % folds``); with fewer records than
    folds each record is its own fold.
    """
    n = features.shape[0]
    folds = max(1, min(folds, n))
    out = np.full((*features.shape[:2], len(KINDS)), np.nan)
    if folds == 1:
        return fit_lead_quality(features, targets, fs).probabilities(features)
    fold = np.arange(n) % folds
    for f in range(folds):
        held = fold == f
        model = fit_lead_quality(features[~held], targets[~held], fs)
        out[held] = model.probabilities(features[held])
    return out


def lead_auroc(probabilities: np.ndarray, targets: np.ndarray) -> dict[str, dict[str, Any]]:
    """Per kind: lead-level AUROC (None: one class only), leads scored (n), positives, records."""
    from sklearn.metrics import roc_auc_score

    out = {}
    p = probabilities.reshape(-1, len(KINDS))
    y = targets.reshape(-1, len(KINDS))
    for k, kind in enumerate(KINDS):
        use = np.isfinite(p[:, k]) & np.isfinite(y[:, k])
        truth = y[use, k].astype(int)
        both = 0 < truth.sum() < len(truth)
        out[kind] = {
            "auroc": float(roc_auc_score(truth, p[use, k])) if both else None,
            "n": int(use.sum()),
            "positives": int(truth.sum()),
            "records": int(targets.shape[0]),
        }
    return out
