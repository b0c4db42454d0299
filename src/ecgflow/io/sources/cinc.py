"""PhysioNet/CinC Challenge 2020/2021 records: WFDB headers carrying ``# Dx:`` SNOMED CT codes.

Covers CPSC2018, Georgia, PTB-XL HR, Chapman-Shaoxing and Ningbo (JS) records alike.
"""

from __future__ import annotations

from typing import Any

from ecgflow.io.sources.base import Discovery, parse_age, parse_header_comments, parse_sex
from ecgflow.io.sources.headers import header_discovery
from ecgflow.io.sources.spec import SourceSpec
from ecgflow.io.storage import Storage

METADATA_FILES = (
    "dx_mapping_scored.csv",
    "dx_mapping_unscored.csv",
    "weights.csv",
    "weights_abbreviations.csv",
)


def discover(storage: Storage, spec: SourceSpec) -> Discovery:
    """One reference per header; the Challenge's scoring tables travel along when present."""
    return header_discovery("cinc", storage, METADATA_FILES)


def header_meta(comments: list[str]) -> dict[str, Any]:
    """Age, sex and the SNOMED CT codes of ``# Dx:`` from a CinC header."""
    fields = parse_header_comments(comments)
    codes = [c.strip() for c in fields.get("dx", "").split(",") if c.strip()]
    return {
        "age": parse_age(fields.get("age")),
        "sex": parse_sex(fields.get("sex")),
        "labels": codes,
    }
