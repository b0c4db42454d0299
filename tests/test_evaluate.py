"""The eval stage on a real (briefly trained) classifier and CLIP model."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import SHARED_DATA
from sklearn.metrics import average_precision_score, roc_auc_score

from ecgflow.errors import EcgflowError
from ecgflow.evaluation.classification import bootstrap_ci
from ecgflow.models import load_model
from ecgflow.params import EvalParams, FinetuneParams, TrainClipParams
from ecgflow.stages.evaluate import evaluate
from ecgflow.stages.finetune_classifier import finetune_classifier
from ecgflow.stages.ingest import IngestParams, ingest
from ecgflow.stages.label import LabelParams, label
from ecgflow.stages.preprocess import PreprocessParams, preprocess
from ecgflow.stages.split import SplitParams, split
from ecgflow.stages.train_clip import train_clip
from ecgflow.training.data import ShardRows

TINY = {"width": 8, "depth": 1}


@dataclass
class Trained:
    records: Path
    labels: Path
    data: Path
    classifier: Path
    clip: Path


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow-eval') / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        yield uri


@pytest.fixture(scope="module")
def trained(tracking: str, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    root = tmp_path_factory.mktemp("eval")
    if SHARED_DATA.is_dir():
        source, label_set = f"ptbxl:{SHARED_DATA / 'ptbxl'}", "ptbxl-superdiagnostic"
    else:
        source, label_set = "synthetic://?n=200&seed=6&fs=100", "synthetic"
    ingest(IngestParams(source=source, limit=200, workers=2), root / "records")
    label(LabelParams(label_set=label_set), root / "records", root / "labels")
    split(SplitParams(), root / "records", root / "labels", root / "split")
    preprocess(PreprocessParams(workers=2), root / "records", root / "split", root / "data")
    train = {"epochs": 2, "batch_size": 16}
    ft = FinetuneParams.model_validate({"pretrained": False, "encoder": TINY, "train": train})
    finetune_classifier(ft, None, root / "data", root / "labels", root / "classifier")
    clip = TrainClipParams.model_validate(
        {"model": {"encoder": TINY, "embed_dim": 16}, "train": {"epochs": 1, "batch_size": 16}}
    )
    train_clip(clip, root / "data", root / "records", root / "clip")
    return Trained(root / "records", root / "labels", root / "data", root / "classifier",
                   root / "clip")  # fmt: skip


@pytest.fixture(scope="module")
def test_metrics(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("eval-test")
    params = EvalParams(split="test", bootstrap=50)
    return out, evaluate(
        params, trained.classifier, trained.data, trained.labels, out, records_dir=trained.records
    )


def _scores(trained: Trained, split_name: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    model, config = load_model(trained.classifier / "model")
    rows = ShardRows(trained.data, split_name)
    x = torch.from_numpy(np.stack([rows.signal(i) for i in range(len(rows))]))
    with torch.no_grad():
        scores = torch.sigmoid(model(x)).numpy()
    labels = pd.read_parquet(trained.labels / "labels.parquet").set_index("record_id")
    targets = labels.loc[rows.record_ids, config.labels].to_numpy(dtype=float)
    return targets, scores, config.labels


def test_classifier_metrics_match_sklearn(trained: Trained, test_metrics: tuple) -> None:
    out, metrics = test_metrics
    targets, scores, names = _scores(trained, "test")
    assert metrics["kind"] == "classifier" and metrics["n_records"] == len(targets)
    for j, name in enumerate(names):
        row = metrics["per_label"][name]
        if 0 < targets[:, j].sum() < len(targets):
            assert row["auroc"] == pytest.approx(roc_auc_score(targets[:, j], scores[:, j]))
            assert row["auprc"] == pytest.approx(
                average_precision_score(targets[:, j], scores[:, j])
            )
        assert row["support"] == int(targets[:, j].sum())
    # thresholds come from training's validation split, never from the test data
    saved = json.loads((trained.classifier / "model" / "thresholds.json").read_text())
    assert {n: metrics["per_label"][n]["threshold"] for n in names} == saved["thresholds"]
    assert 0 <= metrics["fmax"] <= 1
    low, high = metrics["ci95"]["macro_auroc"]
    assert low <= metrics["macro_auroc"] <= high
    for plot in ("roc", "pr", "confusion", "calibration", "training"):
        assert (out / "plots" / f"{plot}.png").stat().st_size > 1000, plot
    page = (out / "report.html").read_text()
    assert all(name in page for name in names) and page.count("data:image/png;base64,") == 5
    # intervals over patients (index.parquet's patient_id), not records
    assert metrics["ci_unit"] == "patient"
    assert 0 < metrics["n_patients"] <= metrics["n_records"]
    assert json.loads((out / "metrics.json").read_text())["macro_auroc"] == metrics["macro_auroc"]


def test_eval_is_seeded_and_hashes_the_data(
    trained: Trained, test_metrics: tuple, tmp_path: Path
) -> None:
    _, first = test_metrics
    again = evaluate(
        EvalParams(split="test", bootstrap=50, plots=False),
        trained.classifier,
        trained.data,
        trained.labels,
        tmp_path / "again",
    )
    assert again["ci95"] == first["ci95"] and again["data_hash"] == first["data_hash"]
    val = evaluate(
        EvalParams(split="val", bootstrap=0, plots=False),
        trained.classifier,
        trained.data,
        trained.labels,
        tmp_path / "val",
    )
    assert val["data_hash"] != first["data_hash"] and val["ci95"] == {}
    everything = evaluate(
        EvalParams(split="all", bootstrap=0, plots=False),
        trained.classifier,
        trained.data,
        trained.labels,
        tmp_path / "all",
    )
    assert everything["n_records"] > first["n_records"] + val["n_records"]


def test_eval_run_is_in_mlflow(test_metrics: tuple, tracking: str, trained: Trained) -> None:
    import mlflow

    _, metrics = test_metrics
    run = mlflow.MlflowClient(tracking).get_run(metrics["mlflow_run_id"])
    assert run.data.tags["data_hash"] == metrics["data_hash"]
    assert run.data.tags["training_run_id"] == metrics["training_run_id"]
    assert run.data.metrics["macro_auroc"] == pytest.approx(metrics["macro_auroc"])
    # artifacts sit beside the SQLite store, not in ./mlruns of whatever folder tests run in
    database = Path(tracking.removeprefix("sqlite:///"))
    assert run.info.artifact_uri.startswith((database.parent / "mlartifacts").as_uri())
    plots = mlflow.MlflowClient(tracking).list_artifacts(run.info.run_id, "plots")
    assert {Path(a.path).name for a in plots} >= {"roc.png", "pr.png"}
    files = {a.path for a in mlflow.MlflowClient(tracking).list_artifacts(run.info.run_id)}
    assert {"report.html", "summary.md"} <= files
    # the evaluated data as the run's input: the preprocess manifest's hash, the ingest source
    (entry,) = run.inputs.dataset_inputs
    manifest = hashlib.sha256((trained.data / "manifest.json").read_bytes()).hexdigest()
    assert {t.key: t.value for t in entry.tags}["manifest_sha256"] == manifest
    assert entry.dataset.digest == manifest[:32]
    source = json.loads((trained.records / "manifest.json").read_text())["source"]
    assert {t.key: t.value for t in entry.tags}["origin"] == source
    assert json.loads(entry.dataset.source)["url"] == trained.data.resolve().as_uri()
    # and the training run recorded the same data as its input
    training = mlflow.MlflowClient(tracking).get_run(metrics["training_run_id"])
    (used,) = training.inputs.dataset_inputs
    assert used.dataset.digest == manifest[:32]
    assert {t.key: t.value for t in used.tags}["mlflow.data.context"] == "training"


def test_pooled_curves_are_what_kfp_classification_metrics_takes(
    test_metrics: tuple, tmp_path: Path
) -> None:
    from kfp.dsl import ClassificationMetrics

    _, metrics = test_metrics
    ui = ClassificationMetrics(name="classification", uri=str(tmp_path / "c"))
    roc = metrics["micro_roc"]
    ui.log_roc_curve(roc["fpr"], roc["tpr"], roc["thresholds"])
    ui.log_confusion_matrix(["negative", "positive"], metrics["pooled_confusion"])
    assert 2 <= len(ui.metadata["confidenceMetrics"]) <= 201
    assert roc["fpr"][0] == 0.0 and roc["tpr"][-1] == 1.0
    pooled = np.array(metrics["pooled_confusion"])
    assert pooled.sum() == metrics["n_records"] * len(metrics["per_label"])
    positives = sum(row["support"] for row in metrics["per_label"].values())
    assert pooled[1].sum() == positives


def test_patient_bootstrap_keeps_a_patients_records_together() -> None:
    """Records copied 3 times per patient: resampling patients equals resampling the originals."""
    rng = np.random.default_rng(0)
    targets = (rng.random((60, 2)) < 0.4).astype(float)
    scores = np.clip(targets * 0.3 + rng.random((60, 2)) * 0.7, 0, 1)
    thresholds, names = {"a": 0.5, "b": 0.5}, ["a", "b"]
    copies = np.repeat(np.arange(60), 3)
    patients = [f"p{i:03d}" for i in copies]
    grouped = bootstrap_ci(targets[copies], scores[copies], thresholds, names, 200, 1, patients)
    plain = bootstrap_ci(targets, scores, thresholds, names, 200, 1)
    for key in plain:
        assert grouped[key] == pytest.approx(plain[key])
    # resampling the copies as if independent gives narrower, overconfident intervals
    naive = bootstrap_ci(targets[copies], scores[copies], thresholds, names, 200, 1)
    width = {k: v[1] - v[0] for k, v in naive.items()}
    assert width["macro_auroc"] < (plain["macro_auroc"][1] - plain["macro_auroc"][0])


def test_clip_eval_reports_retrieval_and_zero_shot(trained: Trained, tmp_path: Path) -> None:
    metrics = evaluate(
        EvalParams(split="val", bootstrap=0),
        trained.clip,
        trained.data,
        trained.labels,
        tmp_path,
        records_dir=trained.records,
    )
    assert metrics["kind"] == "clip"
    assert 0 <= metrics["mean_recall"] <= 1 and "chance_mean_recall" in metrics
    assert set(metrics["zero_shot_auroc"]) == set(
        e["name"] for e in json.loads((trained.labels / "label_def.json").read_text())["labels"]
    )
    with pytest.raises(EcgflowError, match="--records"):
        evaluate(EvalParams(split="val"), trained.clip, trained.data, trained.labels, tmp_path)


def test_cinc_eval_reports_the_challenge_metric(
    shared_data: Path, tracking: str, tmp_path: Path
) -> None:
    ingest(IngestParams(source=f"cinc:{shared_data / 'cinc2021'}", workers=1), tmp_path / "rec")
    label(LabelParams(label_set="cinc2021-scored"), tmp_path / "rec", tmp_path / "lab")
    split(SplitParams(ratios=(0.6, 0.2, 0.2)), tmp_path / "rec", tmp_path / "lab", tmp_path / "sp")
    preprocess(PreprocessParams(workers=1), tmp_path / "rec", tmp_path / "sp", tmp_path / "data")
    ft = FinetuneParams.model_validate(
        {"pretrained": False, "encoder": TINY, "train": {"epochs": 1, "batch_size": 8}}
    )
    finetune_classifier(ft, None, tmp_path / "data", tmp_path / "lab", tmp_path / "clf")
    metrics = evaluate(
        EvalParams(split="all", bootstrap=0, plots=False),
        tmp_path / "clf",
        tmp_path / "data",
        tmp_path / "lab",
        tmp_path / "eval",
        records_dir=tmp_path / "rec",
    )
    assert metrics["label_set"] == "cinc2021-scored"
    assert metrics["challenge_score"] is not None and metrics["challenge_score"] <= 1.0


def test_bad_eval_inputs(trained: Trained, tmp_path: Path) -> None:
    with pytest.raises(EcgflowError, match="split"):
        EvalParams(split="train")
    empty = tmp_path / "empty"  # outputs never inside an input: a sibling folder
    empty.mkdir()
    with pytest.raises(EcgflowError, match=r"config\.json|not found|no manifest\.json"):
        evaluate(EvalParams(), empty, trained.data, trained.labels, tmp_path / "o")
    proc = subprocess.run(
        [sys.executable, "-m", "ecgflow.cli", "eval", "--model", str(trained.classifier),
         "--data", str(trained.data), "--labels", str(empty), "--out", str(tmp_path / "p")],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and "(labels_dir) has no manifest.json" in proc.stderr
