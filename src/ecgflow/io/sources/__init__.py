"""Dataset sources: turn a ``--source`` string into references to the records it holds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ecgflow.errors import EcgflowError
from ecgflow.io.sources import cinc, code15, folder, ptbxl, synthetic
from ecgflow.io.sources.base import Discovery, RecordRef
from ecgflow.io.sources.detect import detect_layout
from ecgflow.io.sources.spec import SourceSpec, parse_source
from ecgflow.io.storage import open_storage

__all__ = ["HEADER_META", "Discovery", "RecordRef", "SourceSpec", "discover", "parse_source"]

_DISCOVER = {
    "ptbxl": ptbxl.discover,
    "cinc": cinc.discover,
    "code15": code15.discover,
    "folder": folder.discover,
}

#: Per dataset, how to read metadata out of a record's WFDB header comments.
HEADER_META: dict[str, Callable[[list[str]], dict[str, Any]]] = {
    "cinc": cinc.header_meta,
    "code15": code15.header_meta,
}


def discover(spec: SourceSpec, staging: Path) -> Discovery:
    """Find every record of ``spec``; generated (synthetic) records are written to ``staging``."""
    if spec.kind == "synthetic":
        return synthetic.discover(spec, staging)
    storage = open_storage(spec.location)
    kind = spec.kind or detect_layout(storage)
    if kind not in _DISCOVER:
        raise EcgflowError(f"unknown source kind {kind!r}")
    return _DISCOVER[kind](storage, spec)
