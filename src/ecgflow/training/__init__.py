"""The training core shared by every trainer: DDP launch, loop, checkpoints, data."""
