"""How a GEM model's prompts get their evidence text (``evidence.json`` in the GEM folder).

A model trained on instructions with evidence (build-instructions' default) must see the same
evidence at evaluation and serving. ``evidence.json`` says so and names the per-lead quality
model saved beside it (``lead_quality.json``; absent when the training data had no lead
annotations: then the evidence is the rhythm line only). :meth:`EvidenceReader.measure`
computes a record's evidence from its signal in mV at its rate (preprocessed GEM inputs: as
recorded, scaled by ``scale`` mV, which :meth:`EvidenceReader.measure` multiplies back).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ecgflow.artifacts import GEM_EVIDENCE, LEAD_QUALITY
from ecgflow.errors import EcgflowError
from ecgflow.models.lead_quality import LeadQuality, load_lead_quality
from ecgflow.text.evidence import REPORT_P, RecordEvidence, measure_evidence

KIND = "gem-evidence"


@dataclass
class EvidenceReader:
    """What a GEM model's evidence is made from."""

    lead_quality: LeadQuality | None = None

    def measure(
        self,
        x: np.ndarray,
        fs: float,
        leads: Sequence[str],
        scale_mv: float = 1.0,
        classifier: Mapping[str, float] | None = None,
    ) -> RecordEvidence:
        """The evidence of ``x [C, T]`` at ``fs`` (values × ``scale_mv`` are mV)."""
        signal = np.asarray(x, dtype=np.float64) * float(scale_mv)
        return measure_evidence(signal, fs, leads, self.lead_quality, classifier)

    def save(self, folder: Path) -> None:
        """Write ``folder/evidence.json`` (and ``lead_quality.json`` when there is a model)."""
        folder = Path(folder)
        if self.lead_quality is not None:
            self.lead_quality.save(folder / LEAD_QUALITY)
        document = {
            "kind": KIND,
            "lead_quality": None if self.lead_quality is None else LEAD_QUALITY,
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
    if name is None:
        return EvidenceReader()
    model = load_lead_quality(Path(folder) / str(name))
    if model is None:
        raise EcgflowError(f"{path} names {name}, which is not in {folder}")
    return EvidenceReader(model)
