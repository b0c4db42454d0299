"""Where a pipeline step's wall time goes: start-up, the stage call, publishing its outputs.

Every component starts a :class:`StepClock` as the first line of its body, wraps its stage
call in :meth:`StepClock.stage` and ends with :meth:`StepClock.record`, which puts the times
into its main output artifact's metadata under ``step_timing`` (the KFP UI shows it on a
cluster). After a local run :func:`collect` reads them back from the run folder in the order
the steps started. Phases, from the step process's own start (``/proc/self/stat``):

- ``boot_s``: interpreter, ``kfp``'s executor and the component's module, to the body's start;
- ``imports_s``: the body's imports (the stage module, torch where it needs it);
- ``stage_s``: the stage call (reading inputs, computing, writing outputs), with its CPU time
  (``stage_cpu_s``, this process and the children it waited for) and the bytes its process
  read and wrote (``read_mb`` / ``write_mb``: ``/proc/self/io``, cache hits included);
- ``publish_s``: after the stage: metadata and metrics for KFP.

Only the standard library is imported here: the clock starts before anything heavy.
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

#: The output-artifact metadata key the times travel under.
METADATA_KEY = "step_timing"
#: What a local run writes beside its steps' folders (and logs to MLflow).
STEPS_FILE = "pipeline_steps.json"
_MB = 1024 * 1024


@dataclass(frozen=True)
class StepTime:
    """One step's times in seconds (``started_at``: Unix time of its process start)."""

    step: str
    started_at: float
    boot_s: float
    imports_s: float
    stage_s: float
    publish_s: float
    wall_s: float
    startup_cpu_s: float
    stage_cpu_s: float
    read_mb: float
    write_mb: float

    @property
    def startup_s(self) -> float:
        """Process start to the stage call: interpreter, kfp, imports."""
        return self.boot_s + self.imports_s


def process_started_at() -> float:
    """Unix time this process started (Linux ``/proc``, 10 ms ticks); now, where unknown."""
    try:
        stat = Path("/proc/self/stat").read_text(encoding="ascii")
        ticks = int(stat.rpartition(")")[2].split()[19])  # field 22, starttime since boot
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return time.time()
    return time.time() - max(age, 0.0)


def _cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _io_bytes() -> tuple[int, int]:
    """(read, written) bytes of this process's read/write calls; zeros where unknown."""
    try:
        lines = Path("/proc/self/io").read_text(encoding="ascii").splitlines()
    except OSError:
        return 0, 0
    counters = dict(line.split(": ") for line in lines if ": " in line)
    return int(counters.get("rchar", 0)), int(counters.get("wchar", 0))


class StepClock:
    """Times one step process; see the module text for the phases."""

    def __init__(self) -> None:
        self.started_at = process_started_at()
        self.body_at = time.time()
        self.stage_at = self.stage_end = self.body_at
        self.startup_cpu = self.stage_cpu = 0.0
        self.read = self.written = 0

    @contextmanager
    def stage(self) -> Iterator[None]:
        """Wrap the stage call."""
        self.stage_at = time.time()
        cpu = self.startup_cpu = _cpu_s()
        read, written = _io_bytes()
        yield
        self.stage_end = time.time()
        self.stage_cpu = _cpu_s() - cpu
        now_read, now_written = _io_bytes()
        self.read, self.written = now_read - read, now_written - written

    def timing(self, step: str = "") -> StepTime:
        """The times so far, the step done now."""
        end = time.time()
        return StepTime(
            step=step,
            started_at=self.started_at,
            boot_s=self.body_at - self.started_at,
            imports_s=self.stage_at - self.body_at,
            stage_s=self.stage_end - self.stage_at,
            publish_s=end - self.stage_end,
            wall_s=end - self.started_at,
            startup_cpu_s=self.startup_cpu,
            stage_cpu_s=self.stage_cpu,
            read_mb=self.read / _MB,
            write_mb=self.written / _MB,
        )

    def record(self, artifact: Any) -> None:
        """Put the times into ``artifact``'s metadata (the last thing a component does)."""
        times = asdict(self.timing())
        del times["step"]  # the task's name is the step's: the collector knows it
        artifact.metadata[METADATA_KEY] = {k: round(v, 3) for k, v in times.items()}


def collect(run_dir: Path) -> list[StepTime]:
    """Every step's times in a local run folder (``<pipeline root>/<run>``), by start time.

    A step is a folder with kfp.local's ``executor_output.json``; its name is the task's.
    """
    names = {f.name for f in fields(StepTime)} - {"step"}
    found = []
    for output in sorted(run_dir.glob("*/executor_output.json")):
        data = json.loads(output.read_text(encoding="utf-8"))
        for listed in data.get("artifacts", {}).values():
            for artifact in listed.get("artifacts", []):
                times = artifact.get("metadata", {}).get(METADATA_KEY)
                if isinstance(times, dict):
                    values = {k: float(v) for k, v in times.items() if k in names}
                    found.append(StepTime(step=output.parent.name, **values))
    return sorted(found, key=lambda s: s.started_at)


def summary(steps: list[StepTime], total_s: float) -> dict[str, Any]:
    """A JSON-ready account: the steps, the total and the time outside every step."""
    in_steps = sum(s.wall_s for s in steps)
    return {
        "total_s": round(total_s, 3),
        "steps_s": round(in_steps, 3),
        "outside_steps_s": round(total_s - in_steps, 3),
        "steps": [asdict(s) | {"startup_s": round(s.startup_s, 3)} for s in steps],
    }


def table(steps: list[StepTime], total_s: float) -> Any:
    """A ``rich`` table: per step wall, start-up and stage seconds; between steps; total."""
    from rich.table import Table

    out = Table(title="pipeline steps (seconds)")
    for column in ("step", "wall", "start-up", "compute", "publish"):
        out.add_column(column, justify="left" if column == "step" else "right")
    for s in steps:
        seconds = (s.wall_s, s.startup_s, s.stage_s, s.publish_s)
        out.add_row(s.step, *(f"{v:.1f}" for v in seconds))
    outside = total_s - sum(s.wall_s for s in steps)
    out.add_row("between steps (kfp.local)", f"{outside:.1f}", "", "", "", style="dim")
    out.add_row(
        "total",
        f"{total_s:.1f}",
        f"{sum(s.startup_s for s in steps):.1f}",
        f"{sum(s.stage_s for s in steps):.1f}",
        f"{sum(s.publish_s for s in steps):.1f}",
        style="bold",
    )
    return out


def write_and_log(run_dir: Path, steps: list[StepTime], total_s: float) -> Path:
    """Write :data:`STEPS_FILE` into ``run_dir`` and log it to a ``pipeline`` MLflow run.

    The run (experiment ``ecgflow``, tag ``pipeline_run`` = the run folder's name, as the
    register step tags its run) gets ``step_seconds.<step>`` and ``startup_seconds.<step>``
    per step, ``pipeline_seconds`` and ``between_steps_seconds``, and the file as artifact.
    """
    from ecgflow import tracking

    path = run_dir / STEPS_FILE
    account = summary(steps, total_s)
    path.write_text(json.dumps(account, indent=2) + "\n", encoding="utf-8")
    metrics = {f"step_seconds.{s.step}": s.wall_s for s in steps}
    metrics |= {f"startup_seconds.{s.step}": s.startup_s for s in steps}
    metrics |= {
        "pipeline_seconds": total_s,
        "between_steps_seconds": account["outside_steps_s"],
    }
    # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI; a later run_local in this process
    # (another home) must not inherit this home's store
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    # the run ecgflow run opened for its steps to nest under, else a new one
    tracking.start_run("ecgflow", "pipeline", run_id=os.environ.get(tracking.PARENT_ENV))
    try:
        tracking.set_tags({"pipeline_run": run_dir.name})
        tracking.log_metrics(metrics, step=0)
        tracking.log_file(path)
    finally:
        tracking.end_run()
        if previous is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous
    return path
