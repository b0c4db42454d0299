"""How a GEM model's prompts get their evidence text (``evidence.json`` in the GEM folder).

A model trained on instructions with evidence (build-instructions' default) must see the same
evidence at evaluation and serving. ``evidence.json`` says so and names the per-lead quality
model saved beside it (``lead_quality.json``; absent when the training data had no lead
annotations: then the evidence is the rhythm line only) and the classifier whose per-label
probabilities the evidence states (``classifier/``: an export's ``model.onnx`` and side files,
run by :class:`ecgflow.mlflow_model.RawECGClassifier` on the record in mV; absent when the
instructions were built without one). :meth:`EvidenceReader.measure`
computes a record's evidence from its signal in mV at its rate (preprocessed GEM inputs: as
recorded, scaled by ``scale`` mV, which :meth:`EvidenceReader.measure` multiplies back).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ecgflow.artifacts import EVIDENCE_CLASSIFIER, GEM_EVIDENCE, LEAD_QUALITY, MODEL_ONNX
from ecgflow.errors import EcgflowError
from ecgflow.models.lead_quality import LeadQuality, load_lead_quality
from ecgflow.text.evidence import (
    REPORT_P,
    ClassifierKey,
    RecordEvidence,
    classifier_key,
    measure_evidence,
)

KIND = "gem-evidence"


@dataclass
class EvidenceReader:
    """What a GEM model's evidence is made from."""

    lead_quality: LeadQuality | None = None
    classifier_dir: Path | None = None  # a classifier export folder (see the module docstring)
    _classifier: Any = field(default=None, init=False, repr=False, compare=False)

    def measure(
        self,
        x: np.ndarray,
        fs: float,
        leads: Sequence[str],
        scale_mv: float = 1.0,
        classifier: Mapping[str, float] | None = None,
    ) -> RecordEvidence:
        """The evidence of ``x [C, T]`` at ``fs`` (values × ``scale_mv`` are mV).

        ``classifier``: the probabilities to state; by default the folder's classifier's.
        """
        signal = np.asarray(x, dtype=np.float64) * float(scale_mv)
        if classifier is None and self.classifier_dir is not None:
            classifier = self.classify(signal, fs, leads)
        return measure_evidence(
            signal, fs, leads, self.lead_quality, classifier, classifier_key=self.classifier_key()
        )

    def classifier_key(self) -> dict[str, ClassifierKey] | None:
        """How the evidence names the folder classifier's labels (None without one)."""
        model = self.classifier()
        if model is None:
            return None
        return classifier_key(model)

    def classify(self, signal_mv: np.ndarray, fs: float, leads: Sequence[str]) -> dict[str, float]:
        """The classifier's probability per label for a ``[C, T]`` signal in mV."""
        from ecgflow.io.record import ECGRecord

        record = ECGRecord(
            signal=np.asarray(signal_mv, dtype=np.float32),
            fs=float(fs),
            leads=list(leads),
            units=["mV"] * len(leads),
            record_id="request",
        )
        return self.classifier().probabilities(record)

    def classifier(self) -> Any:
        """The folder's :class:`~ecgflow.mlflow_model.RawECGClassifier` (loaded once), or None."""
        from ecgflow.mlflow_model import RawECGClassifier

        if self._classifier is None and self.classifier_dir is not None:
            self._classifier = RawECGClassifier(Path(self.classifier_dir))
        return self._classifier

    def save(self, folder: Path) -> None:
        """Write ``folder/evidence.json``, ``lead_quality.json`` and ``classifier/`` (if any)."""
        folder = Path(folder)
        if self.lead_quality is not None:
            self.lead_quality.save(folder / LEAD_QUALITY)
        if self.classifier_dir is not None:
            target = folder / EVIDENCE_CLASSIFIER
            if Path(self.classifier_dir).resolve() != target.resolve():
                copy_classifier(Path(self.classifier_dir), target)
        document = {
            "kind": KIND,
            "lead_quality": None if self.lead_quality is None else LEAD_QUALITY,
            "classifier": None if self.classifier_dir is None else EVIDENCE_CLASSIFIER,
            "report_p": REPORT_P,
        }
        (folder / GEM_EVIDENCE).write_text(json.dumps(document, indent=2) + "\n", "utf-8")


def load_evidence_reader(folder: Path) -> EvidenceReader | None:
    """The GEM folder's evidence reader, or None for a model trained without evidence."""
    path = Path(folder) / GEM_EVIDENCE
    try:
        document: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EcgflowError(f"{path}: unreadable ({exc})") from None
    if not isinstance(document, dict) or document.get("kind") != KIND:
        raise EcgflowError(f"{path}: expected an object with kind {KIND!r}")
    name = document.get("lead_quality")
    model = None
    if name is not None:
        model = load_lead_quality(Path(folder) / str(name))
        if model is None:
            raise EcgflowError(f"{path} names {name}, which is not in {folder}")
    classifier = document.get("classifier")
    classifier_dir = None
    if classifier is not None:
        classifier_dir = Path(folder) / EVIDENCE_CLASSIFIER
        if classifier != EVIDENCE_CLASSIFIER or not (classifier_dir / MODEL_ONNX).is_file():
            raise EcgflowError(f"{path}: classifier {classifier!r} is not in {folder}")
    return EvidenceReader(model, classifier_dir)


def copy_classifier(export_dir: Path, target: Path) -> None:
    """Copy a classifier export's ``model.onnx`` and side files into ``target``."""
    from ecgflow.artifacts import CLASSIFIER_SIDE_FILES

    source = Path(export_dir)
    if not (source / MODEL_ONNX).is_file():
        raise EcgflowError(f"{source}: no {MODEL_ONNX} (expected an export output folder)")
    target.mkdir(parents=True, exist_ok=True)
    for name in (MODEL_ONNX, *CLASSIFIER_SIDE_FILES):
        if (source / name).is_file():
            shutil.copyfile(source / name, target / name)


def scale_mv(info: Mapping[str, Any]) -> float | None:
    """Millivolts per unit of a preprocess output's signals, None when they are z-scored.

    GEM's preprocessing keeps signals as recorded divided by ``scale`` mV; a z-scored signal
    has lost its amplitude and cannot be measured in mV.
    """
    params = info.get("params") or {}
    normalise = params.get("normalise", "none")
    if normalise == "scale":
        return float(params.get("scale", 1.0))
    return 1.0 if normalise == "none" else None


def read_record_evidence(path: Path) -> dict[str, RecordEvidence]:
    """build-instructions' ``record_evidence.json``: evidence by record id ({} when absent)."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EcgflowError(f"{path}: unreadable ({exc})") from None
    try:
        return {str(k): RecordEvidence.from_json(v) for k, v in document.items()}
    except (AttributeError, TypeError, ValueError) as exc:
        raise EcgflowError(f"{path}: not record evidence ({exc})") from None


class EvidenceSource:
    """A record's evidence: build-instructions' stored one, else measured on its GEM signal.

    ``stored``: by record id (training records carry out-of-fold lead quality there);
    ``reader``: the model's (None: nothing is measured); signals are at ``fs`` in units of
    ``scale`` mV (None: z-scored, not measurable) with channels ``leads``.
    """

    def __init__(
        self,
        stored: dict[str, RecordEvidence],
        reader: EvidenceReader | None,
        fs: float,
        leads: Sequence[str],
        scale: float | None,
    ) -> None:
        self.stored, self.reader, self.fs = stored, reader, fs
        self.leads, self.scale = list(leads), scale
        self._measured: dict[str, RecordEvidence | None] = {}

    def evidence(
        self, record_id: str, x: np.ndarray | Callable[[], np.ndarray]
    ) -> RecordEvidence | None:
        """The record's evidence, None when there is none.

        ``x``: its ``[C, T]`` GEM signal, or a function reading it (called only when the
        evidence is not stored and must be measured).
        """
        if record_id in self.stored:
            return self.stored[record_id]
        if record_id not in self._measured:
            measurable = self.reader is not None and self.scale is not None
            self._measured[record_id] = (
                self.reader.measure(  # type: ignore[union-attr]
                    x() if callable(x) else x, self.fs, self.leads, self.scale
                )
                if measurable
                else None
            )
        return self._measured[record_id]

    def quality(
        self, record_id: str, x: np.ndarray | Callable[[], np.ndarray]
    ) -> np.ndarray | None:
        """``[C, 4]`` lead-quality probabilities in the signal's channel order, or None."""
        from ecgflow.models.lead_quality import lead_index

        evidence = self.evidence(record_id, x)
        if evidence is None or evidence.lead_quality is None:
            return None
        matrix = evidence.quality_matrix()
        rows = [lead_index(lead) for lead in self.leads]
        return np.stack([matrix[i] if i is not None else np.zeros(4) for i in rows])
