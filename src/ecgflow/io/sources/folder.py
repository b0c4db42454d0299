"""Any folder of WFDB, EDF, CSV or NPY files, with an optional ``labels.json``.

``labels.json`` is a list of ``{"file": ..., "label": ..., "patient_id": ..., "fs": ...}``;
``file`` is the path of the record's file relative to the folder (``.hea`` or the signal file).
CSV and NPY files need a sampling rate: ``folder:PATH?fs=500`` or ``fs`` per entry.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any

from ecgflow.errors import EcgflowError
from ecgflow.io.sources.base import Discovery, RecordRef, clean_id
from ecgflow.io.sources.headers import header_refs
from ecgflow.io.sources.spec import SourceSpec, float_option
from ecgflow.io.storage import Storage

LABELS_FILE = "labels.json"
ENTRY_SUFFIXES = (".hea", ".edf", ".csv", ".npy")


def discover(storage: Storage, spec: SourceSpec) -> Discovery:
    """One reference per record file; ``labels.json`` entries add label and patient id."""
    fs = float_option(spec, "fs", None)
    files = storage.list_files()
    refs = header_refs(storage)
    refs += [RecordRef(key=f) for f in files if f.endswith(ENTRY_SUFFIXES[1:])]
    for ref in refs:
        ref.record_id = _record_id(ref.key)
        if fs is not None and not ref.key.endswith(".hea"):
            ref.read_options["fs"] = fs
    metadata: list[str] = []
    if storage.exists(LABELS_FILE):
        metadata.append(LABELS_FILE)
        refs += _apply_labels(storage, refs)
    refs.sort(key=lambda r: r.key)
    return Discovery("folder", storage, refs, metadata)


def _record_id(key: str) -> str:
    """The relative path without the suffix: ``sub/rec1.csv`` → ``sub/rec1``."""
    return str(PurePosixPath(key).with_suffix(""))


def _apply_labels(storage: Storage, refs: list[RecordRef]) -> list[RecordRef]:
    """Attach ``labels.json`` entries to their records; return refs for entries that match none."""
    entries = _read_labels(storage)
    by_key = {ref.key: ref for ref in refs}
    by_stem = {_record_id(ref.key): ref for ref in refs}
    unmatched: list[RecordRef] = []
    for number, entry in enumerate(entries, start=1):
        where = f"{LABELS_FILE} entry {number}"
        file = entry.get("file") if isinstance(entry, dict) else None
        if not isinstance(file, str) or not file.strip():
            unmatched.append(
                RecordRef(key=f"{LABELS_FILE}#{number}", error=f"{where}: no 'file' given")
            )
            continue
        file = file.strip().lstrip("./")
        ref = by_key.get(file) or by_stem.get(_record_id(file))
        if ref is None:
            unmatched.append(
                RecordRef(key=file, error=f"{where}: file {file!r} is listed but not found")
            )
            continue
        _attach(ref, entry, where)
    return unmatched


def _attach(ref: RecordRef, entry: dict[str, Any], where: str) -> None:
    if entry.get("label") is not None:
        label = entry["label"]
        labels = label if isinstance(label, list) else [label]
        ref.meta["labels"] = [str(x) for x in labels]
    if entry.get("patient_id") is not None:
        ref.patient_id = clean_id(entry["patient_id"])
    if entry.get("fs") is not None:
        try:
            ref.read_options["fs"] = float(entry["fs"])
        except (TypeError, ValueError):
            ref.error = f"{where}: fs {entry['fs']!r} is not a number"


def _read_labels(storage: Storage) -> list[Any]:
    try:
        entries = json.loads(storage.read_text(LABELS_FILE))
    except json.JSONDecodeError as exc:
        raise EcgflowError(f"{storage.describe(LABELS_FILE)}: not valid JSON ({exc})") from exc
    if not isinstance(entries, list):
        raise EcgflowError(
            f"{storage.describe(LABELS_FILE)}: expected a JSON list of "
            '{"file", "label", "patient_id"} objects'
        )
    return entries
