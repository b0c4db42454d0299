"""What `ecgflow run` prints: step logs in files, progress from the steps, one line on failure."""

# no `from __future__ import annotations`: kfp reads the components' annotations as types

import io
import os
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from ecgflow import progress
from ecgflow.images import BASE_IMAGE
from ecgflow.run_view import RunView, headline_of, summary
from ecgflow.step_logs import StepLogs, error_from


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def chatty(n: int, out: Output[Dataset]) -> None:
    import logging
    import os

    from ecgflow import progress

    logging.getLogger("chatty").warning("chatty says hello")
    print("a plain stdout line")
    with progress.task("chunks", n) as bar:
        for _ in range(n):
            bar.advance()
    progress.headline("every chunk done")
    os.makedirs(out.path, exist_ok=True)
    out.metadata["accepted"] = n


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def broken(data: Input[Dataset]) -> None:
    from ecgflow.errors import EcgflowError

    raise EcgflowError("the folder /x/y holds no records")


@dsl.pipeline(name="two-steps")
def _two_steps(n: int = 3) -> None:
    broken(data=chatty(n=n).outputs["out"])


class _Heard:
    """A RunEvents observer that keeps what it hears."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def step_started(self, step: str) -> None:
        self.events.append(("started", step))

    def step_progress(self, step: str, event: dict[str, Any]) -> None:
        self.events.append(("progress", step, event))

    def step_finished(self, step: str, ok: bool, metadata: dict[str, Any], error: str) -> None:
        self.events.append(("finished", step, ok, metadata, error))


@pytest.fixture(scope="module")
def routed(tmp_path_factory: pytest.TempPathFactory) -> tuple[StepLogs, _Heard, str]:
    """A real two-step kfp.local run (one step fails) under StepLogs; what the terminal got."""
    import kfp.local

    root = tmp_path_factory.mktemp("routed")
    kfp.local.init(
        runner=kfp.local.SubprocessRunner(use_venv=False),
        pipeline_root=str(root),
        raise_on_error=True,
    )
    heard = _Heard()
    terminal = io.StringIO()
    previous = os.environ.get(progress.ENV)
    os.environ[progress.ENV] = "pipe"
    real_stdout = sys.stdout
    sys.stdout = terminal  # what would reach the terminal
    try:
        with StepLogs(root, heard) as logs, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*non-Python base image.*")
            with pytest.raises(RuntimeError):
                _two_steps()
    finally:
        sys.stdout = real_stdout
        if previous is None:
            os.environ.pop(progress.ENV, None)
        else:
            os.environ[progress.ENV] = previous
    return logs, heard, terminal.getvalue()


def test_each_step_output_goes_to_its_own_log_in_the_run_folder(
    routed: tuple[StepLogs, _Heard, str],
) -> None:
    logs, _, terminal = routed
    assert terminal == ""  # neither kfp.local's records nor the steps' lines
    assert logs.steps == ["chatty", "broken"]
    assert logs.run_dir is not None and (logs.run_dir / "chatty").is_dir()
    chatty_log = logs.log_path("chatty")
    assert chatty_log == logs.run_dir / "logs" / "chatty.log"
    text = chatty_log.read_text()
    assert "Executing task 'chatty'" in text and "\x1b[" not in text  # no ANSI colours
    assert "Got executor_input" in text  # the executor's own output
    assert "a plain stdout line" in text and "chatty says hello" in text
    assert progress.MARKER not in text  # progress is heard, not logged
    broken_log = logs.log_path("broken").read_text()
    assert "Traceback" in broken_log and "the folder /x/y holds no records" in broken_log
    assert "a plain stdout line" not in broken_log


def test_the_observer_hears_starts_progress_headlines_and_the_failure_cause(
    routed: tuple[StepLogs, _Heard, str],
) -> None:
    logs, heard, _ = routed
    kinds = [(e[0], e[1]) for e in heard.events]
    assert kinds[0] == ("started", "chatty") and ("started", "broken") in kinds
    chatty_progress = [e[2] for e in heard.events if e[0] == "progress" and e[1] == "chatty"]
    assert chatty_progress[0]["kind"] == "start" and chatty_progress[0]["label"] == "chunks"
    assert any(e["kind"] == "update" and e["done"] == 3 == e["total"] for e in chatty_progress)
    assert {"kind": "headline", "text": "every chunk done"}.items() <= chatty_progress[-1].items()
    finished = {e[1]: e[2:] for e in heard.events if e[0] == "finished"}
    ok, metadata, error = finished["chatty"]
    assert ok and metadata["accepted"] == 3 and error == ""
    assert finished["broken"] == (False, {}, "the folder /x/y holds no records")
    assert (logs.failed, logs.error) == ("broken", "the folder /x/y holds no records")


def test_error_from_keeps_the_projects_message_and_names_other_errors() -> None:
    lines = ["Traceback (most recent call last):", '  File "x.py", line 1, in <module>']
    assert error_from([*lines, "ecgflow.errors.EcgflowError: bad file a.hea"]) == "bad file a.hea"
    assert error_from([*lines, "ValueError: nope", "", "done"]) == "ValueError: nope"
    assert error_from(["no exception here", ""]) == "no exception here"


def test_progress_is_silent_without_a_sink_and_marker_lines_with_the_pipe_sink() -> None:
    previous = progress.install(None)
    try:
        with progress.task("quiet", 2) as bar:
            bar.advance(2)  # nothing to show it: nothing happens
        stream = io.StringIO()
        progress.install(progress.PipeSink(stream))
        with progress.task("work", 4, note="n") as bar:
            bar.advance()
            bar.advance()  # within 0.5 s of the last: not written
            bar.update(done=4)  # finished: always written
        progress.headline("all done")
    finally:
        progress.install(previous)
    events = [progress.parse(line) for line in stream.getvalue().splitlines()]
    assert [e["kind"] for e in events if e] == ["start", "update", "end", "headline"]
    assert events[1]["done"] == 4 and progress.describe(events[1]) == "work 4/4 · n"
    assert progress.parse("    " + stream.getvalue().splitlines()[0])["label"] == "work"
    assert progress.parse("an ordinary line") is None


def test_bars_only_on_a_terminal_and_never_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("CI", raising=False)
    assert progress.bars_wanted(Tty()) and not progress.bars_wanted(io.StringIO())
    monkeypatch.setenv("CI", "true")
    assert not progress.bars_wanted(Tty())


def test_headlines_are_short_and_rounded() -> None:
    assert headline_of({"dataset": "x", "seen": 30, "accepted": 30.0, "rejected": 0}) == (
        "30 accepted · 0 rejected"
    )
    assert headline_of({"n_train": 18, "n_val": 6, "n_test": 6, "rejected": 0}) == (
        "18 train · 6 val · 6 test"
    )
    evaluation = {"macro_auroc": 0.5666666666666668, "macro_auprc": 0.44166666666666665}
    assert headline_of(evaluation) == "macro AUROC 0.567 · AUPRC 0.442"
    assert headline_of({"name": "x", "n_questions": 40.0, "seconds": 1.23456}) == (
        "n_questions 40 · seconds 1.235"
    )


def test_the_plain_view_prints_a_line_per_finished_step_and_nothing_for_a_failure() -> None:
    from rich.console import Console

    out = io.StringIO()
    with RunView(Console(file=out, width=120), live=False) as view:
        view.step_started("ingest")
        view.step_progress("ingest", {"kind": "start", "id": 1, "label": "ingest", "total": 9})
        view.step_finished("ingest", True, {"accepted": 9, "rejected": 1}, "")
        view.step_started("label")
        view.step_finished("label", False, {}, "unknown label set")
    (line,) = out.getvalue().splitlines()
    assert line.startswith("ingest") and "done" in line and line.endswith("9 accepted · 1 rejected")


def test_the_summary_names_the_model_the_outputs_and_the_next_commands(tmp_path: Path) -> None:
    step = SimpleNamespace(wall_s=2.0, startup_s=0.5)
    result = SimpleNamespace(
        metadata={
            "promotion": {"uri": "models:/ecg-classifier/3", "alias": "champion", "summary": "s"},
            "evaluation": {"macro_auroc": 0.81234, "macro_f1": 0.5},
        },
        steps=[step, step],
        total_s=5.0,
        run_dir=tmp_path / "run",
        logs={"ingest": tmp_path / "run" / "logs" / "ingest.log"},
        steps_file=tmp_path / "run" / "pipeline_steps.json",
    )
    lines = summary(result, f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert lines[0] == (
        "model: models:/ecg-classifier/3 (alias champion); test macro_auroc 0.812, macro_f1 0.500"
    )
    assert f"outputs: {tmp_path / 'run'}" in lines
    assert "time: 5.0 s; in steps 4.0 s (start-up 1.0 s), between steps 1.0 s" in "\n".join(lines)
    assert lines[-2:] == [
        "    ecgflow serve --model models:/ecg-classifier@champion",
        f"    mlflow ui --backend-store-uri sqlite:///{tmp_path / 'mlflow.db'}",
    ]
    served = summary(result, "http://127.0.0.1:5000")
    assert served[-1].startswith("    open http://127.0.0.1:5000")


def test_a_failed_run_prints_one_line_with_the_cause_and_the_log(tmp_path: Path) -> None:
    """`ecgflow run --source /nope`: exit 2, one line naming the step, its error and its log."""
    missing = tmp_path / "nope"
    env = {**os.environ, "ECGFLOW_HOME": str(tmp_path / "home")}
    env.pop("CI", None)
    proc = subprocess.run(
        [sys.executable, "-m", "ecgflow.cli", "run", "--source", str(missing)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    (line,) = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert line.startswith("error: step ingest failed: ") and str(missing) in line
    assert "Traceback" not in line and "Inner task failed" not in line and "\x1b[" not in line
    log = Path(line.rpartition("(log: ")[2].rstrip(")"))
    assert log.name == "ingest.log" and log.parent.name == "logs"
    text = log.read_text()
    assert "Got executor_input" in text and "Traceback" in text and str(missing) in text


def test_on_a_terminal_a_failed_run_shows_the_table_and_the_error_line(tmp_path: Path) -> None:
    """The live view on a pseudo-terminal: the failed step's row and the one error line."""
    import pty
    import re

    env = {**os.environ, "ECGFLOW_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    env.pop("CI", None)
    controller, terminal = pty.openpty()
    command = [sys.executable, "-m", "ecgflow.cli", "run", "--source", str(tmp_path / "nope")]
    proc = subprocess.Popen(command, stdin=terminal, stdout=terminal, stderr=terminal, env=env)
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed: the process is gone
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    assert proc.wait(timeout=300) == 2
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode(errors="replace"))
    assert re.search(r"ingest\s+failed", shown), shown  # the table's row
    assert "error: step ingest failed: " in shown and "ingest.log" in shown
    assert "Traceback" not in shown and "Executing task" not in shown
