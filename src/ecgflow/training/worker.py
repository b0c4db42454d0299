"""What each torchrun process runs: ``python -m ecgflow.training.worker REQUEST.json``.

The request names the trainer (``task``), its ``entry`` (``module:function``, handed in by the
stage that wrote it: the training core knows no stage), its parameters and paths; every process
calls that entry, the very function a single-process run calls in-process.
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


def write_request(
    out_dir: Path,
    task: str,
    entry: str,
    params: dict[str, Any],
    paths: dict[str, str | None],
    resume: bool,
) -> Path:
    """Write the request a torchrun job will read; returns its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / REQUEST
    request = {"task": task, "entry": entry, "params": params, "paths": paths, "resume": resume}
    path.write_text(json.dumps(request, indent=2) + "\n", encoding="utf-8")
    return path


def launch_elsewhere(
    task: str,
    entry: str,
    params: Any,
    paths: dict[str, Any],
    out_dir: Path,
    resume: bool,
    launch: Launch | None = None,
) -> dict[str, Any] | None:
    """Train under torchrun or ``launch``; the job's ``metrics.json``, or None to train here.

    ``entry`` (``module:function``) is what each process calls with the request. Without
    ``launch``, one process (``params.nproc`` 1, or already inside torchrun) trains in this
    process (None); more start ``torchrun --standalone`` on this machine.
    """
    from ecgflow.artifacts import METRICS
    from ecgflow.training.distributed import inside_torchrun, run_torchrun

    if launch is None and (params.nproc <= 1 or inside_torchrun()):
        return None
    request = write_request(out_dir, task, entry, params.model_dump(mode="json"), paths, resume)
    (launch or run_torchrun)(request, params.nproc)
    return json.loads((out_dir / METRICS).read_text(encoding="utf-8"))


def main(argv: list[str]) -> None:
    """Run the request named by ``argv[0]``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    request = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    module, _, function = str(request.get("entry", "")).partition(":")
    try:
        run = getattr(import_module(module), function)
    except (ImportError, AttributeError, ValueError):
        raise SystemExit(
            f"{argv[0]}: task {request.get('task')!r} names no entry module:function "
            f"({request.get('entry')!r})"
        ) from None
    run(request)


if __name__ == "__main__":
    main(sys.argv[1:])
