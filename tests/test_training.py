"""train-clip under a real 2-process torchrun, exact resume after a kill, finetune-classifier.

Runs on the shared PTB-XL records (500 at 100 Hz, strat_fold split) when present, else on
synthetic records; MLflow logs to a SQLite store in a temporary folder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from conftest import SHARED_DATA

from ecgflow.errors import EcgflowError
from ecgflow.stages.finetune_classifier import FinetuneParams, finetune_classifier
from ecgflow.stages.ingest import IngestParams, ingest
from ecgflow.stages.label import LabelParams, label
from ecgflow.stages.preprocess import PreprocessParams, preprocess
from ecgflow.stages.split import SplitParams, split
from ecgflow.stages.train_clip import TrainClipParams, train_clip

SMALL_ENCODER = {"width": 16, "depth": 2}


@dataclass
class Prepared:
    records: Path
    labels: Path
    data: Path


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        yield uri


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    root = tmp_path_factory.mktemp("train-data")
    if SHARED_DATA.is_dir():
        source, label_set = f"ptbxl:{SHARED_DATA / 'ptbxl'}", "ptbxl-superdiagnostic"
    else:
        source, label_set = "synthetic://?n=300&seed=4&fs=100", "synthetic"
    ingest(IngestParams(source=source, workers=2), root / "records")
    label(LabelParams(label_set=label_set), root / "records", root / "labels")
    split(SplitParams(), root / "records", root / "labels", root / "split")
    preprocess(PreprocessParams(workers=2), root / "records", root / "split", root / "data")
    return Prepared(root / "records", root / "labels", root / "data")


@pytest.fixture(scope="module")
def clip_out(
    prepared: Prepared, tracking: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("clip")
    params = TrainClipParams.model_validate(
        {
            "model": {"encoder": SMALL_ENCODER, "embed_dim": 64},
            "train": {"epochs": 3, "batch_size": 32, "lr": 1e-3, "warmup_epochs": 0.5},
            "nproc": 2,
        }
    )
    metrics = train_clip(params, prepared.data, prepared.records, out)
    return out, metrics


def test_train_clip_two_processes(clip_out: tuple[Path, dict], tracking: str) -> None:
    out, metrics = clip_out
    assert metrics["world_size"] == 2
    history = metrics["history"]
    assert len(history) == 3
    assert history[-1]["train_loss"] < history[0]["train_loss"]  # the loss falls
    digests = metrics["replica_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]  # both ranks hold the same weights
    best = metrics["best"]
    assert best["mean_recall"] > best["chance_mean_recall"] + 0.05  # retrieval beats chance
    assert {"ecg_to_text_top1", "ecg_to_text_top5", "text_to_ecg_top1", "text_to_ecg_top5"} <= set(
        best
    )
    assert (out / "model" / "model.safetensors").is_file()
    assert (out / "model" / "config.json").is_file()
    assert (out / "manifest.json").is_file()
    import mlflow

    run = mlflow.MlflowClient(tracking).get_run(metrics["mlflow_run_id"])
    assert run.data.params["world_size"] == "2"
    curve = mlflow.MlflowClient(tracking).get_metric_history(run.info.run_id, "mean_recall")
    assert [m.step for m in curve] == [0, 1, 2]


def test_finetune_from_clip_encoder_beats_auroc_070(
    prepared: Prepared, clip_out: tuple[Path, dict], tmp_path: Path
) -> None:
    params = FinetuneParams.model_validate(
        {"train": {"epochs": 8, "batch_size": 32, "lr": 3e-3, "warmup_epochs": 0.5}}
    )
    metrics = finetune_classifier(params, clip_out[0], prepared.data, prepared.labels, tmp_path)
    print("val macro AUROC", metrics["best"]["macro_auroc"], "epoch", metrics["best_epoch"])
    assert metrics["best"]["macro_auroc"] > 0.70
    model = tmp_path / "model"
    for name in ("model.safetensors", "config.json", "thresholds.json", "preprocess.json"):
        assert (model / name).is_file(), name
    assert (model / "label_def.json").is_file()


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "checkpoints" / "last.pt", weights_only=False)["model"]


def test_resume_after_kill_is_exact(prepared: Prepared, tracking: str, tmp_path: Path) -> None:
    epochs = 6
    train = {"epochs": epochs, "batch_size": 32, "lr": 2e-3, "patience": 0, "seed": 3}
    params = FinetuneParams.model_validate(
        {"pretrained": False, "encoder": SMALL_ENCODER, "train": train}
    )
    finetune_classifier(params, None, prepared.data, prepared.labels, tmp_path / "straight")

    killed = tmp_path / "killed"
    command = [
        sys.executable, "-m", "ecgflow.cli", "finetune-classifier",
        "--data", str(prepared.data), "--labels", str(prepared.labels), "--out", str(killed),
        "--no-pretrained", "--width", "16", "--depth", "2", "--epochs", str(epochs),
        "--batch-size", "32", "--lr", "2e-3", "--patience", "0", "--seed", "3",
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = killed / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # mid-training, right after the first checkpoint
    assert proc.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    done = torch.load(checkpoint, weights_only=False)["state"]["epoch"]
    assert done < epochs - 1

    metrics = finetune_classifier(params, None, prepared.data, prepared.labels, killed, resume=True)
    assert [h["epoch"] for h in metrics["history"]] == list(range(epochs))
    straight, resumed = _weights(tmp_path / "straight"), _weights(killed)
    assert straight.keys() == resumed.keys()
    for name, tensor in straight.items():
        assert torch.equal(tensor, resumed[name]), name


def test_bad_training_inputs_are_named(prepared: Prepared, tmp_path: Path) -> None:
    with pytest.raises(EcgflowError, match=r"finetune\.pretrained / --pretrained.*--encoder"):
        params = FinetuneParams(pretrained=True)
        finetune_classifier(params, None, prepared.data, prepared.labels, tmp_path)
    with pytest.raises(EcgflowError, match=r"preprocess\.json"):
        train_clip(TrainClipParams(), prepared.records, prepared.records, tmp_path / "x")
    with pytest.raises(EcgflowError, match=r"train.*epochs"):
        TrainClipParams.model_validate({"train": {"epochs": 0}})
    with pytest.raises(EcgflowError, match="label_def"):
        params = FinetuneParams(pretrained=False)
        finetune_classifier(params, None, prepared.data, prepared.records, tmp_path / "y")
    proc = subprocess.run(
        [sys.executable, "-m", "ecgflow.cli", "train-clip", "--data", str(tmp_path / "none"),
         "--records", str(prepared.records), "--out", str(tmp_path / "z")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and "preprocess.json: not found" in proc.stderr
    assert "Traceback" not in proc.stderr
