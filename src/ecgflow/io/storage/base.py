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

from ecgflow.errors import EcgflowError

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
