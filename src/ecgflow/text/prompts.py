"""Text prompts for the labels of a label set, for zero-shot ECG–text classification."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ecgflow.artifacts import LABEL_DEF
from ecgflow.errors import EcgflowError

__all__ = ["TEMPLATES", "label_prompts", "load_label_def"]

#: English prompt templates; ``{}`` takes a label's description.
TEMPLATES: tuple[str, ...] = (
    "an ECG showing {}.",
    "12-lead ECG with {}.",
    "an electrocardiogram of a patient with {}.",
    "ECG findings consistent with {}.",
    "the ECG shows {}.",
)


def label_prompts(label_def: dict[str, Any]) -> dict[str, list[str]]:
    """Per label name of a parsed ``label_def.json``, its description in every template.

    A label without a description uses its name (underscores as spaces). Descriptions joined
    by ``"; "`` (merged CinC classes, PTB-XL subclasses) read as alternatives (``" or "``).
    """
    prompts = {}
    for entry in _entries(label_def, "label_def"):
        name = str(entry["name"])
        phrase = _phrase(str(entry.get("description") or "") or name.replace("_", " "))
        prompts[name] = [template.format(phrase) for template in TEMPLATES]
    return prompts


def load_label_def(labels_dir: Path) -> dict[str, Any]:
    """The parsed ``label_def.json`` of a label stage output folder ``labels_dir``."""
    path = Path(labels_dir) / LABEL_DEF
    if not path.is_file():
        raise EcgflowError(f"{path}: not found; the label stage writes it (ecgflow label)")
    try:
        label_def = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EcgflowError(f"{path}: not valid JSON ({exc})") from exc
    _entries(label_def, str(path))
    return label_def


def _entries(label_def: Any, where: str) -> list[dict[str, Any]]:
    """The ``labels`` entries, each checked to be an object with a ``name``."""
    labels = label_def.get("labels") if isinstance(label_def, dict) else None
    if not isinstance(labels, list):
        raise EcgflowError(f"{where}: expected an object with a 'labels' list (label_def.json)")
    for position, entry in enumerate(labels):
        if not isinstance(entry, dict) or not entry.get("name"):
            raise EcgflowError(f"{where}: labels[{position}] is not an object with a 'name'")
    return labels


def _phrase(description: str) -> str:
    """A description as a phrase inside a sentence: no final period, ``;`` lists as ``or``."""
    phrase = " ".join(description.split()).rstrip(".").replace("; ", " or ")
    first, _, _ = phrase.partition(" ")
    # "Normal ECG" → "normal ECG", but keep "ST/T change", "T-wave", "Wolf-Parkinson-White".
    if len(first) > 1 and first[0].isupper() and first[1:].islower() and first[1:].isalpha():
        return phrase[0].lower() + phrase[1:]
    return phrase
