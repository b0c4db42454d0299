"""Pipeline wall time: the default ``ecgflow run`` as one process, and where each step's time goes.

Runs ``ecgflow run`` (the embedded defaults: 200 synthetic records, the whole pipeline; or
``--source``) under a fresh ``$ECGFLOW_HOME`` with the embedded MLflow store, as ``make run``
does after set-up, and reads the step times the components recorded (the run's
``pipeline_steps.json``, see ``ecgflow.step_timing``). Per step: start-up (interpreter and kfp's
executor, then the component's imports), the stage call split into CPU time (this process and
the children it waited for; up to 2 s per second on 2 cores) and time off the CPU (waiting:
I/O, or sleeping), with the bytes the step's process read and wrote, and publishing. Outside
the steps: kfp.local between steps (spawning each step, reading its outputs, the interpreter's
exit) and ``ecgflow run``'s own start-up, pipeline build and MLflow logging.

Writes benchmarks/results/pipeline.json. Usage:
    python benchmarks/pipeline.py [--source URI] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
#: settings that would change what the default pipeline runs (as ``make compile-golden``)
UNSET = (
    "ECGFLOW_CONFIG",
    "ECGFLOW_IMAGE",
    "ECGFLOW_SOURCE",
    "ECGFLOW_TRACKING_URI",
    "ECGFLOW_TRAIN_IMAGE",
    "ECGFLOW_TRAINING_RUNTIME",
    "MLFLOW_TRACKING_URI",
)


def run_pipeline(home: Path, source: str | None) -> tuple[float, Path]:
    """``ecgflow run`` in a subprocess; (its wall seconds, the run's pipeline_steps.json)."""
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env["ECGFLOW_HOME"] = str(home)
    command = [sys.executable, "-m", "ecgflow.cli", "run"]
    if source:
        command += ["--source", source]
    log = home / "run.log"
    started = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.run(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"ecgflow run failed (exit {proc.returncode}); log: {log}")
    (steps_file,) = (home / "pipeline-runs").glob("*/pipeline_steps.json")
    return wall, steps_file


def breakdown(account: dict, process_s: float) -> dict:
    """Per step and in all: start-up, CPU, waiting, publish; outside the steps."""
    rows = []
    for s in account["steps"]:
        waiting = max(s["stage_s"] - s["stage_cpu_s"], 0.0)
        rows.append(
            {
                "step": s["step"],
                "wall_s": s["wall_s"],
                "startup_s": s["startup_s"],
                "boot_s": s["boot_s"],
                "imports_s": s["imports_s"],
                "stage_s": s["stage_s"],
                "stage_cpu_s": s["stage_cpu_s"],
                "waiting_s": waiting,
                "publish_s": s["publish_s"],
                "read_mb": s["read_mb"],
                "write_mb": s["write_mb"],
            }
        )
    total = {
        key: sum(r[key] for r in rows)
        for key in ("wall_s", "startup_s", "boot_s", "imports_s", "stage_s", "waiting_s")
    } | {"publish_s": sum(r["publish_s"] for r in rows)}
    return {
        "process_s": process_s,
        "pipeline_s": account["total_s"],
        "between_steps_s": account["outside_steps_s"],
        "ecgflow_run_outside_pipeline_s": process_s - account["total_s"],
        "steps": rows,
        "steps_total": total,
    }


def report(result: dict) -> None:
    """Print the table and where the time goes."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"ecgflow run: {result['process_s']:.1f} s (seconds per step)")
    columns = ("step", "wall", "boot", "imports", "stage", "cpu", "waiting", "publish", "MB r/w")
    for column in columns:
        table.add_column(column, justify="left" if column == "step" else "right")
    for r in result["steps"]:
        table.add_row(
            r["step"],
            *(f"{r[k]:.1f}" for k in ("wall_s", "boot_s", "imports_s", "stage_s")),
            f"{r['stage_cpu_s']:.1f}",
            f"{r['waiting_s']:.1f}",
            f"{r['publish_s']:.1f}",
            f"{r['read_mb']:.0f}/{r['write_mb']:.0f}",
        )
    t = result["steps_total"]
    table.add_row(
        "all steps",
        *(f"{t[k]:.1f}" for k in ("wall_s", "boot_s", "imports_s", "stage_s")),
        "",
        f"{t['waiting_s']:.1f}",
        f"{t['publish_s']:.1f}",
        "",
        style="bold",
    )
    console = Console(width=110)
    console.print(table)
    process = result["process_s"]
    parts = [
        ("step start-up (interpreter, kfp, imports)", t["startup_s"]),
        (f"stage calls (off the CPU: {t['waiting_s']:.1f} s)", t["stage_s"]),
        ("publishing outputs", t["publish_s"]),
        ("kfp.local between steps", result["between_steps_s"]),
        ("ecgflow run itself (start, build, MLflow)", result["ecgflow_run_outside_pipeline_s"]),
    ]
    console.print("where the time goes:")
    for label, seconds in parts:
        console.print(f"  {label:<44}{seconds:7.1f} s  {100 * seconds / process:5.1f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--source", help="dataset to ingest (default: the config's)")
    parser.add_argument("--keep", action="store_true", help="keep the run's home folder")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="ecgflow-bench-pipeline-"))
    try:
        process_s, steps_file = run_pipeline(home, args.source)
        account = json.loads(steps_file.read_text())
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    result = breakdown(account, process_s) | {
        "command": "python benchmarks/pipeline.py"
        + (f" --source {args.source}" if args.source else ""),
        "source": args.source or "default (synthetic://?n=200&seed=0)",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "pipeline.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    report(result)
    print(f"wrote {out}" + (f"; home kept: {home}" if args.keep else ""))


if __name__ == "__main__":
    main()
