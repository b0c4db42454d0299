"""The finetune-classifier stage: multi-label ECG classifier on the shared training core.

Starts from the ECG encoder of a train-clip output (``encoder_dir``), or from scratch with
``pretrained=False``. Loss: BCE with the label set's ``pos_weight`` (``label_def.json``);
optionally rows are drawn in inverse proportion to their rarest label; optionally training
uses random ``crop_s`` crops (the model then scores longer inputs as sliding windows, see
:class:`~ecgflow.models.classifier.Classifier`) and amplitude/noise augmentation. Selection
and early stopping use the validation macro AUROC.

Output (``out_dir``)::

    model/model.safetensors, model/config.json   the best classifier (encoder + head)
    model/thresholds.json                         per-label F1-maximising thresholds (val split)
    model/preprocess.json, model/label_def.json   what serving needs to prepare input and name it
    checkpoints/, metrics.json, manifest.json     as train-clip
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ecgflow.artifacts import LABEL_DEF, LABELS, MODEL, PREPROCESS_JSON, THRESHOLDS, WEIGHTS
from ecgflow.errors import EcgflowError
from ecgflow.evaluation.classification import f1_thresholds, macro_auroc, per_label_auroc
from ecgflow.manifest import sha256_file, write_manifest, writes_output
from ecgflow.models import (
    Classifier,
    ClassifierConfig,
    load_ecg_encoder_state,
    save_model,
)
from ecgflow.params import FinetuneParams
from ecgflow.training.data import (
    ShardRows,
    SignalLabelDataset,
    inverse_prevalence_weights,
    preprocess_info,
)
from ecgflow.training.distributed import init_distributed, shutdown
from ecgflow.training.loop import fit, seed_everything
from ecgflow.training.worker import Launch, launch_elsewhere

TASK = "finetune-classifier"
#: what each torchrun process calls (see ecgflow.training.worker)
ENTRY = f"{__name__}:run_request"
MAX_POS_WEIGHT = 1000.0


@writes_output("finetune-classifier")
def finetune_classifier(
    params: FinetuneParams,
    encoder_dir: Path | None,
    data_dir: Path,
    labels_dir: Path,
    out_dir: Path,
    resume: bool = False,
    launch: Launch | None = None,
) -> dict[str, Any]:
    """Fine-tune a classifier; returns ``metrics.json`` (see the module docstring).

    ``launch`` runs the job elsewhere (a TrainJob); by default it trains here, under
    torchrun when ``params.nproc`` > 1.
    """
    if params.pretrained and encoder_dir is None:
        raise EcgflowError(
            "finetune.pretrained / --pretrained is on, so the train-clip folder is needed "
            "(--encoder DIR); or set finetune.pretrained: false / --no-pretrained"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "encoder_dir": None if encoder_dir is None else str(encoder_dir),
        "data_dir": str(data_dir),
        "labels_dir": str(labels_dir),
        "out_dir": str(out_dir),
    }
    done = launch_elsewhere(TASK, ENTRY, params, paths, out_dir, resume, launch)
    if done is not None:
        return done
    return run_request({"params": params.model_dump(mode="json"), "paths": paths, "resume": resume})


def run_request(request: dict[str, Any]) -> dict[str, Any]:
    """Train in this process (one rank of a torchrun job, or the only process)."""
    params = FinetuneParams.model_validate(request["params"])
    paths = {k: None if v is None else Path(v) for k, v in request["paths"].items()}
    out_dir = paths["out_dir"]
    assert out_dir is not None
    env = init_distributed(params.train.device)
    try:
        seed_everything(params.train.seed)
        task = ClassifierTask(params, paths["encoder_dir"], paths["data_dir"], paths["labels_dir"])
        result = fit(task, params.train, out_dir, env, bool(request["resume"]))
        summary = result.to_json(task.selection_metric, env.world_size)
        if env.is_main:
            inputs = {
                PREPROCESS_JSON: sha256_file(task.data_dir / PREPROCESS_JSON),
                LABELS: sha256_file(task.labels_dir / LABELS),
            }
            if paths["encoder_dir"] is not None:
                inputs["encoder"] = sha256_file(paths["encoder_dir"] / MODEL / WEIGHTS)
            write_manifest(
                out_dir,
                stage=TASK,
                inputs=inputs,
                params=params.model_dump(mode="json"),
                counts={"train_rows": len(task.train_dataset), "val_rows": len(task.val)},
            )
    finally:
        shutdown(env)
    return summary


class ClassifierTask:
    """finetune-classifier as a :class:`~ecgflow.training.loop.Task`."""

    name = TASK
    selection_metric = "macro_auroc"
    epoch_samples = None

    def __init__(
        self,
        params: FinetuneParams,
        encoder_dir: Path | None,
        data_dir: Path | None,
        labels_dir: Path | None,
    ) -> None:
        assert data_dir is not None and labels_dir is not None
        self.settings, self.data_dir, self.labels_dir = params, data_dir, labels_dir
        info = preprocess_info(data_dir)
        label_def = _read_label_def(labels_dir)
        self.names = [entry["name"] for entry in label_def["labels"]]
        labels = _read_labels(labels_dir)
        self.train_dataset = SignalLabelDataset(ShardRows(data_dir, "train"), labels, self.names)
        self.val = SignalLabelDataset(ShardRows(data_dir, "val"), labels, self.names)
        if len(self.val) < 2:
            raise EcgflowError(f"{data_dir}: the val split has {len(self.val)} labelled rows")
        pos_weight = [
            min(float(entry.get("pos_weight") or 1.0), MAX_POS_WEIGHT)
            for entry in label_def["labels"]
        ]
        self.pos_weight = torch.tensor(pos_weight, dtype=torch.float32)
        encoder, state = params.encoder, None
        channels = int(info["n_channels"])
        if params.pretrained:
            assert encoder_dir is not None
            state, encoder = load_ecg_encoder_state(encoder_dir / MODEL)
            if encoder.in_channels != channels:
                raise EcgflowError(
                    f"{encoder_dir}: the encoder takes {encoder.in_channels} channels, "
                    f"{data_dir} has {channels}; preprocess with the same lead mode"
                )
        encoder = encoder.model_copy(update={"in_channels": channels})
        self.crop = None if params.crop_s is None else max(round(params.crop_s * info["fs"]), 1)
        self.config = ClassifierConfig(
            encoder=encoder, labels=self.names, dropout=params.dropout, window=self.crop
        )
        self.model = Classifier(self.config)
        if state is not None:
            self.model.encoder.load_state_dict(state)
        self.sample_weights = (
            inverse_prevalence_weights(self.train_dataset.targets)
            if params.weighted_sampling
            else None
        )
        self._val_scores: np.ndarray | None = None

    def collate(self, batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, ...]:
        """Stack signals and targets; random crops and augmentation when configured."""
        x = torch.stack([x for x, _ in batch])
        if self.crop is not None and x.shape[-1] > self.crop:
            starts = torch.randint(0, x.shape[-1] - self.crop + 1, (len(x),)).tolist()
            x = torch.stack([row[:, s : s + self.crop] for row, s in zip(x, starts, strict=True)])
        if self.settings.augment:
            scale = torch.empty(x.shape[0], x.shape[1], 1).uniform_(0.8, 1.2)
            x = x * scale + 0.02 * torch.randn_like(x)
        return x, torch.stack([y for _, y in batch])

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, ...], device: torch.device):
        """BCE with logits and pos_weight."""
        x, y = (t.to(device) for t in batch)
        logits = model(x).float()
        return nn.functional.binary_cross_entropy_with_logits(
            logits, y, pos_weight=self.pos_weight.to(device)
        )

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        """Macro and per-label AUROC and the loss on the val split."""
        size = self.settings.eval_batch_size
        logits = []
        for start in range(0, len(self.val), size):
            stop = min(start + size, len(self.val))
            x = torch.stack([self.val[i][0] for i in range(start, stop)]).to(device)
            logits.append(model(x).float().cpu())
        scores = torch.cat(logits)
        targets = torch.from_numpy(self.val.targets)
        loss = nn.functional.binary_cross_entropy_with_logits(
            scores, targets, pos_weight=self.pos_weight
        )
        probabilities = torch.sigmoid(scores).numpy()
        self._val_scores = probabilities
        metrics = {
            "val_loss": float(loss),
            "macro_auroc": macro_auroc(self.val.targets, probabilities, self.names),
        }
        per_label = per_label_auroc(self.val.targets, probabilities, self.names)
        metrics |= {f"auroc_{name}": value for name, value in per_label.items()}
        return metrics

    def save_best(self, model: nn.Module, folder: Path) -> None:
        """Model, val thresholds, preprocess.json and label_def.json → ``folder/model``."""
        target = folder / MODEL
        save_model(target, model, self.config, "classifier")
        assert self._val_scores is not None
        thresholds = f1_thresholds(self.val.targets, self._val_scores, self.names)
        text = json.dumps({"labels": self.names, "thresholds": thresholds}, indent=2)
        (target / THRESHOLDS).write_text(text + "\n", encoding="utf-8")
        shutil.copyfile(self.data_dir / PREPROCESS_JSON, target / PREPROCESS_JSON)
        shutil.copyfile(self.labels_dir / LABEL_DEF, target / LABEL_DEF)

    def params(self) -> dict[str, Any]:
        """What MLflow records."""
        return {
            "model": self.config.model_dump(mode="json"),
            "pretrained": self.settings.pretrained,
            "weighted_sampling": self.settings.weighted_sampling,
            "nproc": self.settings.nproc,
            "train_rows": len(self.train_dataset),
            "val_rows": len(self.val),
        }


def _read_label_def(labels_dir: Path) -> dict[str, Any]:
    path = labels_dir / LABEL_DEF
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not data["labels"]:
            raise ValueError("no labels")
        return data
    except FileNotFoundError:
        raise EcgflowError(f"{path}: not found (--labels must be a label output)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EcgflowError(f"{path}: not a label_def.json ({exc})") from None


def _read_labels(labels_dir: Path) -> pd.DataFrame:
    path = labels_dir / LABELS
    try:
        return pd.read_parquet(path)
    except FileNotFoundError:
        raise EcgflowError(f"{path}: not found (--labels must be a label output)") from None
    except Exception as exc:
        raise EcgflowError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
