"""One read-only interface over datasets in local folders, S3 buckets and HTTP(S) mirrors.

:func:`open_storage` turns what the user passed (``PATH``, ``file://PATH``, ``s3://bucket/prefix``
or ``http(s)://host/path/``) into a :class:`Storage`; the ingest stage then detects the layout and
fetches records through it without caring where the files live. Paths given to a storage are
*relative* POSIX paths below its root (``records100/00000/00001_lr.hea``).

Credentials never appear in :attr:`Storage.uri`, :meth:`Storage.describe`, log lines or
exception messages: S3 takes them from the standard AWS environment (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, profiles), HTTP from ``user:password@`` in the
URL (stripped from :attr:`~Storage.uri` at once) or from ``~/.netrc``.

Each URI scheme is registered in ``SCHEMES`` (:class:`ecgflow.plugins.Registry`); the S3 and HTTP
backends (boto3, requests: ~0.15-0.25 s to import) are registered lazily, imported when such a
URI is opened.
"""

from __future__ import annotations

import os
from collections.abc import Callable
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
from ecgflow.plugins import Registry

if TYPE_CHECKING:
    from ecgflow.io.storage.http import HTTPStorage
    from ecgflow.io.storage.s3 import S3Storage

__all__ = [
    "RECORDS_FILE",
    "SCHEMES",
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


#: URI scheme → the storage that opens such a URI (a plain path is a LocalStorage)
SCHEMES: Registry[Callable[[str], Storage]] = Registry("storage scheme")
SCHEMES.register_lazy("s3", "ecgflow.io.storage.s3:S3Storage")
SCHEMES.register_lazy("http", "ecgflow.io.storage.http:HTTPStorage")
SCHEMES.register_lazy("https", "ecgflow.io.storage.http:HTTPStorage")
_LAZY_CLASSES = {"S3Storage": "s3", "HTTPStorage": "http"}


def __getattr__(name: str) -> Any:
    """``S3Storage`` and ``HTTPStorage``, imported on first use (through ``SCHEMES``)."""
    if name in _LAZY_CLASSES:
        return SCHEMES.get(_LAZY_CLASSES[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _file_uri_path(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise EcgflowError(f"{uri}: a file:// URI must name a local path (file:///path)")
    return unquote(parts.path)


@SCHEMES.register("file")
def _open_file_uri(uri: str) -> Storage:
    return LocalStorage(_file_uri_path(uri), uri=uri)


def open_storage(uri: str | os.PathLike[str]) -> Storage:
    """Open ``s3://bucket/prefix``, ``http(s)://host/path/``, ``file://PATH`` or a plain path.

    Raises :class:`EcgflowError` for an unknown scheme or a local folder that does not exist.
    """
    text = os.fspath(uri)
    match = URI_SCHEME.match(text)
    scheme = match.group(1).lower() if match else ""
    if scheme in SCHEMES:
        return SCHEMES.get(scheme)(text)
    if scheme:
        raise EcgflowError(
            f"unsupported storage scheme {scheme!r} in {redact(text)!r}: use a local path, "
            "file://PATH, s3://bucket/prefix or http(s)://host/path/"
        )
    return LocalStorage(text)
