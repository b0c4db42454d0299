"""The training loop every trainer shares (train-clip, finetune-classifier, …).

A trainer describes its job as a :class:`Task` (model, data, loss, evaluation, how to save the
best model); :func:`fit` does the rest the same way for all of them:

- distributed data parallel over the torchrun processes (gloo on CPU, nccl on CUDA), each
  rank taking its share of a seeded per-epoch order (:class:`~ecgflow.training.data.EpochSampler`);
- AMP (bfloat16, or float16 with a gradient scaler) where CUDA is present;
- AdamW (no weight decay on biases and norms), gradient clipping, linear warm-up then cosine
  (optionally with restarts), stepped per batch;
- after each epoch rank 0 evaluates, keeps the best model on the selection metric and writes
  a checkpoint (model, optimiser, scheduler, scaler, epoch, early-stopping state, history; each
  rank its RNG states), so ``resume`` continues exactly where the last epoch ended. Frozen
  parameters are left out of it (they never change; a resumed run rebuilds them from the same
  inputs): a LoRA-tuned LM's checkpoint holds the adapters, not the LM;
- early stopping after ``patience`` epochs without improvement;
- optionally (``ema_decay``) an exponential moving average of the weights, updated after every
  step, is what gets evaluated, selected and saved (it is checkpointed too);
- MLflow: parameters, per-epoch metrics and the final artifacts, from rank 0 only.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from ecgflow import progress, tracking
from ecgflow.artifacts import METRICS
from ecgflow.errors import EcgflowError
from ecgflow.params import TrainConfig
from ecgflow.training.data import EpochSampler
from ecgflow.training.distributed import DistEnv, barrier, broadcast
from ecgflow.training.schedule import warmup_cosine

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
LAST = "last.pt"


class Task(Protocol):
    """What a trainer provides to :func:`fit`.

    Optionally ``optimizer_groups(config) -> list[dict]``: AdamW parameter groups, each with its
    own ``lr`` and ``start_epoch`` (held at 0 until then), for a staged recipe.
    """

    name: str
    selection_metric: str  # higher is better
    model: nn.Module
    train_dataset: Dataset
    sample_weights: np.ndarray | None
    epoch_samples: int | None  # rows drawn per epoch by ``sample_weights`` (None: all)

    def collate(self, batch: list[Any]) -> Any:
        """Turn samples into a batch."""

    def loss(self, model: nn.Module, batch: Any, device: torch.device) -> torch.Tensor:
        """The training loss of a batch (``model`` may be DDP-wrapped)."""

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        """Validation metrics (rank 0, eval mode, no grad); must hold ``selection_metric``."""

    def save_best(self, model: nn.Module, folder: Path) -> None:
        """Save ``model`` as the best so far under ``folder``."""

    def params(self) -> dict[str, Any]:
        """Parameters to log."""


@dataclass
class FitResult:
    """How training ended."""

    best_epoch: int
    best: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False
    run_id: str | None = None
    replica_digests: list[str] = field(default_factory=list)

    def to_json(self, selection_metric: str, world_size: int) -> dict[str, Any]:
        """The ``metrics.json`` contents."""
        return {
            "selection_metric": selection_metric,
            "best_epoch": self.best_epoch,
            "best": self.best,
            "history": self.history,
            "stopped_early": self.stopped_early,
            "mlflow_run_id": self.run_id,
            "world_size": world_size,
            "replica_digests": self.replica_digests,
        }


def fit(task: Task, config: TrainConfig, out_dir: Path, env: DistEnv, resume: bool) -> FitResult:
    """Train ``task.model`` (see the module docstring); rank 0 writes ``out_dir``."""
    out_dir = Path(out_dir)
    model = task.model.to(env.device)
    wrapped: nn.Module = model
    if env.distributed:
        ids = [env.device.index] if env.device.type == "cuda" else None
        wrapped = DistributedDataParallel(model, device_ids=ids)
    sampler = EpochSampler(
        len(task.train_dataset),
        env.rank,
        env.world_size,
        seed=config.seed,
        weights=task.sample_weights,
        draws=task.epoch_samples,
    )
    if len(sampler) < 1:
        raise EcgflowError(f"{task.name}: the training split is empty")
    loader = DataLoader(
        task.train_dataset,
        batch_size=min(config.batch_size, len(sampler)),
        sampler=sampler,
        collate_fn=task.collate,
        drop_last=True,  # a contrastive batch of one teaches nothing
    )
    steps = len(loader)
    groups = _optimizer_groups(task, model, config)
    starts = [round(float(g.pop("start_epoch", 0.0)) * steps) for g in groups]
    optimizer = torch.optim.AdamW(groups, lr=config.lr)
    scheduler = warmup_cosine(
        optimizer,
        total_steps=config.epochs * steps,
        warmup_steps=round(config.warmup_epochs * steps),
        restarts=config.restarts,
        min_ratio=config.min_lr_ratio,
        starts=starts,
    )
    amp_dtype = _amp_dtype(config, env)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    ema = None if config.ema_decay is None else WeightAverage(model, config.ema_decay)
    state = _State()
    if resume:
        state = _load_checkpoint(out_dir, env, model, optimizer, scheduler, scaler, ema)
    scored = model if ema is None else ema.model
    if env.is_main:
        state.run_id = tracking.start_run(config.experiment, task.name, state.run_id)
        if not resume or state.epoch < 0:
            if getattr(task, "data_dir", None) is not None:  # the preprocess output trained on
                tracking.log_dataset(task.data_dir, "training")
            tracking.log_params({"task": task.name, "train": config.model_dump(), **task.params()})
            tracking.log_params({"world_size": env.world_size, "steps_per_epoch": steps})
    try:
        for epoch in range(state.epoch + 1, config.epochs):
            sampler.set_epoch(epoch)
            started = time.perf_counter()
            label = f"{task.name} epoch {epoch + 1}/{config.epochs}"
            with (
                progress.task(label, len(loader), note=_note(state, task.selection_metric))
                if env.is_main
                else nullcontext()
            ) as bar:
                train_loss = train_epoch(
                    task, wrapped, loader, optimizer, scheduler, scaler, config, env, amp_dtype,
                    ema, bar,
                )  # fmt: skip
            train_seconds = time.perf_counter() - started
            metrics: dict[str, float] | None = None
            if env.is_main:
                metrics = _evaluate(task, scored, env, amp_dtype)
            metrics = broadcast(env, metrics)
            assert metrics is not None
            score = metrics[task.selection_metric]
            improved = math.isfinite(score) and score > state.best_score
            if improved:
                state.best_score, state.best_epoch, state.best = score, epoch, dict(metrics)
                state.bad_epochs = 0
                if env.is_main:
                    task.save_best(scored, out_dir)
            else:
                state.bad_epochs += 1
            row = {
                "epoch": epoch,
                "train_loss": train_loss,
                "lr": scheduler.get_last_lr()[0],
                "seconds": time.perf_counter() - started,
                "train_seconds": train_seconds,
                "samples_per_s": steps * loader.batch_size * env.world_size / train_seconds,
                **metrics,
            }
            state.history.append(row)
            state.epoch = epoch
            if env.is_main:
                tracking.log_metrics(row, step=epoch)
                log.info("%s epoch %d: %s", task.name, epoch, _brief(row, task.selection_metric))
                progress.headline(f"{label} · {task.selection_metric} {score:.3f}")
            _save_checkpoint(out_dir, env, model, optimizer, scheduler, scaler, state, ema)
            if config.patience and state.bad_epochs >= config.patience:
                state.stopped_early = True
                log.info("%s: no gain for %d epochs, stopping", task.name, config.patience)
                break
        result = FitResult(
            state.best_epoch,
            state.best,
            state.history,
            state.stopped_early,
            state.run_id,
            _replica_digests(model, env),
        )
        if env.is_main:
            text = json.dumps(result.to_json(task.selection_metric, env.world_size), indent=2)
            (out_dir / METRICS).write_text(text + "\n", encoding="utf-8")
            if state.best_epoch >= 0:
                tracking.log_metrics({f"best_{k}": v for k, v in state.best.items()}, step=0)
    finally:
        if env.is_main:
            tracking.end_run()
    barrier(env)
    return result


# --- one epoch -------------------------------------------------------------------------------


def train_epoch(
    task: Task,
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    config: TrainConfig,
    env: DistEnv,
    amp_dtype: torch.dtype | None,
    ema: WeightAverage | None = None,
    bar: progress.Task | None = None,
) -> float:
    """One pass over this rank's share of ``loader``; returns the mean loss over all ranks.

    Per batch: loss under autocast, a finite-loss check, (scaled) backward, gradient clipping,
    optimiser and scheduler steps. ``benchmarks/train.py`` times it against a bare loop.
    """
    model.train()
    total = torch.zeros(2, dtype=torch.float64, device=env.device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    for step, batch in enumerate(loader):
        with _autocast(env, amp_dtype):
            loss = task.loss(model, batch, env.device)
        if not torch.isfinite(loss):
            raise EcgflowError(f"{task.name}: the loss became {loss.item()} at step {step}")
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(trainable, config.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        if ema is not None:
            ema.update()
        total += torch.tensor([loss.item(), 1.0], dtype=torch.float64, device=env.device)
        if env.is_main and (step + 1) % config.log_every == 0:
            log.info("%s step %d/%d loss %.4f", task.name, step + 1, len(loader), loss.item())
        if bar is not None:
            bar.advance()
    if env.distributed:
        dist.all_reduce(total)
    return float(total[0] / total[1]) if total[1] else float("nan")


class WeightAverage:
    """An exponential moving average of a model's parameters (buffers copied as they are)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.source, self.decay = model, decay
        self.model = copy.deepcopy(model)
        for param in self.model.parameters():
            param.requires_grad_(False)

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the source's current weights by ``1 - decay``."""
        pairs = zip(self.model.parameters(), self.source.parameters(), strict=True)
        for average, param in pairs:
            average.lerp_(param.detach(), 1.0 - self.decay)
        for average, buffer in zip(self.model.buffers(), self.source.buffers(), strict=True):
            average.copy_(buffer)


def _evaluate(
    task: Task, model: nn.Module, env: DistEnv, amp_dtype: torch.dtype | None
) -> dict[str, float]:
    model.eval()
    try:
        with torch.no_grad(), _autocast(env, amp_dtype):
            metrics = task.evaluate(model, env.device)
    finally:
        model.train()
    if task.selection_metric not in metrics:
        raise EcgflowError(f"{task.name}: evaluation lacks {task.selection_metric}")
    return metrics


def _replica_digests(model: nn.Module, env: DistEnv) -> list[str]:
    """SHA-256 of every rank's final parameters (DDP keeps them identical; this checks it).

    Buffers are left out: BatchNorm running statistics are each rank's own until DDP copies
    rank 0's at the next forward pass.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(model.named_parameters()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    mine = digest.hexdigest()
    if not env.distributed:
        return [mine]
    gathered: list[Any] = [None] * env.world_size
    dist.all_gather_object(gathered, mine)
    return [str(d) for d in gathered]


def _autocast(env: DistEnv, dtype: torch.dtype | None) -> Any:
    if dtype is None:
        return torch.autocast(device_type=env.device.type, enabled=False)
    return torch.autocast(device_type="cuda", dtype=dtype)


def _amp_dtype(config: TrainConfig, env: DistEnv) -> torch.dtype | None:
    """bfloat16 where the GPU has it, float16 (with loss scaling) otherwise; None on CPU."""
    if not config.amp or env.device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _optimizer_groups(task: Task, model: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """The task's ``optimizer_groups`` (each with ``lr``, ``start_epoch``), else the default.

    The default: :func:`_param_groups` at ``config.lr`` from the first step.
    """
    own = getattr(task, "optimizer_groups", None)
    if own is None:
        return _param_groups(model, config.weight_decay)
    groups = [g for g in own(config) if g["params"]]
    if not groups:
        raise EcgflowError(f"{task.name}: no trainable parameter")
    return groups


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on weight matrices and kernels only (not on biases, norms, temperatures)."""
    decay, plain = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else plain).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": plain, "weight_decay": 0.0},
    ]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (call before building the model: same init on every rank)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _note(state: _State, metric: str) -> str:
    """The best score so far, for the progress display (empty before the first epoch)."""
    if state.best_epoch < 0:
        return ""
    return f"best {metric} {state.best_score:.3f} (epoch {state.best_epoch + 1})"


def _brief(row: dict[str, float], metric: str) -> str:
    return f"loss {row['train_loss']:.4f} {metric} {row[metric]:.4f} ({row['seconds']:.1f} s)"


# --- checkpoints -------------------------------------------------------------------------------


@dataclass
class _State:
    epoch: int = -1  # last finished epoch
    best_score: float = -math.inf
    best_epoch: int = -1
    best: dict[str, float] = field(default_factory=dict)
    bad_epochs: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False
    run_id: str | None = None


def _rng_path(out_dir: Path, rank: int, epoch: int) -> Path:
    return out_dir / CHECKPOINTS / f"rng-rank{rank}-epoch{epoch}.pt"


def _save_checkpoint(
    out_dir: Path,
    env: DistEnv,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler,
    state: _State,
    ema: WeightAverage | None = None,
) -> None:
    """Every rank saves its RNG states; rank 0 the rest. Files are replaced atomically."""
    folder = out_dir / CHECKPOINTS
    folder.mkdir(parents=True, exist_ok=True)
    rng = {
        "python": random.getstate(),
        "numpy": _numpy_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    # per epoch, so a kill between this file and last.pt never pairs states of two epochs
    _atomic_save(rng, _rng_path(out_dir, env.rank, state.epoch))
    _rng_path(out_dir, env.rank, state.epoch - 2).unlink(missing_ok=True)
    if env.is_main:
        payload = {
            "model": _checkpoint_state(model),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "state": state.__dict__,
            "world_size": env.world_size,
        }
        if ema is not None:
            payload["ema"] = ema.model.state_dict()
        _atomic_save(payload, folder / LAST)
    barrier(env)


def _frozen(model: nn.Module) -> set[str]:
    return {name for name, param in model.named_parameters() if not param.requires_grad}


def _checkpoint_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state without its frozen parameters."""
    frozen = _frozen(model)
    return {k: v for k, v in model.state_dict().items() if k not in frozen}


def _load_checkpoint_state(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Load :func:`_checkpoint_state`'s output; only frozen parameters may be missing."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    stray = sorted(set(missing) - _frozen(model))
    if unexpected or stray:
        raise EcgflowError(
            f"{path}: does not match the model (missing {stray[:3]}, unexpected "
            f"{sorted(unexpected)[:3]}); resume with the same parameters"
        )


def _numpy_state() -> dict[str, Any]:
    """NumPy's global RNG state as tensors and plain numbers (loadable with weights_only)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "name": name,
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "gauss": float(gauss),
    }


def _set_numpy_state(state: dict[str, Any]) -> None:
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state((state["name"], keys, state["pos"], state["has_gauss"], state["gauss"]))


def _safe_load(path: Path, device: Any) -> Any:
    """``torch.load`` with ``weights_only=True``: tensors and plain data only, never code.

    A corrupt or foreign file is refused with its path and checksum.
    """
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, ...
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        raise EcgflowError(
            f"{path} (sha256 {digest}…): not a readable ecgflow checkpoint "
            f"({type(exc).__name__}); delete it to train from scratch"
        ) from None


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _load_checkpoint(
    out_dir: Path,
    env: DistEnv,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler,
    ema: WeightAverage | None = None,
) -> _State:
    """Restore everything from ``out_dir``'s checkpoint; a fresh state when there is none."""
    path = out_dir / CHECKPOINTS / LAST
    if not path.is_file():
        log.info("no checkpoint at %s: starting from scratch", path)
        return _State()
    payload = _safe_load(path, env.device)
    if payload["world_size"] != env.world_size:
        raise EcgflowError(
            f"{path}: written by {payload['world_size']} processes; resume with as many "
            f"(now {env.world_size}) to continue exactly"
        )
    _load_checkpoint_state(model, payload["model"], path)
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    scaler.load_state_dict(payload["scaler"])
    if ema is not None:
        if "ema" not in payload:
            raise EcgflowError(f"{path}: has no weight average; resume with the same ema_decay")
        ema.model.load_state_dict(payload["ema"])
    state = _State(**payload["state"])
    rng_path = _rng_path(out_dir, env.rank, state.epoch)
    if not rng_path.is_file():
        raise EcgflowError(f"{rng_path}: missing (RNG state of rank {env.rank})")
    rng = _safe_load(rng_path, "cpu")
    random.setstate(rng["python"])
    _set_numpy_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    log.info("resuming after epoch %d from %s", state.epoch, path)
    return state
