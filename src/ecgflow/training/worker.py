"""What each torchrun process runs: ``python -m ecgflow.training.worker REQUEST.json``.

The request names the trainer (``task``), its parameters and paths; every process runs the
very function a single-process run calls in-process.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import Any

#: Runs a torchrun request with ``nproc`` processes per node somewhere (here, a TrainJob...).
Launch = Callable[[Path, int], None]

REQUEST = "torchrun-request.json"
# task name → the stage module whose ``run_request(request)`` each process calls
TRAINERS = {
    "train-clip": "ecgflow.stages.train_clip",
    "finetune-classifier": "ecgflow.stages.finetune_classifier",
    "finetune-gem": "ecgflow.stages.finetune_gem",
}


def write_request(
    out_dir: Path, task: str, params: dict[str, Any], paths: dict[str, str | None], resume: bool
) -> Path:
    """Write the request a torchrun job will read; returns its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / REQUEST
    request = {"task": task, "params": params, "paths": paths, "resume": resume}
    path.write_text(json.dumps(request, indent=2) + "\n", encoding="utf-8")
    return path


def launch_elsewhere(
    task: str,
    params: Any,
    paths: dict[str, Any],
    out_dir: Path,
    resume: bool,
    launch: Launch | None = None,
) -> dict[str, Any] | None:
    """Train under torchrun or ``launch``; the job's ``metrics.json``, or None to train here.

    Without ``launch``, one process (``params.nproc`` 1, or already inside torchrun) trains
    in this process (None); more start ``torchrun --standalone`` on this machine.
    """
    from ecgflow.training.distributed import inside_torchrun, run_torchrun
    from ecgflow.training.loop import METRICS

    if launch is None and (params.nproc <= 1 or inside_torchrun()):
        return None
    request = write_request(out_dir, task, params.model_dump(mode="json"), paths, resume)
    (launch or run_torchrun)(request, params.nproc)
    return json.loads((out_dir / METRICS).read_text(encoding="utf-8"))


def main(argv: list[str]) -> None:
    """Run the request named by ``argv[0]``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    request = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    task = request["task"]
    if task not in TRAINERS:
        raise SystemExit(f"unknown task {task!r} in {argv[0]}; known: {', '.join(TRAINERS)}")
    import_module(TRAINERS[task]).run_request(request)


if __name__ == "__main__":
    main(sys.argv[1:])
