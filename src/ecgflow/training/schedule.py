"""Learning-rate schedule: linear warm-up, then cosine decay (optionally with restarts)."""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR


def warmup_cosine(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_steps: int,
    restarts: int = 0,
    min_ratio: float = 0.0,
) -> LambdaLR:
    """LR factor rising linearly to 1 over ``warmup_steps``, then cosine down to ``min_ratio``.

    With ``restarts`` = k the steps after warm-up are cut into k + 1 equal cosine cycles, each
    starting again at the full rate (SGDR without cycle growth).
    """
    warmup_steps = max(0, min(warmup_steps, total_steps - 1))
    decay_steps = max(1, total_steps - warmup_steps)
    cycle = max(1, math.ceil(decay_steps / (restarts + 1)))

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        position = ((step - warmup_steps) % cycle) / cycle
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * position))

    return LambdaLR(optimizer, factor)
