"""Datasets in a local folder (a plain path or ``file://PATH``)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ecgflow.errors import EcgflowError
from ecgflow.io.storage.base import Storage, clean_rel, write_atomically


class LocalStorage(Storage):
    """A folder on the local file system."""

    def __init__(self, root: str | os.PathLike[str], uri: str | None = None) -> None:
        path = Path(root).expanduser()
        if not path.is_dir():
            what = "is not a folder" if path.exists() else "does not exist"
            raise EcgflowError(f"dataset folder {path} {what}")
        self.root = path.resolve()
        self.uri = uri if uri is not None else os.fspath(root)

    def _path(self, rel: str) -> Path:
        return self.root / clean_rel(rel)

    def exists(self, rel: str) -> bool:
        """Whether ``rel`` is a file below the root."""
        return self._path(rel).is_file()

    def read_bytes(self, rel: str) -> bytes:
        """The content of ``rel``; :class:`EcgflowError` with the full path when unreadable."""
        path = self._path(rel)
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise EcgflowError(f"file not found: {path}") from exc
        except OSError as exc:
            raise EcgflowError(f"cannot read {path}: {exc.strerror or exc}") from exc

    def list_files(self) -> list[str]:
        """Every file below the root (following symlinked folders), sorted."""
        files: list[str] = []
        for folder, _dirs, names in os.walk(self.root, followlinks=True):
            base = Path(folder).relative_to(self.root)
            files.extend((base / name).as_posix() for name in names)
        return sorted(files)

    def download(self, rel: str, dest: Path) -> Path:
        """Copy ``rel`` to ``dest``; a no-op when ``dest`` already is that file."""
        src = self._path(rel)
        dest = Path(dest)
        if not src.is_file():
            raise EcgflowError(f"file not found: {src}")
        if dest.exists() and dest.resolve() == src.resolve():
            return dest
        try:
            return write_atomically(dest, lambda tmp: shutil.copyfile(src, tmp))
        except OSError as exc:
            raise EcgflowError(f"cannot copy {src} to {dest}: {exc.strerror or exc}") from exc

    def local_path(self, rel: str) -> Path:
        """The absolute path of ``rel`` on disk (whether or not it exists)."""
        return self._path(rel)

    def size(self, rel: str) -> int | None:
        """The size of the file ``rel``, or ``None`` when it is not there."""
        try:
            return self._path(rel).stat().st_size
        except OSError:
            return None

    def describe(self, rel: str) -> str:
        """The absolute path of ``rel``."""
        return str(self.root / rel.lstrip("/"))
