"""The train-clip stage: contrastive ECG–report pre-training (CLIP) with DDP via torchrun.

Inputs: a preprocess output (``train`` and ``val`` splits) and the ingest folder (report texts,
see :func:`ecgflow.text.record_texts`). With ``nproc`` > 1 the stage starts
``torchrun --standalone --nproc_per_node N`` itself; with 1 it trains in this process.
Selection and early stopping use the validation mean recall of ECG→text and text→ECG top-1/5.

Output (``out_dir``)::

    model/model.safetensors, model/config.json   the best CLIP model (ECG + text encoders)
    checkpoints/last.pt (+ per-rank RNG states)  resume point after the last finished epoch
    metrics.json                                  best epoch, its metrics, per-epoch history
    manifest.json                                 inputs, params, sha256 of every file
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ecgflow.artifacts import MODEL, PREPROCESS_JSON, RECORDS
from ecgflow.errors import EcgflowError
from ecgflow.evaluation.retrieval import retrieval_metrics
from ecgflow.manifest import sha256_file, write_manifest, writes_output
from ecgflow.models import ClipModel, clip_loss, save_model
from ecgflow.params import TrainClipParams
from ecgflow.text import record_texts
from ecgflow.training.data import ShardRows, SignalTextDataset, preprocess_info
from ecgflow.training.distributed import init_distributed, shutdown
from ecgflow.training.loop import fit, seed_everything
from ecgflow.training.worker import Launch, launch_elsewhere

TASK = "train-clip"
#: what each torchrun process calls (see ecgflow.training.worker)
ENTRY = f"{__name__}:run_request"


@writes_output("train-clip")
def train_clip(
    params: TrainClipParams,
    data_dir: Path,
    records_dir: Path,
    out_dir: Path,
    resume: bool = False,
    launch: Launch | None = None,
) -> dict[str, Any]:
    """Train CLIP on ``data_dir`` with texts from ``records_dir``; returns ``metrics.json``.

    ``launch`` runs the job elsewhere (a TrainJob); by default it trains here, under
    torchrun when ``params.nproc`` > 1.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"data_dir": str(data_dir), "records_dir": str(records_dir), "out_dir": str(out_dir)}
    done = launch_elsewhere(TASK, ENTRY, params, paths, out_dir, resume, launch)
    if done is not None:
        return done
    return _train(params, Path(data_dir), Path(records_dir), out_dir, resume)


def run_request(request: dict[str, Any]) -> None:
    """Entry point of each torchrun process (see :mod:`ecgflow.training.worker`)."""
    paths = request["paths"]
    _train(
        TrainClipParams.model_validate(request["params"]),
        Path(paths["data_dir"]),
        Path(paths["records_dir"]),
        Path(paths["out_dir"]),
        bool(request["resume"]),
    )


def _train(
    params: TrainClipParams, data_dir: Path, records_dir: Path, out_dir: Path, resume: bool
) -> dict[str, Any]:
    env = init_distributed(params.train.device)
    try:
        seed_everything(params.train.seed)
        task = ClipTask(params, data_dir, records_dir)
        result = fit(task, params.train, out_dir, env, resume)
        summary = result.to_json(task.selection_metric, env.world_size)
        if env.is_main:
            write_manifest(
                out_dir,
                stage=TASK,
                inputs={
                    PREPROCESS_JSON: sha256_file(data_dir / PREPROCESS_JSON),
                    RECORDS: sha256_file(records_dir / RECORDS),
                },
                params=params.model_dump(mode="json"),
                counts={"train_rows": len(task.train_dataset), "val_rows": len(task.val)},
            )
    finally:
        shutdown(env)
    return summary


class ClipTask:
    """train-clip as a :class:`~ecgflow.training.loop.Task`."""

    name = TASK
    selection_metric = "mean_recall"
    sample_weights = None
    epoch_samples = None

    def __init__(self, params: TrainClipParams, data_dir: Path, records_dir: Path) -> None:
        info = preprocess_info(data_dir)
        self.settings, self.data_dir = params, data_dir
        config = params.model.model_copy(deep=True)
        config.encoder.in_channels = int(info["n_channels"])
        self.config = config
        texts = record_texts(records_dir, include_report=params.include_report)
        self.train_dataset = SignalTextDataset(ShardRows(data_dir, "train"), texts)
        self.val = SignalTextDataset(ShardRows(data_dir, "val"), texts)
        if len(self.val) < 2:
            raise EcgflowError(f"{data_dir}: the val split has {len(self.val)} rows with text")
        self.model: ClipModel = ClipModel(config)

    def collate(self, batch: list[tuple[torch.Tensor, str]]) -> dict[str, torch.Tensor]:
        """Stack signals, tokenise texts."""
        tokens = self.model.text_encoder.tokenize([text for _, text in batch])
        return {"x": torch.stack([x for x, _ in batch]), **tokens}

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor], device: torch.device):
        """Symmetric InfoNCE over the batch."""
        ecg, text, scale = model(
            batch["x"].to(device),
            batch["input_ids"].to(device),
            batch["attention_mask"].to(device),
        )
        return clip_loss(ecg, text, scale)

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        """Retrieval on the val split against its distinct texts."""
        assert isinstance(model, ClipModel)
        size = self.settings.eval_batch_size
        ecg = []
        for start in range(0, len(self.val), size):
            stop = min(start + size, len(self.val))
            x = torch.stack([self.val[i][0] for i in range(start, stop)]).to(device)
            ecg.append(model.encode_ecg(x).float().cpu())
        distinct = list(dict.fromkeys(self.val.texts))
        position = {t: k for k, t in enumerate(distinct)}
        text = []
        for start in range(0, len(distinct), size):
            tokens = model.text_encoder.tokenize(distinct[start : start + size])
            ids, mask = tokens["input_ids"].to(device), tokens["attention_mask"].to(device)
            text.append(model.encode_text(ids, mask).float().cpu())
        own = np.array([position[t] for t in self.val.texts])
        metrics = retrieval_metrics(torch.cat(ecg).numpy(), torch.cat(text).numpy(), own)
        metrics["temperature"] = float(1.0 / model.scale().item())
        return metrics

    def save_best(self, model: nn.Module, folder: Path) -> None:
        """The best model so far → ``folder/model``."""
        save_model(folder / MODEL, model, self.config, "clip")

    def params(self) -> dict[str, Any]:
        """What MLflow records."""
        return {
            "model": self.config.model_dump(mode="json"),
            "include_report": self.settings.include_report,
            "nproc": self.settings.nproc,
            "train_rows": len(self.train_dataset),
            "val_rows": len(self.val),
        }
