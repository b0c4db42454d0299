r"""Evidence text: what the project measured on one record, as short lines the LM reads.

GEM's prompt carries it right after ``<ecg>`` (:func:`with_evidence`), in training
(build-instructions writes it into every conversation), evaluation and serving alike::

    <ecg>
    Leads: I ok; II ok; III ok; aVR ok; aVL ok; aVF ok; V1 static 0.82; V2 ok; ...
    Heart rate 72 bpm (normal rate, 60 to 100 beats per minute); RR variability 4 % ...
    Classifier: normal ECG likely 0.91; myocardial infarction unlikely 0.04; ...
    Asked lead V1: static 0.82
    Is there static noise in lead V1?

- **Leads**: each lead's name, then the kinds (:data:`KIND_WORDS`: static, burst, drift,
  electrode) the per-lead quality model (:mod:`ecgflow.models.lead_quality`) gives at least
  :data:`REPORT_P` (the likeliest one, :data:`MAX_KINDS`, with its probability to 2 decimals),
  else ``ok``;
- **rhythm**: heart rate with its category and range in the feature questions' words
  (:func:`rate_words`), RR variability (standard
  deviation / mean of the RR intervals; regular below ``REGULAR_RR_CV``) and the QRS axis with
  its category — the feature questions' thresholds, so the LM can read the words — from
  :func:`ecgflow.signal.rhythm.measure_rhythm` (R peaks
  on the 5–15 Hz energy of all leads). PR, QRS and QT durations are left out: the project has
  no wave delineation that measures them robustly (R peaks only);
- **asked lead** (when the question names one, :func:`asked_lead_line`): that lead's words of
  the leads line again, right before the question: a 135M-parameter LM fine-tuned for a few
  hundred steps did not learn to find the asked lead among twelve (val balanced accuracy of
  the lead-level noise questions 0.49) while it copies record-level words (features 1.000);
- **classifier** (when given): the per-label probabilities, the :data:`MAX_LABELS` likeliest;
  with the classifier's key (:class:`ClassifierKey`: each label's description and tuned
  threshold) each label is named as the label questions name it and called ``likely`` (at or
  above its threshold) or ``unlikely`` — the words an LM can copy into a label answer, where
  a bare ``MI 0.36`` needs a per-label threshold it would have to learn.

Deterministic (rounded numbers, fixed order) and compact: on the shared PTB-XL records, with
the classifier's key, the human turn (evidence, asked lead and question) is 161 SmolLM2 tokens
at the median and 233 at most; GEM's text piece is 224 tokens (``max_prompt_tokens``; the
0.4 % longer ones lose their first tokens, the asked lead's line and the question stay).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ecgflow.text.instructions import (
    BRADYCARDIA_BPM,
    ECG_TOKEN,
    LEADS,
    NOISE_COLUMNS,
    REGULAR_RR_CV,
    TACHYCARDIA_BPM,
    label_phrase,
)

if TYPE_CHECKING:
    from ecgflow.models.lead_quality import LeadQuality
    from ecgflow.signal.rhythm import Rhythm

#: The lead a question names: "lead V1", "lead aVL" (any case).
LEAD_NAMED = re.compile(r"\blead\s+(iii|ii|i|avr|avl|avf|v[1-6])\b", re.IGNORECASE)
#: How the leads line starts, and the asked lead's line (:func:`asked_lead_line`).
LEADS_PREFIX = "Leads: "
ASKED_LEAD = "Asked lead"
#: A kind is named after a lead from this probability up.
REPORT_P = 0.25
#: Kinds named per lead, at most (one keeps 12 flagged leads within the token budget).
MAX_KINDS = 1
#: Classifier labels shown, at most (the likeliest).
MAX_LABELS = 5
#: Each kind's word in the leads line (short: twelve leads share the prompt's token budget).
KIND_WORDS: dict[str, str] = {
    "static_noise": "static",
    "burst_noise": "burst",
    "baseline_drift": "drift",
    "electrodes_problems": "electrode",
}


@dataclass(frozen=True)
class ClassifierKey:
    """How the classifier line names a label: its description and its tuned threshold."""

    description: str
    threshold: float

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> dict[str, ClassifierKey]:
        """``{label: {"description", "threshold"}}`` → ``{label: ClassifierKey}``."""
        return {
            str(k): ClassifierKey(str(v["description"]), float(v["threshold"]))
            for k, v in data.items()
        }


def classifier_key(classifier: Any) -> dict[str, ClassifierKey]:
    """Each label named as its label question names it, with its tuned threshold.

    ``classifier``: its ``labels``, ``descriptions`` (by label) and ``thresholds`` (in label
    order), as :class:`~ecgflow.mlflow_model.RawECGClassifier` has them.
    """
    return {
        label: ClassifierKey(label_phrase(classifier.descriptions.get(label) or label), float(t))
        for label, t in zip(classifier.labels, classifier.thresholds, strict=True)
    }


@dataclass(frozen=True)
class RecordEvidence:
    """One record's evidence: rhythm, per-lead quality and the classifier's probabilities."""

    n_beats: int
    heart_rate_bpm: float | None
    rr_cv: float | None
    axis_deg: float | None
    lead_quality: dict[str, dict[str, float]] | None = None  # {kind column: {lead: p}}
    classifier: dict[str, float] | None = None  # {label: p}
    classifier_key: dict[str, ClassifierKey] | None = None  # {label: how the text names it}

    def text(self) -> str:
        """The evidence lines (see the module docstring)."""
        lines = []
        if self.lead_quality:
            lines.append(LEADS_PREFIX + "; ".join(self._lead_words()))
        lines.append(self._rhythm_line())
        if self.classifier:
            lines.append(self._classifier_line())
        return "\n".join(lines)

    def _classifier_line(self) -> str:
        assert self.classifier is not None
        top = sorted(self.classifier.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_LABELS]
        key = self.classifier_key or {}
        if not all(label in key for label, _ in top):
            return "Classifier: " + ", ".join(f"{k} {v:.2f}" for k, v in top)
        words = [
            f"{key[k].description} {'likely' if v >= key[k].threshold else 'unlikely'} {v:.2f}"
            for k, v in top
        ]
        return "Classifier: " + "; ".join(words)

    def _lead_words(self) -> list[str]:
        assert self.lead_quality is not None
        words = []
        for lead in LEADS:
            found = [
                (p, KIND_WORDS.get(kind, kind))
                for kind, per_lead in self.lead_quality.items()
                if (p := per_lead.get(lead)) is not None and p >= REPORT_P
            ]
            if not any(lead in per_lead for per_lead in self.lead_quality.values()):
                continue
            found.sort(key=lambda item: (-item[0], item[1]))
            named = ", ".join(f"{name} {p:.2f}" for p, name in found[:MAX_KINDS])
            words.append(f"{lead} {named or 'ok'}")
        return words

    def _rhythm_line(self) -> str:
        from ecgflow.signal.rhythm import axis_category

        if self.heart_rate_bpm is None:
            return "Heart rate not measured (fewer than 3 beats found)"
        rate = self.heart_rate_bpm
        parts = [f"Heart rate {round(rate)} bpm ({rate_words(rate)})"]
        if self.rr_cv is not None:
            regular = "regular" if self.rr_cv < REGULAR_RR_CV else "irregular"
            parts.append(f"RR variability {round(100 * self.rr_cv)} % ({regular})")
        if self.axis_deg is not None:
            parts.append(f"QRS axis {round(self.axis_deg)}° ({axis_category(self.axis_deg)})")
        return "; ".join(parts)

    def quality_matrix(self) -> np.ndarray:
        """Float ``[12, 4]`` p per lead (:data:`LEADS` order) and kind (0 where not given)."""
        out = np.zeros((len(LEADS), len(NOISE_COLUMNS)))
        for k, kind in enumerate(NOISE_COLUMNS):
            for i, lead in enumerate(LEADS):
                out[i, k] = (self.lead_quality or {}).get(kind, {}).get(lead, 0.0)
        return out

    def to_json(self) -> dict[str, Any]:
        """Plain numbers (probabilities to 4 decimals) and the text."""
        return {
            "n_beats": self.n_beats,
            "heart_rate_bpm": _round(self.heart_rate_bpm, 1),
            "rr_cv": _round(self.rr_cv, 4),
            "axis_deg": _round(self.axis_deg, 1),
            "lead_quality": None
            if self.lead_quality is None
            else {
                k: {lead: round(p, 4) for lead, p in v.items()}
                for k, v in self.lead_quality.items()
            },
            "classifier": None
            if self.classifier is None
            else {k: round(p, 4) for k, p in self.classifier.items()},
            "classifier_key": None
            if self.classifier_key is None
            else {
                k: {"description": v.description, "threshold": round(v.threshold, 4)}
                for k, v in self.classifier_key.items()
            },
            "text": self.text(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RecordEvidence:
        """The inverse of :meth:`to_json` (the text is recomputed)."""
        quality = data.get("lead_quality")
        classifier = data.get("classifier")
        key = data.get("classifier_key")
        return cls(
            int(data.get("n_beats") or 0),
            _float(data.get("heart_rate_bpm")),
            _float(data.get("rr_cv")),
            _float(data.get("axis_deg")),
            None
            if quality is None
            else {str(k): {str(a): float(b) for a, b in v.items()} for k, v in quality.items()},
            None if classifier is None else {str(k): float(v) for k, v in classifier.items()},
            None if key is None else ClassifierKey.from_json(key),
        )


def measure_evidence(
    x: np.ndarray,
    fs: float,
    leads: Sequence[str],
    lead_quality: LeadQuality | None = None,
    classifier: Mapping[str, float] | None = None,
    quality: dict[str, dict[str, float]] | None = None,
    classifier_key: dict[str, ClassifierKey] | None = None,
) -> RecordEvidence:
    """Measure ``x [C, T]`` (mV at ``fs``): rhythm, and lead quality from the model.

    ``quality`` (already computed probabilities, e.g. out-of-fold ones) is used instead of
    ``lead_quality`` when given.
    """
    from ecgflow.signal.rhythm import measure_rhythm

    rhythm = measure_rhythm(np.nan_to_num(np.asarray(x, dtype=np.float64)), fs, list(leads))
    if quality is None and lead_quality is not None:
        quality = lead_quality.predict(x, fs, leads)
    return evidence_from(rhythm, quality, classifier, classifier_key)


def evidence_from(
    rhythm: Rhythm,
    quality: dict[str, dict[str, float]] | None = None,
    classifier: Mapping[str, float] | None = None,
    classifier_key: dict[str, ClassifierKey] | None = None,
) -> RecordEvidence:
    """The evidence of an already measured rhythm, lead quality and classifier output."""
    labels = None if classifier is None else {str(k): float(v) for k, v in classifier.items()}
    return RecordEvidence(
        n_beats=rhythm.n_beats,
        heart_rate_bpm=_finite(rhythm.heart_rate_bpm),
        rr_cv=_finite(rhythm.rr_cv),
        axis_deg=_finite(rhythm.axis_deg),
        lead_quality=quality,
        classifier=labels,
        classifier_key=None if labels is None else classifier_key,
    )


def rate_category(rate_bpm: float) -> str:
    """Tachycardia above 100 bpm, bradycardia below 60, else normal rate (feature questions')."""
    if rate_bpm > TACHYCARDIA_BPM:
        return "tachycardia"
    return "bradycardia" if rate_bpm < BRADYCARDIA_BPM else "normal rate"


def rate_words(rate_bpm: float) -> str:
    """The rate category with its range in the feature questions' words.

    "tachycardia, above 100 beats per minute": a rate question's phrase is in the evidence.
    """
    category = rate_category(rate_bpm)
    if category == "tachycardia":
        return f"tachycardia, above {TACHYCARDIA_BPM:.0f} beats per minute"
    if category == "bradycardia":
        return f"bradycardia, below {BRADYCARDIA_BPM:.0f} beats per minute"
    return f"normal rate, {BRADYCARDIA_BPM:.0f} to {TACHYCARDIA_BPM:.0f} beats per minute"


def named_lead(question: str) -> str | None:
    """The lead a question names (``"lead aVL"`` → ``"aVL"``, as in :data:`LEADS`), or None."""
    found = LEAD_NAMED.search(question)
    if found is None:
        return None
    return {lead.lower(): lead for lead in LEADS}[found.group(1).lower()]


def asked_lead_line(question: str, evidence: str | None) -> str | None:
    """``"Asked lead aVL: static 0.82"``: the leads line's words for the lead the question names.

    None when the question names no lead or the evidence has no leads line. It goes right
    before the question, so the LM reads the asked lead's quality next to it instead of
    finding the lead among twelve.
    """
    lead = named_lead(question)
    if lead is None or not evidence:
        return None
    for line in evidence.splitlines():
        if line.startswith(LEADS_PREFIX):
            for part in line.removeprefix(LEADS_PREFIX).split("; "):
                name, _, words = part.partition(" ")
                if name == lead:
                    return f"{ASKED_LEAD} {lead}: {words}"
    return None


def with_evidence(question: str, evidence: str | None) -> str:
    """The human turn: ``<ecg>``, the evidence lines, the asked lead's line, then the question.

    Without evidence: ``<ecg>`` and the question, as it was. :func:`split_turn` is the inverse.
    """
    question = question.replace(ECG_TOKEN, "").strip()
    if not evidence:
        return f"{ECG_TOKEN}\n{question}"
    asked = asked_lead_line(question, evidence)
    return "\n".join([ECG_TOKEN, evidence, *([asked] if asked else []), question])


def split_turn(turn: str, evidence: str) -> str:
    """The question of a human turn written by :func:`with_evidence` with ``evidence``.

    Turns written before the asked lead's line existed (without it) are read the same way.
    Raises ValueError when ``turn`` does not start with ``<ecg>`` and ``evidence``.
    """
    head = f"{ECG_TOKEN}\n{evidence}\n"
    if not turn.startswith(head):
        raise ValueError("the human turn does not start with <ecg> and its evidence")
    rest = turn.removeprefix(head)
    first, _, after = rest.partition("\n")
    if first == asked_lead_line(after, evidence):
        rest = after
    return f"{ECG_TOKEN}\n{rest}"


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _float(value: Any) -> float | None:
    return None if value is None else _finite(float(value))


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
