"""Learning-rate schedule: linear warm-up, then cosine decay (optionally with restarts).

Parameter groups may start late (:func:`warmup_cosine`'s ``starts``): a group is held at zero
until its start step, then gets its own warm-up and cosine over the steps left — the second
stage of a two-stage recipe (GEM: towers and projector first, then LoRA too).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.optim.lr_scheduler import LambdaLR


def warmup_cosine(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_steps: int,
    restarts: int = 0,
    min_ratio: float = 0.0,
    starts: list[int] | None = None,
) -> LambdaLR:
    """LR factor rising linearly to 1 over ``warmup_steps``, then cosine down to ``min_ratio``.

    With ``restarts`` = k the steps after warm-up are cut into k + 1 equal cosine cycles, each
    starting again at the full rate (SGDR without cycle growth). ``starts`` (one step per
    parameter group) holds a group at 0 until its step, then runs the same shape over the
    steps left.
    """
    starts = starts or [0] * len(optimizer.param_groups)
    if len(starts) != len(optimizer.param_groups):
        raise ValueError(f"{len(starts)} starts for {len(optimizer.param_groups)} groups")
    return LambdaLR(
        optimizer,
        [_factor(total_steps, s, warmup_steps, restarts, min_ratio) for s in starts],
    )


def _factor(
    total_steps: int, start: int, warmup_steps: int, restarts: int, min_ratio: float
) -> Callable[[int], float]:
    """The LR factor of one group starting at ``start`` (0 before it)."""
    start = max(0, min(start, total_steps - 1))
    steps = total_steps - start
    warmup_steps = max(0, min(warmup_steps, steps - 1))
    decay_steps = max(1, steps - warmup_steps)
    cycle = max(1, math.ceil(decay_steps / (restarts + 1)))

    def factor(step: int) -> float:
        step -= start
        if step < 0:
            return 0.0
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        position = ((step - warmup_steps) % cycle) / cycle
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * position))

    return factor
