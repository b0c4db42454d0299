"""One log file per pipeline step: where kfp.local's output goes during ``ecgflow run``.

kfp.local (``SubprocessRunner``) reports in two ways, both in the calling process:

- its own records (``Executing task 'x'``, ``Task 'x' finished with status …``, the outputs)
  through the root logger, from its modules (``logging.info(...)``), each task inside a
  context that swaps the root logger's handlers for one of its own on ``sys.stdout``;
- each step subprocess's stdout and stderr, line by line, with ``print`` (to ``sys.stdout``).

:class:`StepLogs` takes both: a filter on the root logger claims kfp's records (a filter stays
when kfp swaps handlers) and tells steps apart by them, and it stands in for ``sys.stdout``
while the pipeline runs, so the streamed lines land in ``<run>/logs/<step>.log``. Progress
marker lines (:mod:`ecgflow.progress`) are not written but handed to the :class:`RunEvents`
observer, with the start and end of every step and, for a failed one, the error its log ends in.
"""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import time
import warnings
from collections import deque
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TextIO

from ecgflow import progress

#: Folder of the step logs inside a run folder.
LOGS = "logs"
#: kfp.local's records that are not a step's (pipeline start and end, clean-up).
PIPELINE_LOG = "pipeline.log"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_BEGIN = re.compile(r"^Executing task '(?P<step>[^']+)'")
_PIPELINE = re.compile(r"^(Running pipeline|Pipeline '|Skipping |Cleaned up workspace)")
_END = re.compile(r"^Task '(?P<step>[^']+)' finished with status (?P<status>\w+)")
_OUTPUT_FILE = re.compile(r'"outputFile": "(?P<path>.+)/[^/]+/executor_output\.json"')
_EXCEPTION = re.compile(r"^(?P<type>[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)): ?(?P<msg>.*)")


class RunEvents(Protocol):
    """What a run's display hears from :class:`StepLogs`."""

    def step_started(self, step: str) -> None:
        """kfp.local started ``step``."""

    def step_progress(self, step: str, event: dict[str, Any]) -> None:
        """A :mod:`ecgflow.progress` event from ``step``'s output."""

    def step_finished(self, step: str, ok: bool, metadata: dict[str, Any], error: str) -> None:
        """``metadata``: the step's output artifacts' metadata merged; ``error``: its cause."""


class _KfpRecords(logging.Filter):
    """Claims the root logger's records that kfp.local's modules log (none reach a terminal)."""

    def __init__(self, logs: StepLogs, kfp_dir: str) -> None:
        super().__init__()
        self.logs, self.kfp_dir = logs, kfp_dir

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != "root" or not record.pathname.startswith(self.kfp_dir):
            return True
        self.logs.kfp_record(record)
        return False


class StepLogs(io.TextIOBase):
    """Routes kfp.local's output into per-step files; use as a context manager around the run.

    ``pipeline_root``: kfp.local's root (the run folder ``<root>/<run>`` is learned from the
    first step's executor input, or found as the new folder at the end).
    """

    def __init__(self, pipeline_root: Path, events: RunEvents | None = None) -> None:
        import kfp

        super().__init__()
        self.pipeline_root = pipeline_root
        self.events = events
        self.run_dir: Path | None = None
        self.step: str | None = None
        self.failed: str | None = None
        self.error = ""
        self.steps: list[str] = []  # in start order
        self._pending: dict[str, list[str]] = {}  # lines written before the run folder is known
        self._open: dict[str, TextIO] = {}
        self._tail: deque[str] = deque(maxlen=400)
        self._partial = ""
        self._before = self._folders()
        self._filter = _KfpRecords(self, str(Path(kfp.__file__).parent))
        self._stdout: Any = None
        self._warnings: Any = None

    # --- context -----------------------------------------------------------------------------

    def __enter__(self) -> StepLogs:
        self._stdout, sys.stdout = sys.stdout, self  # type: ignore[assignment]
        logging.getLogger().addFilter(self._filter)
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.showwarning = self._showwarning
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._warnings.__exit__(kind, exc, tb)
        logging.getLogger().removeFilter(self._filter)
        sys.stdout = self._stdout
        if self._partial:
            self._line(self._partial)
            self._partial = ""
        if self.run_dir is None:
            new = sorted(self._folders() - self._before, key=lambda p: p.stat().st_mtime)
            self.run_dir = new[-1] if new else self._fallback_dir()
        self._flush_pending()
        for handle in self._open.values():
            handle.close()
        self._open.clear()

    # --- file-like: kfp.local prints the step's lines here ---------------------------------

    def writable(self) -> bool:
        """Yes: this stands in for ``sys.stdout``."""
        return True

    def isatty(self) -> bool:
        """Never a terminal."""
        return False

    def write(self, text: str) -> int:
        """Take ``text``; each complete line goes to the current step's log."""
        data = self._partial + text
        *lines, self._partial = data.split("\n")
        for line in lines:
            self._line(line)
        return len(text)

    def flush(self) -> None:
        """Flush the open log files."""
        for handle in self._open.values():
            handle.flush()

    # --- what arrives -----------------------------------------------------------------------

    def kfp_record(self, record: logging.LogRecord) -> None:
        """One of kfp.local's records: marks step boundaries, then goes to the log."""
        message = _ANSI.sub("", record.getMessage())
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        line = f"{stamp} {record.levelname} kfp.local: {message}"
        if _PIPELINE.match(message):  # the pipeline's, not a step's
            self._write(line, step=None)
            return
        begin = _BEGIN.match(message)
        if begin:
            self.step = begin["step"]
            self.steps.append(self.step)
            self._tail.clear()
            if self.events is not None:
                self.events.step_started(self.step)
        self._write(line)
        end = _END.match(message)
        if end and end["step"] == self.step:
            self._finished(end["step"], end["status"] == "SUCCESS")

    def _line(self, line: str) -> None:
        line = _ANSI.sub("", line.removeprefix("    "))  # kfp indents the step's lines
        event = progress.parse(line)
        if event is not None:
            if self.events is not None and self.step is not None:
                self.events.step_progress(self.step, event)
            return
        if self.run_dir is None:
            found = _OUTPUT_FILE.search(line)
            if found:
                self.run_dir = Path(found["path"])
                self._flush_pending()
        self._tail.append(line)
        self._write(line)

    def _showwarning(self, message: Any, category: Any, filename: str, lineno: int,
                     file: Any = None, line: str | None = None) -> None:  # fmt: skip
        self._write(warnings.formatwarning(message, category, filename, lineno, line).rstrip())

    def _finished(self, step: str, ok: bool) -> None:
        metadata: dict[str, Any] = {}
        if ok:
            metadata = self._metadata(step)
        else:
            self.failed, self.error = step, error_from(list(self._tail))
        if self.events is not None:
            self.events.step_finished(step, ok, metadata, self.error if not ok else "")

    # --- files ------------------------------------------------------------------------------

    def log_path(self, step: str | None) -> Path:
        """Where ``step``'s log is (``None``: kfp.local's own records)."""
        name = PIPELINE_LOG if step is None else f"{step}.log"
        return (self.run_dir or self._fallback_dir()) / LOGS / name

    def _write(self, line: str, step: str | bool | None = True) -> None:
        """Append ``line`` to ``step``'s log (``True``: the current step's)."""
        step = self.step if step is True else step
        key = step or ""
        if self.run_dir is None:
            self._pending.setdefault(key, []).append(line)
            return
        handle = self._open.get(key)
        if handle is None:
            path = self.log_path(step or None)
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = self._open[key] = path.open("a", encoding="utf-8", buffering=1)
        handle.write(line + "\n")

    def _flush_pending(self) -> None:
        pending, self._pending = self._pending, {}
        for key, lines in pending.items():
            for line in lines:
                self._write(line, step=key or None)

    def _folders(self) -> set[Path]:
        if not self.pipeline_root.is_dir():
            return set()
        return {p for p in self.pipeline_root.iterdir() if p.is_dir() and p.name != LOGS}

    def _fallback_dir(self) -> Path:
        """A run that failed before kfp.local made its folder keeps its logs here."""
        return self.pipeline_root / f"failed-{time.strftime('%Y-%m-%d-%H-%M-%S')}"

    def _metadata(self, step: str) -> dict[str, Any]:
        """The step's output artifacts' metadata, merged (from its ``executor_output.json``)."""
        if self.run_dir is None:
            return {}
        try:
            data = json.loads((self.run_dir / step / "executor_output.json").read_text("utf-8"))
        except (OSError, ValueError):
            return {}
        merged: dict[str, Any] = {}
        for listed in data.get("artifacts", {}).values():
            for artifact in listed.get("artifacts", []):
                merged.update(artifact.get("metadata", {}))
        return merged


def error_from(lines: list[str]) -> str:
    """The error a failed step's output ends in: its last exception line (``type: message``).

    The project's own errors (``EcgflowError``) are shown by their message alone; others keep
    their type's short name. Falls back to the last non-empty line.
    """
    for line in reversed(lines):
        found = _EXCEPTION.match(line.strip())
        if found:
            kind = found["type"].rpartition(".")[2]
            message = found["msg"].strip()
            return message if kind == "EcgflowError" or not message else f"{kind}: {message}"
    rest = [line.strip() for line in lines if line.strip()]
    return rest[-1] if rest else "no output"
