"""The small JSON manifest every artifact folder carries: producer, inputs, params, hashes.

An output folder is complete when it holds ``manifest.json`` and no ``_INCOMPLETE`` marker.
:func:`writes_output` wraps every stage function: it removes a stale manifest and writes the
marker before the stage starts, and :func:`write_manifest` (the stage's last write) removes the
marker once the manifest is in place. A stage that fails — a full disk, a file-size limit, an
unreachable source — leaves the marker and no manifest, and an ``OSError`` becomes an
:class:`OutputWriteError` naming the path.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import hashlib
import inspect
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit, urlunsplit

from ecgflow import __version__
from ecgflow.artifacts import INCOMPLETE, MANIFEST
from ecgflow.errors import EcgflowError

log = logging.getLogger(__name__)

_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
P = ParamSpec("P")
R = TypeVar("R")


class OutputWriteError(EcgflowError):
    """A stage could not write its output (disk full, file too large, not a folder, ...)."""


def cannot_write(path: Path, exc: OSError) -> OutputWriteError:
    """An :class:`OutputWriteError` saying why ``path`` could not be written."""
    reason = exc.strerror or str(exc)
    if exc.errno in _FULL:
        reason += " (the disk is full or a file-size limit was reached)"
    return OutputWriteError(f"cannot write {path}: {reason}")


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def hash_tree(
    folder: Path,
    *,
    exclude: tuple[str, ...] = (MANIFEST, INCOMPLETE),
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

    The manifest holds no timestamps, so the same inputs give the same bytes. It is written to a
    temporary file and renamed, then the ``_INCOMPLETE`` marker is removed: a folder never holds
    a half-written manifest.
    """
    manifest: dict[str, Any] = {"stage": stage, "ecgflow_version": __version__, **fields}
    manifest["files"] = hash_tree(out_dir, known=known_hashes)
    text = json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n"
    tmp = out_dir / f".{MANIFEST}.part"
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out_dir / MANIFEST)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise cannot_write(out_dir / MANIFEST, exc) from exc
    (out_dir / INCOMPLETE).unlink(missing_ok=True)
    return manifest


def is_complete(out_dir: Path) -> bool:
    """Whether ``out_dir`` holds a manifest and no ``_INCOMPLETE`` marker."""
    return (out_dir / MANIFEST).is_file() and not (out_dir / INCOMPLETE).exists()


def _begin_output(out_dir: Path, stage: str) -> None:
    """Refuse an ``out_dir`` that cannot be a folder; mark an existing one incomplete.

    An existing folder loses the manifest of an earlier run and gets the ``_INCOMPLETE``
    marker. A missing folder is left for the stage to create, so a stage that fails on its
    inputs leaves nothing behind.
    """
    blocker = next((p for p in (out_dir, *out_dir.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        what = "is not a folder" if blocker == out_dir else f"{blocker} is not a folder"
        raise OutputWriteError(f"{stage}: cannot create the output folder {out_dir}: {what}")
    if blocker != out_dir:
        return
    try:
        (out_dir / MANIFEST).unlink(missing_ok=True)
        _mark_incomplete(out_dir, stage)
    except OSError as exc:
        raise OutputWriteError(f"{stage}: {cannot_write(out_dir / INCOMPLETE, exc)}") from exc


def _mark_incomplete(out_dir: Path, stage: str) -> None:
    (out_dir / INCOMPLETE).write_text(
        f"{stage} is writing this folder, or failed: not a complete output "
        f"(removed once {MANIFEST} is written)\n",
        encoding="utf-8",
    )


def _failed(out_dir: Path, stage: str) -> str:
    """Mark a folder the stage left without a manifest; say what is left of it."""
    if not out_dir.is_dir():
        return f"nothing was written to {out_dir}"
    if (out_dir / MANIFEST).is_file():  # written by this run: the outputs are complete
        return f"{out_dir} holds complete outputs"
    with contextlib.suppress(OSError):  # a full disk may refuse even the marker
        _mark_incomplete(out_dir, stage)
    return f"{out_dir} is left incomplete (no {MANIFEST}, marked {INCOMPLETE})"


def _out_dir(arguments: dict[str, Any], where: str) -> Path:
    """The argument named ``where`` (``out_dir``, or a dotted ``paths.out_dir``)."""
    name, *attributes = where.split(".")
    value = arguments[name]
    for attribute in attributes:
        value = getattr(value, attribute)
    return Path(value)


def _paths_in(value: Any, name: str, out: str) -> list[tuple[str, Path]]:
    """``(argument, path)`` for every path in ``value``, leaving out the output ``out``.

    ``value`` is a path, a list of paths or a dataclass with path fields (``paths.data_dir``).
    """
    if name == out:
        return []
    if isinstance(value, os.PathLike):
        return [(name, Path(value))]
    if isinstance(value, list | tuple):
        return [(name, Path(v)) for v in value if isinstance(v, os.PathLike)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        found: list[tuple[str, Path]] = []
        for item in dataclasses.fields(value):
            found += _paths_in(getattr(value, item.name), f"{name}.{item.name}", out)
        return found
    return []


def _input_paths(
    arguments: dict[str, Any], out: str, extra: Callable[[dict[str, Any]], list[Path]] | None
) -> list[tuple[str, Path]]:
    """The stage's inputs: path arguments (not ``out``), and what ``extra`` adds (``--source``)."""
    found = [pair for name, value in arguments.items() for pair in _paths_in(value, name, out)]
    if extra is not None:
        found += [("--source", Path(path)) for path in extra(arguments)]
    return found


def _check_not_an_input(stage: str, out_dir: Path, inputs: list[tuple[str, Path]]) -> None:
    """Refuse an output folder that equals, contains or lies inside one of the inputs."""
    target = out_dir.resolve()
    for name, path in inputs:
        real = path.resolve()
        if real == target:
            how = "is"
        elif target.is_relative_to(real):
            how = "lies inside"
        elif real.is_relative_to(target):
            how = "contains"
        else:
            continue
        raise EcgflowError(
            f"{stage}: the output folder {out_dir} {how} the input {path} ({name}); a stage "
            "never writes into, or deletes, its inputs: choose another output folder"
        )


def _check_complete(stage: str, inputs: list[tuple[str, Path]]) -> None:
    """Refuse an input folder left ``_INCOMPLETE`` by a failed run, or without a manifest.

    A folder inside a stage's output (``finetune-out/model``) is judged by that output: the
    nearest folder up from it that holds a manifest or the marker.
    """
    for name, path in inputs:
        if not path.is_dir():
            continue  # a file, or missing: the stage names what it needed from it
        for folder in (path, *path.absolute().parents):
            where = "" if folder == path else f" (inside {folder})"
            if (folder / INCOMPLETE).exists():
                raise EcgflowError(
                    f"{stage}: the input folder {path} ({name}) is marked {INCOMPLETE}{where}: "
                    "the stage that wrote it failed or is still running; re-run that stage first"
                )
            if (folder / MANIFEST).is_file():
                break
        else:
            raise EcgflowError(
                f"{stage}: the input folder {path} ({name}) has no {MANIFEST}: not the complete "
                "output of an ecgflow stage"
            )


def _about_output(exc: OSError, out_dir: Path) -> bool:
    """Whether ``exc`` is a failure to write output: a full disk, or a path below ``out_dir``."""
    if exc.errno in _FULL or exc.errno == errno.EROFS or not exc.filename:
        return True
    return Path(os.fsdecode(exc.filename)).absolute().is_relative_to(out_dir.absolute())


def writes_output(
    stage: str,
    out: str = "out_dir",
    *,
    inputs: Callable[[dict[str, Any]], list[Path]] | None = None,
    complete_inputs: bool = True,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a stage function whose output folder is its argument ``out``.

    Before anything is written, the stage's inputs — every path argument other than ``out``
    (also inside lists and dataclasses), plus the paths ``inputs(arguments)`` returns — are
    checked: an output folder that equals, contains or lies inside an input is refused, and
    (with ``complete_inputs``) so is an input folder marked ``_INCOMPLETE`` or without a
    manifest. Then a path that cannot be a folder is refused, and an existing folder
    loses the manifest of an earlier run and is marked ``_INCOMPLETE``; :func:`write_manifest`
    removes the marker, and so does a normal return. When the stage raises before writing its
    manifest, the folder (if any) is marked; an ``OSError`` (disk full, ``EFBIG``, read-only) is
    raised as an :class:`OutputWriteError` naming the path and what is left of the folder.
    """

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(function)

        @functools.wraps(function)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            arguments = signature.bind(*args, **kwargs).arguments
            out_dir = _out_dir(arguments, out)
            found = _input_paths(arguments, out, inputs)
            _check_not_an_input(stage, out_dir, found)
            if complete_inputs:
                _check_complete(stage, found)
            _begin_output(out_dir, stage)
            try:
                result = function(*args, **kwargs)
            except OutputWriteError as exc:
                raise OutputWriteError(f"{stage}: {exc}; {_failed(out_dir, stage)}") from exc
            except OSError as exc:
                left = _failed(out_dir, stage)
                if not _about_output(exc, out_dir):
                    log.warning("%s failed: %s", stage, left)
                    raise
                path = Path(os.fsdecode(exc.filename)) if exc.filename else out_dir
                raise OutputWriteError(f"{stage}: {cannot_write(path, exc)}; {left}") from exc
            except BaseException:
                log.warning("%s failed: %s", stage, _failed(out_dir, stage))
                raise
            (out_dir / INCOMPLETE).unlink(missing_ok=True)
            return result

        return wrapper

    return decorate
