"""CODE-15% exams exported to WFDB: exam id, patient id, age, sex and the Chagas label."""

from __future__ import annotations

from typing import Any

from ecgflow.io.sources.base import (
    Discovery,
    clean_id,
    parse_age,
    parse_header_comments,
    parse_sex,
)
from ecgflow.io.sources.headers import header_discovery
from ecgflow.io.sources.spec import SourceSpec
from ecgflow.io.storage import Storage


def discover(storage: Storage, spec: SourceSpec) -> Discovery:
    """One reference per header."""
    return header_discovery("code15", storage, ())


def header_meta(comments: list[str]) -> dict[str, Any]:
    """Exam id (the record id), patient id, age, sex and Chagas label from the header comments."""
    fields = parse_header_comments(comments)
    chagas = fields.get("chagas_label", "").strip().lower()
    meta: dict[str, Any] = {
        "record_id": clean_id(fields.get("exam_id")),
        "patient_id": clean_id(fields.get("patient_id")),
        "age": parse_age(fields.get("age")),
        "sex": parse_sex(fields.get("sex")),
        "labels": ["chagas"] if chagas == "true" else [],
    }
    if chagas in {"true", "false"}:
        meta["chagas"] = chagas == "true"
    return meta
