"""Datasets in a local folder (a plain path or ``file://PATH``).

Symlinks are never followed out of the folder: a file whose real path lies outside the root
cannot be read, and the listing refuses (see :meth:`Storage.refused`) every symlink — one that
points outside, a broken one or a loop, and one inside the folder, which would list a file or a
folder a second time. Every file is listed, and so read, once.
"""

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
        self._listing: list[str] | None = None
        self._refused: dict[str, str] = {}

    def _path(self, rel: str) -> Path:
        """``rel`` below the root; :class:`EcgflowError` when its real path lies outside."""
        path = self.root / clean_rel(rel)
        real = Path(os.path.realpath(path))
        if not real.is_relative_to(self.root):
            raise EcgflowError(
                f"{path} is a symlink to {real}, outside the source folder {self.root}"
            )
        return path

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
        """Every regular file below the root, sorted; symlinks are refused (module docstring)."""
        if self._listing is None:
            self._listing = sorted(self._walk())
        return list(self._listing)

    def _walk(self) -> list[str]:
        files: list[str] = []
        links: list[str] = []

        def unreadable(exc: OSError) -> None:
            rel = Path(exc.filename).relative_to(self.root).as_posix() if exc.filename else "."
            self._refused[f"{rel}/"] = f"cannot list the folder: {exc.strerror or exc}"

        for folder, dirs, names in os.walk(self.root, onerror=unreadable):
            base = Path(folder)
            for name in (*dirs, *names):
                path = base / name
                rel = path.relative_to(self.root).as_posix()
                if path.is_symlink():
                    links.append(rel)
                elif name in names:
                    if path.is_file():
                        files.append(rel)
                    else:
                        self._refused[rel] = "not a regular file (a socket, FIFO or device)"
        for rel in links:
            self._refused[rel] = self._symlink_reason(self.root / rel)
        return files

    def _symlink_reason(self, path: Path) -> str:
        """Why the symlink ``path`` is not followed."""
        target = os.readlink(path)
        real = Path(os.path.realpath(path))
        if not real.is_relative_to(self.root):
            return f"a symlink to {target}, outside the source folder: not followed"
        if not real.exists():
            return f"a symlink to {target} that is broken or a loop: not followed"
        what = "folder" if real.is_dir() else "file"
        shown = real.relative_to(self.root).as_posix() or "."
        return f"a symlink to the {what} {shown} of the source, already listed: not followed"

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
