"""One read-only interface over datasets in local folders, S3 buckets and HTTP(S) mirrors.

:func:`open_storage` turns what the user passed (``PATH``, ``file://PATH``, ``s3://bucket/prefix``
or ``http(s)://host/path/``) into a :class:`Storage`; the ingest stage then detects the layout and
fetches records through it without caring where the files live. Paths given to a storage are
*relative* POSIX paths below its root (``records100/00000/00001_lr.hea``).

Credentials never appear in :attr:`Storage.uri`, :meth:`Storage.describe`, log lines or
exception messages: S3 takes them from the standard AWS environment (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, profiles), HTTP from ``user:password@`` in the
URL (stripped from :attr:`~Storage.uri` at once) or from ``~/.netrc``.

The S3 and HTTP backends (boto3, requests: ~0.15-0.25 s to import) are imported when such a URI
is opened.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from ecgflow.errors import EcgflowError
from ecgflow.io.storage.base import (
    RECORDS_FILE,
    URI_SCHEME,
    Storage,
    TransferError,
    UnsafeNameError,
    check_name,
    clean_rel,
    redact,
    unsafe_reason,
)
from ecgflow.io.storage.local import LocalStorage

if TYPE_CHECKING:
    from ecgflow.io.storage.http import HTTPStorage
    from ecgflow.io.storage.s3 import S3Storage

__all__ = [
    "RECORDS_FILE",
    "HTTPStorage",
    "LocalStorage",
    "S3Storage",
    "Storage",
    "TransferError",
    "UnsafeNameError",
    "check_name",
    "clean_rel",
    "open_storage",
    "redact",
    "unsafe_reason",
]


def __getattr__(name: str) -> Any:
    """``S3Storage`` and ``HTTPStorage``, imported on first use."""
    if name == "S3Storage":
        from ecgflow.io.storage.s3 import S3Storage

        return S3Storage
    if name == "HTTPStorage":
        from ecgflow.io.storage.http import HTTPStorage

        return HTTPStorage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _file_uri_path(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise EcgflowError(f"{uri}: a file:// URI must name a local path (file:///path)")
    return unquote(parts.path)


def open_storage(uri: str | os.PathLike[str]) -> Storage:
    """Open ``s3://bucket/prefix``, ``http(s)://host/path/``, ``file://PATH`` or a plain path.

    Raises :class:`EcgflowError` for an unknown scheme or a local folder that does not exist.
    """
    text = os.fspath(uri)
    match = URI_SCHEME.match(text)
    scheme = match.group(1).lower() if match else ""
    if scheme == "s3":
        from ecgflow.io.storage.s3 import S3Storage

        return S3Storage(text)
    if scheme in ("http", "https"):
        from ecgflow.io.storage.http import HTTPStorage

        return HTTPStorage(text)
    if scheme == "file":
        return LocalStorage(_file_uri_path(text), uri=text)
    if scheme:
        raise EcgflowError(
            f"unsupported storage scheme {scheme!r} in {redact(text)!r}: use a local path, "
            "file://PATH, s3://bucket/prefix or http(s)://host/path/"
        )
    return LocalStorage(text)
