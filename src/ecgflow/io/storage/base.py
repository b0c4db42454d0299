"""The storage interface and what every backend shares: relative paths, redaction, errors."""

from __future__ import annotations

import os
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

from ecgflow.errors import EcgflowError, RecordError

#: Name of the PhysioNet record list (one record name, or ``subdir/``, per line).
RECORDS_FILE = "RECORDS"

URI_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_USERINFO = re.compile(r"(://)[^/?#@\s]*@")
CHUNK_BYTES = 1 << 20
T = TypeVar("T")


class TransferError(EcgflowError):
    """A file could not be fetched for a reason that is not the file's own.

    The endpoint was unreachable, a transfer broke off or the server answered 5xx, after every
    retry. Ingest fails the stage for it (naming what is missing) instead of rejecting a record.
    """


def redact(text: str) -> str:
    """Remove any ``user:password@`` part of the URLs in ``text``."""
    return _USERINFO.sub(r"\1", text)


class UnsafeNameError(RecordError):
    """A name from an untrusted listing that is no file below a root (see :func:`check_name`)."""


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def unsafe_reason(name: str) -> str | None:
    """Why ``name`` cannot be the relative path of a file below a root, or ``None`` when it can.

    ``name`` is already decoded (no ``%2F``). Only canonical relative POSIX paths pass: no
    leading ``/``, no empty (``a//b``), ``.`` or ``..`` segments, no backslash, no control
    character. A name is never rewritten into another: ``/a`` and ``a//b`` name other objects
    than ``a`` and ``a/b`` in S3, so they are refused rather than normalised.
    """
    if not name:
        return "an empty name"
    if _CONTROL.search(name):
        return "a control character in the name"
    if "\\" in name:
        return "a backslash in the name"
    if name.startswith("/"):
        return "an absolute path"
    parts = name.split("/")
    if ".." in parts:
        return "a '..' segment"
    if "" in parts:
        return "an empty segment (doubled or trailing '/')"
    if "." in parts:
        return "a '.' segment"
    return None


def check_name(name: str, what: str = "name") -> str:
    """Return ``name`` when it is a safe relative path (:func:`unsafe_reason`), else raise."""
    reason = unsafe_reason(name)
    if reason is not None:
        raise UnsafeNameError(f"{what} {name!r} is not a path below the source root: {reason}")
    return name


def clean_rel(rel: str) -> str:
    """Normalise a relative path (``./a//b`` → ``a/b``); reject empty paths and ``..``."""
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise EcgflowError(
            f"invalid relative path {rel!r}: expected a file below the storage root, without '..'"
        )
    return "/".join(parts)


def write_atomically(dest: Path, write: Callable[[Path], object]) -> Path:
    """Create ``dest`` (and its parents) by ``write``-ing a temporary file next to it."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


class Storage(ABC):
    """A read-only tree of files addressed by relative POSIX paths.

    Attributes:
        uri: what the user passed to open the storage, without credentials.

    """

    uri: str

    def refused(self) -> dict[str, str]:
        """Names the listing found but left out, with the reason; filled by :meth:`list_files`.

        Unsafe names, symlinks out of the root or in a loop, unreadable ``RECORDS`` lines.
        """
        return dict(getattr(self, "_refused", {}))

    @abstractmethod
    def exists(self, rel: str) -> bool:
        """Whether the file ``rel`` exists (directories do not count)."""

    @abstractmethod
    def read_bytes(self, rel: str) -> bytes:
        """The whole content of ``rel``; meant for small files (headers, CSVs).

        Raises :class:`EcgflowError` naming the full location when it is missing or unreadable.
        """

    def read_text(self, rel: str, encoding: str = "utf-8") -> str:
        """The content of ``rel`` decoded as ``encoding``; see :meth:`read_bytes`."""
        data = self.read_bytes(rel)
        try:
            return data.decode(encoding)
        except UnicodeDecodeError as exc:
            raise EcgflowError(
                f"{self.describe(rel)}: not valid {encoding} text (byte {exc.start})"
            ) from exc

    @abstractmethod
    def list_files(self) -> list[str]:
        """Every file below the root as sorted relative POSIX paths."""

    @abstractmethod
    def download(self, rel: str, dest: Path) -> Path:
        """Copy ``rel`` to ``dest`` (streaming, creating parent folders) and return ``dest``."""

    def local_path(self, rel: str) -> Path | None:
        """A path on disk for ``rel`` when the storage is local, else ``None``."""
        return None

    def size(self, rel: str) -> int | None:
        """The size of ``rel`` in bytes when known without a request (else ``None``)."""
        return None

    @abstractmethod
    def describe(self, rel: str) -> str:
        """Full human-readable location of ``rel`` for messages; never contains secrets."""

    def close(self) -> None:  # noqa: B027 - an optional hook: local storage holds nothing
        """Release network connections (a no-op for local storage)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"
