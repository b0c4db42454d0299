"""Recognise a dataset's layout from its files, so ``--source PATH`` needs no kind."""

from __future__ import annotations

import logging

from ecgflow.io.sources.ptbxl import DATABASE_CSV
from ecgflow.io.storage import Storage

log = logging.getLogger(__name__)

_HEADERS_TO_SNIFF = 5


def detect_layout(storage: Storage) -> str:
    """Return ``ptbxl``, ``cinc``, ``code15`` or ``folder`` for the files in ``storage``.

    PTB-XL is recognised by ``ptbxl_database.csv``; CinC by ``# Dx:`` header comments (also
    ``#Dx:`` or ``#Dx :``); CODE-15% by ``# Chagas label`` / ``# Exam ID`` comments; anything
    else is a plain folder.
    """
    if storage.exists(DATABASE_CSV):
        return "ptbxl"
    headers = [f for f in storage.list_files() if f.endswith(".hea")][:_HEADERS_TO_SNIFF]
    for header in headers:
        try:
            text = storage.read_text(header)
        except Exception:  # a broken header says nothing about the layout
            continue
        comments = [
            ln.lstrip("#").strip().lower() for ln in text.splitlines() if ln.startswith("#")
        ]
        if any(c.partition(":")[0].strip() == "dx" and ":" in c for c in comments):
            return "cinc"
        if any(c.startswith(("chagas label:", "exam id:")) for c in comments):
            return "code15"
    return "folder"
