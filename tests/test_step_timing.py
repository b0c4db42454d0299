"""Per-step times: components record them in artifact metadata, a local run collects them."""

# no `from __future__ import annotations`: kfp reads the components' annotations as types

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from ecgflow.images import BASE_IMAGE
from ecgflow.step_timing import METADATA_KEY, STEPS_FILE, collect, summary, table, write_and_log


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def write_blob(size: int, out: Output[Dataset]) -> None:
    from ecgflow.step_timing import StepClock

    clock = StepClock()

    import os

    with clock.stage():
        os.makedirs(out.path, exist_ok=True)
        with open(os.path.join(out.path, "blob"), "wb") as f:
            f.write(b"x" * size)
    clock.record(out)


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def read_blob(blob: Input[Dataset], copy: Output[Dataset]) -> None:
    from ecgflow.step_timing import StepClock

    clock = StepClock()

    import os

    with clock.stage():
        with open(os.path.join(blob.path, "blob"), "rb") as f:
            data = f.read()
        os.makedirs(copy.path, exist_ok=True)
        with open(os.path.join(copy.path, "blob"), "wb") as f:
            f.write(data)
    copy.metadata["bytes"] = len(data)
    clock.record(copy)


@dsl.pipeline(name="timed")
def _timed(size: int = 2_000_000) -> Dataset:
    written = write_blob(size=size)
    return read_blob(blob=written.outputs["out"]).outputs["copy"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real two-step kfp.local run (a subprocess per step) whose steps time themselves."""
    import kfp.local

    root = tmp_path_factory.mktemp("timed")
    kfp.local.init(
        runner=kfp.local.SubprocessRunner(use_venv=False),
        pipeline_root=str(root),
        raise_on_error=True,
    )
    with warnings.catch_warnings():  # kfp warns that the project image is not plain Python
        warnings.filterwarnings("ignore", message=".*non-Python base image.*")
        task = _timed()
    assert task.output.metadata["bytes"] == 2_000_000
    assert isinstance(task.output.metadata[METADATA_KEY], dict)
    (found,) = root.iterdir()
    return found


def test_a_run_yields_every_step_in_start_order_with_its_phases(run_dir: Path) -> None:
    steps = collect(run_dir)
    assert [s.step for s in steps] == ["write-blob", "read-blob"]
    write, read = steps
    assert write.started_at < read.started_at
    for s in steps:
        assert s.boot_s > 0  # the interpreter and kfp's executor ran before the body
        assert min(s.imports_s, s.stage_s, s.publish_s) >= 0
        assert s.wall_s == pytest.approx(s.boot_s + s.imports_s + s.stage_s + s.publish_s, abs=0.01)
        assert s.startup_cpu_s > 0
    assert write.write_mb >= 1.9 and write.read_mb < 1
    assert read.read_mb >= 1.9 and read.write_mb >= 1.9


def test_the_account_table_and_mlflow_run(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("ECGFLOW_HOME", str(tmp_path))
    steps = collect(run_dir)
    total = sum(s.wall_s for s in steps) + 1.5
    account = summary(steps, total)
    assert account["outside_steps_s"] == pytest.approx(1.5, abs=0.01)
    assert [s["step"] for s in account["steps"]] == ["write-blob", "read-blob"]

    from rich.console import Console

    console = Console(width=120, record=True)
    console.print(table(steps, total))
    text = console.export_text()
    for row in ("write-blob", "read-blob", "between steps (kfp.local)", "total", f"{total:.1f}"):
        assert row in text

    before = os.environ.get("MLFLOW_TRACKING_URI")
    path = write_and_log(run_dir, steps, total)
    assert os.environ.get("MLFLOW_TRACKING_URI") == before  # no store leaks to later runs
    assert path == run_dir / STEPS_FILE
    assert json.loads(path.read_text()) == json.loads(json.dumps(account))
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("ecgflow").experiment_id])
    assert run.data.tags["pipeline_run"] == run_dir.name
    assert run.data.metrics["step_seconds.read-blob"] == pytest.approx(steps[1].wall_s)
    assert run.data.metrics["pipeline_seconds"] == pytest.approx(total)
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == [STEPS_FILE]


def test_a_step_without_proc_falls_back_to_now() -> None:
    """Off Linux the clock still works: process start is taken as the clock's start."""
    code = (
        "import pathlib\n"
        "from ecgflow import step_timing\n"
        "real = pathlib.Path.read_text\n"
        "def fake(self, *a, **k):\n"
        "    if str(self).startswith('/proc/'): raise OSError('no /proc')\n"
        "    return real(self, *a, **k)\n"
        "pathlib.Path.read_text = fake\n"
        "clock = step_timing.StepClock()\n"
        "with clock.stage(): pass\n"
        "t = clock.timing('x')\n"
        "print(t.boot_s < 0.01, t.read_mb == 0 and t.write_mb == 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]
