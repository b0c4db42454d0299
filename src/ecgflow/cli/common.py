"""What every command shares: the console, logging, and user errors as exit code 2."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import TextIO, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from ecgflow.errors import EcgflowError, describe_validation_error

# soft_wrap: messages are never broken inside a path when stderr is not a terminal
console = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted (runners swap it)."""

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


#: Libraries whose INFO records are chatter on a terminal (``--verbose`` shows them).
_NOISY = ("botocore", "urllib3", "s3transfer", "kfp", "mlflow", "alembic", "torchvision",
          "onnxscript", "torch.onnx", "onnx_ir", "httpx", "filelock")  # fmt: skip
_verbose = False


class _BelowError(logging.Filter):
    """Drops a logger's records below ERROR (a level would not hold: torch resets them).

    Used for torch's ONNX exporter, which notes at WARNING that torchvision is absent.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


_BELOW_ERROR = _BelowError()


def setup_logging(verbose: bool) -> None:
    """Logging for a command; progress bars on a terminal (not in CI), see ecgflow.progress."""
    global _verbose
    from ecgflow import progress

    _verbose = verbose
    level = logging.DEBUG if verbose else logging.INFO
    if console.is_terminal:
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=console, show_path=False)
        fmt = "%(message)s"
    else:
        handler = _StderrHandler()
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level, format=fmt, handlers=[handler], force=True)
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.WARNING)
    exporter = logging.getLogger("torch.onnx._internal.exporter._registration")
    exporter.removeFilter(_BELOW_ERROR)
    if not verbose:
        exporter.addFilter(_BELOW_ERROR)
    if progress.bars_wanted() and console.is_terminal:
        from ecgflow.run_view import Bars

        progress.install(Bars(console))


def verbose() -> bool:
    """Whether ``--verbose`` was given (set by :func:`setup_logging`)."""
    return _verbose


def run_action(action: Callable[[], T]) -> T:
    """Run ``action``; a user error is printed without a traceback and exits with code 2."""
    try:
        return action()
    except EcgflowError as exc:
        message = str(exc)
    except ValidationError as exc:
        message = describe_validation_error(exc)
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(2)
