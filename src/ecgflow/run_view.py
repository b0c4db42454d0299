"""What ``ecgflow run`` shows: a live step table (or a plain line per step), then one summary.

:class:`RunView` hears the steps' start, progress and end from
:class:`~ecgflow.step_logs.StepLogs`. On a terminal it keeps a ``rich`` table live (step,
state, elapsed, the step's headline: records accepted, epoch k/n with the selection metric,
AUROC …); otherwise it prints one plain line per finished step. :func:`summary` is what comes
after a run: the registered model and its metrics, where the outputs are, the next commands.
:class:`Bars` draws :mod:`ecgflow.progress` tasks as bars for the stage commands.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from rich.console import Console, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from ecgflow import progress

#: (metadata key, words, format): a finished step's headline takes the first four present;
#: counts read "30 accepted", scores "macro AUROC 0.812".
HEADLINE_KEYS: tuple[tuple[str, str, str], ...] = (
    ("accepted", "accepted", "d"),
    ("rejected", "rejected", "d"),
    ("n_records", "records", "d"),
    ("n_labels", "labels", "d"),
    ("n_train", "train", "d"),
    ("n_val", "val", "d"),
    ("n_test", "test", "d"),
    ("paper_images", "paper images", "d"),
    ("signal_images", "signal images", "d"),
    ("n_examples", "examples", "d"),
    ("mean_recall", "mean recall", ".3f"),
    ("macro_auroc", "macro AUROC", ".3f"),
    ("macro_auprc", "AUPRC", ".3f"),
    ("macro_f1", "F1", ".3f"),
    ("qa_accuracy", "QA accuracy", ".3f"),
    ("parity_max_abs_diff", "ONNX parity", ".1e"),
    ("uri", "", "s"),
)
#: The evaluation metrics the summary names, in this order.
SUMMARY_METRICS = ("macro_auroc", "macro_auprc", "macro_f1", "fmax")
_STATES = {"running": "[yellow]running[/]", "done": "[green]done[/]", "failed": "[red]failed[/]"}


def headline_of(metadata: dict[str, Any], limit: int = 4) -> str:
    """A finished step's outputs in a few words, numbers rounded (``30 accepted · 0 rejected``)."""
    parts = []
    for key, words, fmt in HEADLINE_KEYS:
        value = metadata.get(key)
        if value is None or isinstance(value, bool):
            continue
        if key == "rejected" and "accepted" not in metadata and not value:
            continue  # "0 rejected" says something beside "30 accepted" only
        if fmt == "d" and isinstance(value, int | float):
            parts.append(f"{int(value)} {words}")
        elif fmt == "s":
            parts.append(f"{words} {value}".strip())
        elif isinstance(value, int | float):
            parts.append(f"{words} {value:{fmt}}")
        if len(parts) == limit:
            break
    if not parts:  # a step this table does not know: its first numbers, rounded
        numbers = [(k, v) for k, v in metadata.items() if isinstance(v, int | float)]
        parts = [f"{k} {v:.4g}" for k, v in numbers if not isinstance(v, bool)][:3]
    return " · ".join(parts)


@dataclass
class _Step:
    name: str
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    state: str = "running"
    headline: str = ""
    tasks: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def elapsed(self) -> float:
        return (self.ended or time.monotonic()) - self.started

    def now(self) -> str:
        """The latest running task (with the headline as its note), else the headline."""
        tasks = list(self.tasks.values())  # a copy: Live draws in its own thread
        if self.state == "running" and tasks:
            return progress.describe(tasks[-1])
        return self.headline


class RunView:
    """Hears a run's steps (a :class:`~ecgflow.step_logs.RunEvents`) and shows them.

    ``live``: a table redrawn in place on ``console`` (a terminal); otherwise one line per
    finished step. A failed step prints nothing here: the error line says it all.
    """

    def __init__(self, console: Console, live: bool, title: str = "") -> None:
        self.console = console
        self.steps: dict[str, _Step] = {}
        self.title = title
        self._live = Live(self, console=console, refresh_per_second=4, redirect_stdout=False) \
            if live else None  # fmt: skip

    def __enter__(self) -> RunView:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.stop()

    # --- RunEvents ------------------------------------------------------------------------

    def step_started(self, step: str) -> None:
        """A new row, running."""
        self.steps[step] = _Step(step)
        self._refresh()

    def step_progress(self, step: str, event: dict[str, Any]) -> None:
        """A task of the step started, moved or ended, or its headline changed."""
        shown = self.steps.get(step)
        if shown is None:
            return
        kind = event.get("kind")
        if kind == "headline":
            shown.headline = str(event.get("text", ""))
        elif kind == "end":
            shown.tasks.pop(int(event.get("id", 0)), None)
        elif kind in ("start", "update"):
            shown.tasks[int(event.get("id", 0))] = event
        self._refresh()

    def step_finished(self, step: str, ok: bool, metadata: dict[str, Any], error: str) -> None:
        """The row's end: its outputs' headline, or its error; a plain line when not live."""
        shown = self.steps.setdefault(step, _Step(step))
        shown.ended, shown.state = time.monotonic(), "done" if ok else "failed"
        shown.tasks.clear()
        shown.headline = (headline_of(metadata) or shown.headline) if ok else error
        if self._live is not None:
            self._refresh()
        elif ok:
            line = f"{step:<22} done {shown.elapsed:7.1f} s  {shown.headline}".rstrip()
            self.console.print(escape(line), highlight=False, soft_wrap=True)

    # --- drawing --------------------------------------------------------------------------

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.refresh()

    def __rich__(self) -> RenderableType:
        table = Table(title=self.title or None, title_justify="left", box=None, pad_edge=False)
        table.add_column("step", no_wrap=True)
        table.add_column("state", no_wrap=True)
        table.add_column("time", justify="right", no_wrap=True)
        table.add_column("", overflow="ellipsis", no_wrap=True)
        for shown in list(self.steps.values()):  # a copy: the run adds rows meanwhile
            table.add_row(
                escape(shown.name),
                _STATES[shown.state],
                f"{shown.elapsed:.1f} s",
                escape(shown.now()),
            )
        return table


def summary(result: Any, mlflow_uri: str) -> list[str]:
    """The lines after a run (``result``: a :class:`~ecgflow.pipeline_runner.LocalRun`)."""
    lines = []
    promotion = result.metadata.get("promotion") or {}
    evaluation = result.metadata.get("evaluation", {})
    if promotion:
        scores = ", ".join(f"{k} {evaluation[k]:.3f}" for k in SUMMARY_METRICS if k in evaluation)
        lines.append(f"model: {promotion['uri']} (alias {promotion['alias']}); test {scores}")
        if promotion.get("summary"):
            lines.append(f"    {promotion['summary']}")
    in_steps = sum(s.wall_s for s in result.steps)
    startup = sum(s.startup_s for s in result.steps)
    lines.append(f"outputs: {result.run_dir}")
    if result.logs:
        lines.append(f"    step logs: {Path(result.run_dir) / 'logs'}/<step>.log")
    lines.append(
        f"time: {result.total_s:.1f} s; in steps {in_steps:.1f} s (start-up {startup:.1f} s), "
        f"between steps {result.total_s - in_steps:.1f} s; per step: {result.steps_file}"
    )
    lines.append("next:")
    if promotion:
        name = str(promotion["uri"]).removeprefix("models:/").split("/")[0]
        lines.append(f"    ecgflow serve --model models:/{name}@{promotion['alias']}")
    if mlflow_uri.startswith(("http://", "https://")):
        lines.append(f"    open {mlflow_uri} (MLflow: runs, metrics, registered models)")
    else:
        lines.append(f"    mlflow ui --backend-store-uri {mlflow_uri}")
    return lines


class Bars:
    """A :mod:`ecgflow.progress` sink drawing each task as a ``rich`` bar on ``console``."""

    def __init__(self, console: Console) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self.ids: dict[int, Any] = {}

    def event(self, kind: str, task: progress.Task | None, text: str = "") -> None:
        """Add, move or remove the task's bar (headlines are not drawn)."""
        if task is None:
            return
        if kind == "start":
            if not self.ids:
                self.bars.start()
            self.ids[task.id] = self.bars.add_task(self._text(task), total=task.total)
            return
        bar = self.ids.get(task.id)
        if bar is None:
            return
        if kind == "update":
            self.bars.update(bar, completed=task.done, total=task.total,
                             description=self._text(task))  # fmt: skip
        elif kind == "end":
            self.bars.remove_task(self.ids.pop(task.id))
            if not self.ids:
                self.bars.stop()

    @staticmethod
    def _text(task: progress.Task) -> str:
        return escape(f"{task.label} · {task.note}" if task.note else task.label)
