"""Progress of long work: stages report it here, whoever runs them decides how it shows.

A stage wraps a loop in :func:`task` (``done`` of ``total``, with a short ``note``) and may
set its step's one-line :func:`headline`. Nothing shows unless a sink is installed:

- the CLI installs bars on a terminal (never when stdout is not a terminal, nor with CI=true);
- a pipeline step under ``ecgflow run`` (environment ``ECGFLOW_PROGRESS=pipe``) writes the
  events as :data:`MARKER` lines on stdout, which ``ecgflow run`` reads from kfp.local's
  stream of the step's output and shows in its table (:func:`parse`).

Only the standard library is imported here; with no sink every call is nearly free.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import count
from typing import Any, Protocol

#: The environment variable that turns on the marker lines (value ``pipe``).
ENV = "ECGFLOW_PROGRESS"
#: The prefix of a marker line; the rest is one JSON object.
MARKER = "@@ecgflow-progress "
_PIPE_EVERY_S = 0.5


class Sink(Protocol):
    """Receives progress events: ``start`` / ``update`` / ``end`` of a task, ``headline``."""

    def event(self, kind: str, task: Task | None, text: str = "") -> None:
        """One event (``task`` is ``None`` for a headline, whose words are ``text``)."""


@dataclass
class Task:
    """One piece of long work: ``done`` of ``total`` (``None``: unknown) and a short note."""

    id: int
    label: str
    total: int | None = None
    done: int = 0
    note: str = ""

    def advance(self, n: int = 1) -> None:
        """``n`` more units done."""
        self.update(done=self.done + n)

    def update(
        self, done: int | None = None, total: int | None = None, note: str | None = None
    ) -> None:
        """Set what changed and tell the sink."""
        if done is not None:
            self.done = done
        if total is not None:
            self.total = total
        if note is not None:
            self.note = note
        sink = current()
        if sink is not None:
            sink.event("update", self)

    def as_dict(self) -> dict[str, Any]:
        """The task as a JSON-ready dict."""
        return {"id": self.id, "label": self.label, "total": self.total, "done": self.done,
                "note": self.note}  # fmt: skip


_ids = count(1)
_sink: Sink | None = None
_resolved = False


def install(sink: Sink | None) -> Sink | None:
    """Make ``sink`` receive every event from now on (``None``: silence); returns the old one."""
    global _sink, _resolved
    previous, _sink, _resolved = current(), sink, True
    return previous


def current() -> Sink | None:
    """The installed sink; the first call installs :class:`PipeSink` when :data:`ENV` says so."""
    global _sink, _resolved
    if not _resolved:
        _resolved = True
        if os.environ.get(ENV) == "pipe":
            _sink = PipeSink()
    return _sink


@contextmanager
def task(label: str, total: int | None = None, note: str = "") -> Iterator[Task]:
    """Report a piece of long work for the duration of the block."""
    work = Task(next(_ids), label, total, 0, note)
    sink = current()
    if sink is not None:
        sink.event("start", work)
    try:
        yield work
    finally:
        sink = current()
        if sink is not None:
            sink.event("end", work)


def headline(text: str) -> None:
    """The running step's state in a few words (``epoch 3/10 val_macro_auroc 0.712``)."""
    sink = current()
    if sink is not None:
        sink.event("headline", None, text)


class PipeSink:
    """Writes events as :data:`MARKER` lines on stdout, updates at most every 0.5 s a task."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream
        self.sent: dict[int, float] = {}

    def event(self, kind: str, task: Task | None, text: str = "") -> None:
        """Write the event (an update only when 0.5 s passed since this task's last, or done)."""
        now = time.monotonic()
        if kind == "update" and task is not None:
            finished = task.total is not None and task.done >= task.total
            if not finished and now - self.sent.get(task.id, 0.0) < _PIPE_EVERY_S:
                return
        if task is not None:
            self.sent[task.id] = now
            if kind == "end":
                self.sent.pop(task.id, None)
        payload = {"kind": kind, **(task.as_dict() if task else {}), "text": text}
        stream = self.stream or sys.stdout
        stream.write(MARKER + json.dumps(payload) + "\n")
        stream.flush()


def parse(line: str) -> dict[str, Any] | None:
    """The event a marker line carries (leading spaces allowed); ``None`` for other lines."""
    stripped = line.lstrip()
    if not stripped.startswith(MARKER):
        return None
    try:
        event = json.loads(stripped[len(MARKER) :])
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def describe(event: dict[str, Any]) -> str:
    """A task event in a few words: ``label done/total · note``."""
    if event.get("kind") == "headline":
        return str(event.get("text", ""))
    parts = [str(event.get("label", ""))]
    total, done = event.get("total"), event.get("done", 0)
    if total:
        parts.append(f"{done}/{total}")
    elif done:
        parts.append(str(done))
    if event.get("note"):
        parts.append(f"· {event['note']}")
    return " ".join(p for p in parts if p)


def bars_wanted(stream: Any = None) -> bool:
    """Bars only on a terminal, and never in CI (``CI=true``)."""
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        return False
    stream = stream or sys.stdout
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
