"""Sources whose metadata lives in WFDB header comments: one ``.hea`` file per record."""

from __future__ import annotations

from ecgflow.io.sources.base import Discovery, RecordRef
from ecgflow.io.storage import Storage


def header_refs(storage: Storage) -> list[RecordRef]:
    """One reference per ``.hea`` file below the storage root, in sorted order.

    Segment headers of multi-segment records are read with their master record and are not
    references of their own.
    """
    files = storage.list_files()
    headers = [f for f in files if f.endswith(".hea")]
    segments = _segment_headers(storage, headers)
    return [RecordRef(key=h) for h in headers if h not in segments]


def header_discovery(dataset: str, storage: Storage, metadata_names: tuple[str, ...]) -> Discovery:
    """A :class:`Discovery` over every header, carrying the dataset's metadata files."""
    metadata = [name for name in metadata_names if storage.exists(name)]
    return Discovery(dataset, storage, header_refs(storage), metadata)


def _segment_headers(storage: Storage, headers: list[str]) -> set[str]:
    """Headers named as segments by a multi-segment master header (``NAME/N`` first line)."""
    from ecgflow.io.wfdb_reader import referenced_files

    segments: set[str] = set()
    for header in headers:
        folder = header.rpartition("/")[0]
        try:
            text = storage.read_text(header)
        except Exception:  # an unreadable header is rejected later, with its reason
            continue
        first = next((ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")), "")
        fields = first.split()
        if not fields or "/" not in fields[0]:
            continue
        name = header.rpartition("/")[2][: -len(".hea")]
        try:
            names = referenced_files(text, name)
        except Exception:  # a malformed header is rejected later, with its reason
            continue
        for ref in names:
            if ref.endswith(".hea"):
                segments.add(f"{folder}/{ref}" if folder else ref)
    return segments
