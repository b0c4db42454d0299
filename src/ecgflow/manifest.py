"""The small JSON manifest every artifact folder carries: producer, inputs, params, hashes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ecgflow import __version__

MANIFEST = "manifest.json"


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def hash_tree(
    folder: Path,
    *,
    exclude: tuple[str, ...] = (MANIFEST,),
    known: dict[str, str] | None = None,
) -> dict[str, str]:
    """SHA-256 of every file below ``folder``, keyed by sorted relative POSIX path.

    ``known`` holds hashes already computed while writing files; those are not read again.
    """
    known = known or {}
    hashes: dict[str, str] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel not in exclude:
            hashes[rel] = known.get(rel) or sha256_file(path)
    return hashes


def redact_uri(uri: str) -> str:
    """Drop any ``user:password@`` part from a URI so it can be logged and stored."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def write_manifest(
    out_dir: Path, *, stage: str, known_hashes: dict[str, str] | None = None, **fields: Any
) -> dict[str, Any]:
    """Write ``manifest.json`` into ``out_dir`` with the hashes of every file there.

    The manifest holds no timestamps, so the same inputs give the same bytes.
    """
    manifest: dict[str, Any] = {"stage": stage, "ecgflow_version": __version__, **fields}
    manifest["files"] = hash_tree(out_dir, known=known_hashes)
    text = json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n"
    (out_dir / MANIFEST).write_text(text, encoding="utf-8")
    return manifest
