"""What a dataset source hands to the ingest stage: one reference per record it found."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from ecgflow.io.storage import Storage


@dataclass
class RecordRef:
    """A record a source found, before its files are fetched and read.

    Attributes:
        key: storage-relative path of the record's entry file (``.hea``, ``.csv``, ...).
        record_id: id from the dataset's metadata; ``None`` means "the record name".
        patient_id: patient id from the metadata, if the dataset has one.
        meta: metadata from the source (age, sex, report, labels, scp_codes, strat_fold, ...).
        read_options: keyword options for :func:`ecgflow.io.readers.read_record` (e.g. ``fs``).
        error: set when the source already knows the record must be rejected, and why.

    """

    key: str
    record_id: str | None = None
    patient_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    read_options: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def name(self) -> str:
        """The record name: the entry file's name without its suffix."""
        return PurePosixPath(self.key).stem


@dataclass
class Discovery:
    """Everything a source found: the dataset kind, its records and its metadata files."""

    dataset: str
    storage: Storage
    refs: list[RecordRef]
    metadata_files: list[str] = field(default_factory=list)


def parse_header_comments(comments: list[str]) -> dict[str, str]:
    """Turn WFDB header comments like ``Age: 78`` or ``<sex>: F`` into ``{"age": "78"}``.

    Keys are lower-cased with spaces as underscores; comments without a colon are skipped.
    """
    parsed: dict[str, str] = {}
    for line in comments:
        key, sep, value = line.partition(":")
        key = key.strip().strip("<>").strip().lower().replace(" ", "_")
        if sep and key and key not in parsed:
            parsed[key] = value.strip()
    return parsed


def parse_age(value: Any) -> float | None:
    """An age in years, or ``None`` for blanks, ``NaN`` and unparsable values."""
    try:
        age = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(age) or age < 0 else age


def parse_sex(value: Any) -> str | None:
    """Normalise sex codes (``M``/``male``/PTB-XL ``0``; ``F``/``female``/``1``) to words."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in {"m", "male", "0", "0.0"}:
        return "male"
    if text in {"f", "female", "1", "1.0"}:
        return "female"
    return None


def clean_id(value: Any) -> str | None:
    """An identifier as text: ``15709.0`` → ``"15709"``; blanks and NaN → ``None``."""
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            return str(int(value))
    text = str(value).strip()
    if text.endswith(".0") and text[:-2].isdigit():
        text = text[:-2]
    return text or None
