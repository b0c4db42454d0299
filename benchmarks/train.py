"""Training speed: ecgflow's train-clip step vs a bare PyTorch loop, and 1 vs 2 processes.

(1) Framework overhead. The same CLIP model (the embedded default: ResNet1d width 32, depth 3,
    MiniLM with 4 of 6 layers frozen) and the same batches (batch 32, 10 s at 100 Hz, 12 leads,
    report texts tokenised in the collate function), one process:
      bare:    DataLoader → forward → clip_loss → backward → AdamW step
      ecgflow: ``train_epoch`` of the shared core: seeded EpochSampler, autocast context,
               finite-loss check, gradient clipping, GradScaler, warm-up/cosine scheduler step.
    Both see the same batches in the same order; each is timed for 6 epochs, interleaved (who
    goes first alternates), and the median epoch gives samples/s. Goal: ecgflow within 10 % of bare.
(2) Data parallel on CPU: ``train_clip`` with ``nproc`` 1 and 2 (torchrun, gloo), samples/s of
    the second epoch's training pass (from ``metrics.json``).

Uses the shared PTB-XL records (train split of 500) or synthetic records without them.
Usage: python benchmarks/train.py [--data ../shared/data/ptbxl]
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ecgflow.config import PipelineConfig
from ecgflow.models import clip_loss
from ecgflow.stages.ingest import IngestParams, ingest
from ecgflow.stages.label import LabelParams, label
from ecgflow.stages.preprocess import PreprocessParams, preprocess
from ecgflow.stages.split import SplitParams, split
from ecgflow.stages.train_clip import ClipTask
from ecgflow.training.data import EpochSampler
from ecgflow.training.distributed import DistEnv
from ecgflow.training.loop import seed_everything, train_epoch
from ecgflow.training.schedule import warmup_cosine

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 6


def prepare(source: str, label_set: str, work: Path) -> tuple[Path, Path]:
    ingest(IngestParams(source=source, workers=0), work / "records")
    label(LabelParams(label_set=label_set), work / "records", work / "labels")
    split(SplitParams(), work / "records", work / "labels", work / "split")
    preprocess(PreprocessParams(), work / "records", work / "split", work / "data")
    return work / "data", work / "records"


def bare_epoch(model: torch.nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer):
    model.train()
    for batch in loader:
        ecg, text, scale = model(batch["x"], batch["input_ids"], batch["attention_mask"])
        loss = clip_loss(ecg, text, scale)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def overhead(task: ClipTask, batch_size: int) -> dict[str, float]:
    """Median samples/s of a bare epoch and of ecgflow's train_epoch, interleaved."""
    env = DistEnv(0, 1, 0, torch.device("cpu"))
    config = PipelineConfig().train_clip.train.model_copy(update={"epochs": EPOCHS})
    initial = copy.deepcopy(task.model.state_dict())
    n = len(task.train_dataset)

    bare_model = task.model
    bare_opt = torch.optim.AdamW([p for p in bare_model.parameters() if p.requires_grad], 1e-3)
    ours_model = copy.deepcopy(task.model)
    ours_model.load_state_dict(initial)
    sampler = EpochSampler(n, seed=0)
    ours_loader = DataLoader(
        task.train_dataset,
        batch_size=batch_size,
        sampler=sampler,
        collate_fn=task.collate,
        drop_last=True,
    )
    params = [p for p in ours_model.parameters() if p.requires_grad]
    ours_opt = torch.optim.AdamW(params, 1e-3)
    schedule = warmup_cosine(ours_opt, EPOCHS * len(ours_loader), len(ours_loader) // 2)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    samples = len(ours_loader) * batch_size
    bare_times, ours_times = [], []
    for epoch in range(EPOCHS):
        sampler.set_epoch(epoch)
        # the bare loop gets the very same batches (padding length depends on the batch)
        bare_loader = DataLoader(
            task.train_dataset,
            batch_size=batch_size,
            sampler=list(sampler),
            collate_fn=task.collate,
            drop_last=True,
        )
        runs = [
            (bare_times, lambda loader=bare_loader: bare_epoch(bare_model, loader, bare_opt)),
            (
                ours_times,
                lambda: train_epoch(
                    task, ours_model, ours_loader, ours_opt, schedule, scaler, config, env, None
                ),
            ),
        ]
        for times, run in runs if epoch % 2 == 0 else runs[::-1]:  # alternate who goes first
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
    bare = samples / statistics.median(bare_times)
    ours = samples / statistics.median(ours_times)
    return {
        "samples_per_epoch": samples,
        "bare_samples_per_s": round(bare, 2),
        "ecgflow_samples_per_s": round(ours, 2),
        "overhead_pct": round(100 * (bare / ours - 1), 1),
        "overhead_pct_fastest_epochs": round(100 * (min(ours_times) / min(bare_times) - 1), 1),
    }


def data_parallel(data: Path, records: Path, work: Path) -> dict[str, float]:
    """Samples/s of the second epoch's training pass with 1 and 2 processes.

    Each run is a fresh ``ecgflow train-clip`` process (the embedded default model), so
    neither inherits the other's threads or memory.
    """
    out: dict[str, float] = {}
    for nproc in (1, 2):
        target = work / f"clip-{nproc}"
        command = [
            sys.executable, "-m", "ecgflow.cli", "train-clip", "--data", str(data),
            "--records", str(records), "--out", str(target), "--nproc", str(nproc),
            "--width", "32", "--depth", "3", "--embed-dim", "128", "--epochs", "2",
            "--batch-size", "32",
        ]  # fmt: skip
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        metrics = json.loads((target / "metrics.json").read_text())
        out[f"nproc_{nproc}_samples_per_s"] = round(metrics["history"][1]["samples_per_s"], 2)
    out["speedup_2_vs_1"] = round(out["nproc_2_samples_per_s"] / out["nproc_1_samples_per_s"], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ptbxl")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.data.is_dir():
        source, label_set = f"ptbxl:{args.data}", "ptbxl-superdiagnostic"
    else:
        source, label_set = "synthetic://?n=400&seed=0&fs=100", "synthetic"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{work / 'mlflow.db'}")
        data, records = prepare(source, label_set, work)
        seed_everything(0)
        task = ClipTask(PipelineConfig().train_clip, data, records)
        results = {
            "source": source.split(":")[0],
            "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            **overhead(task, batch_size=32),
            **data_parallel(data, records, work),
        }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
