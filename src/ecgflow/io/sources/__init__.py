"""Dataset sources: turn a ``--source`` string into references to the records it holds.

Each kind lives in its own module (``ecgflow.io.sources.<kind>``), registered lazily in
``SOURCES`` (:class:`ecgflow.plugins.Registry`) and imported when a source of that kind is used:
the synthetic generator needs scipy.signal and PTB-XL pandas, which an ingest of WFDB files
from a folder never has to load.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ecgflow.errors import EcgflowError
from ecgflow.io.sources.base import Discovery, RecordRef
from ecgflow.io.sources.detect import detect_layout
from ecgflow.io.sources.spec import SOURCES, SourceSpec, parse_source
from ecgflow.io.storage import open_storage

__all__ = [
    "KINDS",
    "SOURCES",
    "Discovery",
    "RecordRef",
    "SourceSpec",
    "discover",
    "header_meta",
    "parse_source",
]

#: Source kinds found in storage (``synthetic`` is generated instead).
KINDS = tuple(kind for kind in SOURCES.names() if kind != "synthetic")
#: Kinds whose WFDB header comments carry metadata (their module's ``header_meta``).
_HEADER_META_KINDS = ("cinc", "code15")


def header_meta(kind: str) -> Callable[[list[str]], dict[str, Any]] | None:
    """How to read metadata out of a ``kind`` record's WFDB header comments (None: no such)."""
    return SOURCES.get(kind).header_meta if kind in _HEADER_META_KINDS else None


def discover(spec: SourceSpec, staging: Path) -> Discovery:
    """Find every record of ``spec``; generated (synthetic) records are written to ``staging``."""
    if spec.kind == "synthetic":
        return SOURCES.get("synthetic").discover(spec, staging)
    storage = open_storage(spec.location)
    kind = spec.kind or detect_layout(storage)
    if kind not in KINDS:
        raise EcgflowError(f"unknown source kind {kind!r}; expected one of: {', '.join(KINDS)}")
    return SOURCES.get(kind).discover(storage, spec)
