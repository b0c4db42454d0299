"""Distributed set-up from the torchrun environment, and starting torchrun itself.

``torchrun`` (``python -m torch.distributed.run``) sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``
and the rendezvous address for every process it starts. :func:`init_distributed` reads them,
picks the device (``cuda:LOCAL_RANK`` when CUDA is present, else the CPU) and the backend
(nccl on CUDA, gloo on CPU). Without those variables it is a single process, no process group.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from ecgflow.errors import EcgflowError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in the job."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 alone logs, evaluates and saves."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one process (a process group exists)."""
        return self.world_size > 1


def init_distributed(device: str | None = None) -> DistEnv:
    """Join the torchrun job (if any) and choose the device; ``device`` overrides the choice."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device is not None:
        chosen = torch.device(device)
    elif torch.cuda.is_available():
        chosen = torch.device("cuda", local % torch.cuda.device_count())
    else:
        chosen = torch.device("cpu")
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if chosen.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
        log.info("rank %d/%d joined the %s process group", rank, world, backend)
    return DistEnv(rank, world, local, chosen)


def shutdown(env: DistEnv) -> None:
    """Leave the process group (every rank, at the end)."""
    if env.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def broadcast(env: DistEnv, value: Any) -> Any:
    """Rank 0's ``value`` on every rank (any picklable object)."""
    if not env.distributed:
        return value
    box = [value if env.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(env: DistEnv) -> None:
    """Wait for every rank."""
    if env.distributed:
        dist.barrier()


def inside_torchrun() -> bool:
    """True in a process started by torchrun."""
    return "TORCHELASTIC_RUN_ID" in os.environ or "LOCAL_WORLD_SIZE" in os.environ


def run_torchrun(request: Path, nproc: int) -> None:
    """Run ``python -m ecgflow.training.worker REQUEST`` under ``torchrun --standalone``.

    Raises :class:`EcgflowError` when the job fails (its workers' output is on stderr).
    """
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(nproc),
        "-m",
        "ecgflow.training.worker",
        str(request),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", _threads(nproc))}
    log.info("starting: %s", " ".join(command))
    proc = subprocess.run(command, env=env, check=False)
    if proc.returncode != 0:
        raise EcgflowError(f"torchrun with {nproc} processes failed (exit {proc.returncode})")


def _threads(nproc: int) -> str:
    """CPU threads per process so that the processes together use the cores once."""
    return str(max(1, (os.cpu_count() or 1) // nproc))
