"""The evidence-only baseline beside GEM: a logistic regression per question family, no LM.

Evidence per record (``ecgflow.stages.finetune_gem.record_evidence``, which measures it with
``ecgflow.signal``), from the same preprocessed signal GEM reads:

- per lead: log standard deviation, log standard deviation of the first difference (fast
  noise), log range of the 0.2 s moving average (baseline drift), ECG-flow's high-frequency
  power share (:func:`ecgflow.signal.quality.noise_ratio`) and the zero-crossing rate of the
  first difference;
- per record: heart rate, RR coefficient of variation and the QRS axis (cos, sin) measured by
  :func:`ecgflow.signal.rhythm.measure_rhythm` (zeros plus a "missing" flag when no beats).

- per lead: the per-lead quality model's p(static noise, burst noise, baseline drift,
  electrode problems) (:mod:`ecgflow.models.lead_quality`; the same probabilities the
  evidence text shows).

A question's features (:func:`question_features`) are the asked lead's statistics (the
question names it, ``"lead V1"``; the record's maximum otherwise, with a flag), the maximum and
median over the leads, the record's rhythm and, for a noise question, the lead-quality p of
the asked kind (``"any kind of noises"``: of any kind, 1 − Π(1 − p)) at the asked lead, its
maximum and its mean over the leads (zeros for other questions and without a model: only the
noise families use them; given to every family they cost the label and feature families
balanced accuracy on the shared data). One scikit-learn ``LogisticRegression``
(standardised features, C = 1) is fitted per ``(source, template, attribute)`` family on the
training questions; a family with fewer than ``min_questions`` questions or a single answer
falls back to ``(source, template)``, then to the source — except that a family with enough
questions all sharing one answer answers it (its majority). Saved as plain numbers
(``evidence_baseline.json``), read with NumPy.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ecgflow.errors import EcgflowError
from ecgflow.models.gem_calibration import Group, asked_lead, group_key, read_optional_json

EVIDENCE_BASELINE = "evidence_baseline.json"
LEAD_STATS = ("log_std", "log_diff_std", "log_drift", "noise_ratio", "diff_zero_crossings")
RHYTHM = ("heart_rate_bpm", "rr_cv", "axis_cos", "axis_sin", "no_beats")


QUALITY = ("p_asked_kind_asked_lead", "p_asked_kind_max", "p_asked_kind_mean")
#: the noise attributes' column in the quality matrix (None: any kind)
_KIND_COLUMN: dict[str, int | None] = {
    "static noise": 0,
    "burst noise": 1,
    "baseline drift": 2,
    "electrodes problems": 3,
    "any kind of noises": None,
}


@dataclass(frozen=True)
class Evidence:
    """Per-lead statistics ``[C, len(LEAD_STATS)]`` and the record's rhythm features.

    ``quality``: ``[C, 4]`` per-lead p(static noise, burst noise, baseline drift, electrode
    problems), or None.
    """

    leads: np.ndarray
    rhythm: np.ndarray
    quality: np.ndarray | None = None

    @property
    def heart_rate_bpm(self) -> float:
        """The measured heart rate (NaN when no beats were found)."""
        return math.nan if self.rhythm[4] else float(self.rhythm[0]) * 100.0


def question_features(
    evidence: Evidence, question: str, leads: Sequence[str], attribute: Any = None
) -> np.ndarray:
    """The feature vector of one question about one record (see the module docstring).

    ``attribute``: the question's (``"static noise"``, …); its lead quality is used for noise.
    """
    lead = asked_lead(question, leads)
    per_lead = evidence.leads
    top = per_lead.max(axis=0)
    asked = top if lead is None else per_lead[lead]
    quality = np.zeros(len(QUALITY))
    if evidence.quality is not None and attribute in _KIND_COLUMN:
        column = _KIND_COLUMN[attribute]
        p = evidence.quality
        own = 1.0 - np.prod(1.0 - p, axis=1) if column is None else p[:, column]
        quality = np.array([own.max() if lead is None else own[lead], own.max(), own.mean()])
    return np.concatenate(
        [asked, [float(lead is None)], top, np.median(per_lead, axis=0), evidence.rhythm, quality]
    )


_FEATURES = {"lead": list(LEAD_STATS), "rhythm": list(RHYTHM), "quality": list(QUALITY)}


@dataclass
class _Family:
    classes: list[str]
    majority: str
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    coef: np.ndarray | None = None  # [1 or K, F]
    intercept: np.ndarray | None = None

    def probabilities(self, features: np.ndarray) -> np.ndarray | None:
        if self.coef is None:
            return None
        assert self.mean is not None and self.scale is not None and self.intercept is not None
        z = self.coef @ ((features - self.mean) / self.scale) + self.intercept
        if len(self.classes) == 2:
            p = 1.0 / (1.0 + math.exp(-float(z[0])))
            return np.array([1.0 - p, p])
        e = np.exp(z - z.max())
        return e / e.sum()


@dataclass
class EvidenceBaseline:
    """Fitted families by group key (most specific first when predicting)."""

    families: dict[str, _Family] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    min_questions: int = 20

    def predict(
        self, group: Group, features: np.ndarray, options: Sequence[str]
    ) -> tuple[str, float]:
        """The answer among ``options`` and p(yes) (NaN when yes/no are not both options)."""
        family = None
        for n in (3, 2, 1):
            key = group_key(group[:n])
            candidate = self.families.get(key)
            if candidate is None:
                continue
            enough = self.counts.get(key, 0) >= self.min_questions
            if candidate.coef is not None or enough or n == 1:
                family = candidate
                break
        if family is None:
            return options[0], math.nan
        p = family.probabilities(features)
        if p is None:
            answer = family.majority if family.majority in options else options[0]
            return answer, (1.0 if answer == "yes" else 0.0) if "yes" in options else math.nan
        scores = {c: float(v) for c, v in zip(family.classes, p, strict=True)}
        answer = max(options, key=lambda o: scores.get(o, -1.0))
        yes, no = scores.get("yes", 0.0), scores.get("no", 0.0)
        p_yes = yes / (yes + no) if "yes" in options and "no" in options and yes + no else math.nan
        return answer, p_yes

    def to_json(self) -> dict[str, Any]:
        """The JSON document of ``evidence_baseline.json``."""
        families = {}
        for key, f in sorted(self.families.items()):
            entry: dict[str, Any] = {"classes": f.classes, "majority": f.majority}
            if f.coef is not None:
                assert f.mean is not None and f.scale is not None and f.intercept is not None
                entry |= {
                    "mean": f.mean.tolist(),
                    "scale": f.scale.tolist(),
                    "coef": f.coef.tolist(),
                    "intercept": f.intercept.tolist(),
                }
            families[key] = entry
        return {
            "kind": "gem-evidence-baseline",
            "features": _FEATURES,
            "families": families,
            "counts": dict(sorted(self.counts.items())),
            "min_questions": self.min_questions,
        }

    @classmethod
    def from_json(cls, data: Any, where: str = EVIDENCE_BASELINE) -> EvidenceBaseline:
        """The inverse of :meth:`to_json`."""
        try:
            if data.get("kind") != "gem-evidence-baseline":
                raise ValueError("kind is not 'gem-evidence-baseline'")
            if data.get("features") != _FEATURES:
                raise ValueError("fitted on other features than this version's: fit it again")
            families = {}
            for key, e in data["families"].items():
                arrays = {
                    k: np.asarray(e[k], dtype=np.float64)
                    for k in ("mean", "scale", "coef", "intercept")
                    if k in e
                }
                families[str(key)] = _Family(
                    [str(c) for c in e["classes"]], str(e["majority"]), **arrays
                )
            counts = {str(k): int(v) for k, v in data.get("counts", {}).items()}
            return cls(families, counts, int(data.get("min_questions", 20)))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise EcgflowError(f"{where}: not an evidence baseline ({exc})") from None

    def save(self, folder: Path) -> None:
        """Write ``folder/evidence_baseline.json``."""
        text = json.dumps(self.to_json()) + "\n"
        (Path(folder) / EVIDENCE_BASELINE).write_text(text, encoding="utf-8")


def load_evidence_baseline(folder: Path) -> EvidenceBaseline | None:
    """``folder/evidence_baseline.json``, or None when the model has none."""
    path = Path(folder) / EVIDENCE_BASELINE
    data = read_optional_json(path)
    return None if data is None else EvidenceBaseline.from_json(data, str(path))


def fit_evidence_baseline(
    groups: Sequence[Group],
    features: np.ndarray,
    answers: Sequence[str],
    min_questions: int = 20,
) -> EvidenceBaseline:
    """One logistic regression per family and per coarser level (see the module docstring)."""
    from sklearn.linear_model import LogisticRegression

    baseline = EvidenceBaseline(min_questions=min_questions)
    for level in (1, 2, 3):
        members: dict[str, list[int]] = defaultdict(list)
        for i, group in enumerate(groups):
            members[group_key(group[:level])].append(i)
        for key, rows in sorted(members.items()):
            y = [answers[i] for i in rows]
            counts = Counter(y)
            majority = min(counts, key=lambda a: (-counts[a], a))
            family = _Family(sorted(counts), majority)
            baseline.counts[key] = len(rows)
            if len(rows) >= min_questions and len(counts) > 1 and min(counts.values()) >= 2:
                x = features[rows]
                mean, scale = x.mean(axis=0), x.std(axis=0)
                scale[scale < 1e-8] = 1.0
                model = LogisticRegression(C=1.0, max_iter=500)
                model.fit((x - mean) / scale, y)
                family = _Family(
                    [str(c) for c in model.classes_],
                    majority,
                    mean,
                    scale,
                    model.coef_.astype(np.float64),
                    model.intercept_.astype(np.float64),
                )
            baseline.families[key] = family
    return baseline
