"""Parse the ``--source`` string of ``ecgflow ingest`` into a kind, a location and options.

Accepted forms::

    ptbxl:PATH[?rate=100|500]    cinc:PATH    code15:PATH    folder:PATH[?fs=500]
    synthetic://?n=N&seed=S&fs=500&seconds=10
    s3://bucket/prefix[?...]     http(s)://host/path/[?...]     PATH
    KIND:s3://bucket/prefix      KIND:https://host/path/

Without a kind, the layout is detected from the files (see :mod:`ecgflow.io.sources.detect`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from urllib.parse import parse_qsl

from ecgflow.errors import EcgflowError
from ecgflow.plugins import Registry

#: the source kinds, each a module ``ecgflow.io.sources.<kind>`` with ``discover`` (cinc and
#: code15 also ``header_meta``), imported when a source of that kind is used
SOURCES: Registry[ModuleType] = Registry("source kind")
for _kind in ("ptbxl", "cinc", "code15", "folder", "synthetic"):
    SOURCES.register_lazy(_kind, f"ecgflow.io.sources.{_kind}")
KINDS = SOURCES.names()


@dataclass(frozen=True)
class SourceSpec:
    """A parsed ``--source``: ``kind`` is ``None`` when the layout must be detected."""

    kind: str | None
    location: str
    options: dict[str, str] = field(default_factory=dict)

    def option(self, name: str, default: str | None = None) -> str | None:
        """The value of a ``?name=value`` option, or ``default``."""
        return self.options.get(name, default)


def parse_source(text: str) -> SourceSpec:
    """Split ``text`` into kind, location and ``?key=value`` options."""
    text = text.strip()
    if not text:
        raise EcgflowError("--source is empty; expected e.g. ptbxl:PATH or synthetic://?n=100")
    if text.startswith("synthetic:"):
        _, _, query = text.partition("?")
        return SourceSpec("synthetic", "synthetic://", _options(query, text))
    kind: str | None = None
    head, sep, rest = text.partition(":")
    if sep and head in KINDS:
        kind, text = head, rest
    location, _, query = text.partition("?")
    if not location:
        raise EcgflowError(f"--source {text!r}: no location after the kind")
    return SourceSpec(kind, location, _options(query, text))


def _options(query: str, text: str) -> dict[str, str]:
    try:
        return dict(parse_qsl(query, keep_blank_values=False, strict_parsing=bool(query)))
    except ValueError as exc:
        raise EcgflowError(f"--source {text!r}: malformed options {query!r} ({exc})") from exc


def int_option(spec: SourceSpec, name: str, default: int, *, minimum: int = 0) -> int:
    """Read an integer option, raising :class:`EcgflowError` naming it when invalid."""
    raw = spec.option(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise EcgflowError(f"source option {name}={raw!r} is not an integer") from None
    if value < minimum:
        raise EcgflowError(f"source option {name}={value} must be >= {minimum}")
    return value


def float_option(spec: SourceSpec, name: str, default: float | None) -> float | None:
    """Read a positive float option, raising :class:`EcgflowError` naming it when invalid."""
    raw = spec.option(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise EcgflowError(f"source option {name}={raw!r} is not a number") from None
    if not value > 0:
        raise EcgflowError(f"source option {name}={value} must be > 0")
    return value
