"""The eval stage: metrics and plots of a trained model on one split of a preprocess output.

Classifiers (finetune-classifier outputs): per-label and macro AUROC and AUPRC, F1,
sensitivity and specificity at the thresholds chosen on the validation split during training
(``thresholds.json``; never on the evaluated test data), sample-centric Fmax, seeded bootstrap
95 % intervals, and for CinC label sets the Challenge metric. A record cut into windows is
scored by the mean of its windows' probabilities.

CLIP models (train-clip outputs): ECG→text and text→ECG retrieval top-1/top-5 and mean recall
against the records' texts, and zero-shot AUROC per label from the label prompts.

``split``: ``test`` or ``val`` of the preprocess output, or ``all`` — every record of it (an
external set prepared with ``preprocess --like``).

Output (``out_dir``): ``metrics.json`` (with ``data_hash``: what was evaluated, so the registry
compares models only on the same data), ``plots/*.png`` (ROC, PR, confusion matrices,
calibration, training curves from the training run's MLflow history), ``manifest.json``; the
same numbers and plots in an MLflow run tagged with the training run.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ecgflow import progress, tracking
from ecgflow.artifacts import (
    INDEX,
    LABEL_DEF,
    LABELS,
    MANIFEST,
    METRICS,
    MODEL,
    MODEL_CONFIG,
    PLOTS,
    THRESHOLDS,
    WEIGHTS,
)
from ecgflow.errors import EcgflowError
from ecgflow.evaluation import plots
from ecgflow.evaluation.classification import bootstrap_ci, fmax, label_report, macro
from ecgflow.evaluation.report import REPORT, SUMMARY, write_report
from ecgflow.evaluation.retrieval import retrieval_metrics
from ecgflow.manifest import sha256_file, write_manifest, writes_output
from ecgflow.models import load_model
from ecgflow.params import EvalParams
from ecgflow.text import label_prompts, record_texts
from ecgflow.training.data import ShardRows, preprocess_info

log = logging.getLogger(__name__)


@writes_output("evaluate")
def evaluate(
    params: EvalParams,
    model_dir: Path,
    data_dir: Path,
    labels_dir: Path,
    out_dir: Path,
    records_dir: Path | None = None,
) -> dict[str, Any]:
    """Evaluate the model in ``model_dir`` (see the module docstring); returns metrics.json.

    ``records_dir`` (the ingest folder) gives CLIP its texts and the CinC metric its weights
    (raw/weights.csv) unless ``params.challenge_weights`` names another weights.csv.
    """
    model_dir, data_dir, labels_dir, out_dir = map(Path, (model_dir, data_dir, labels_dir, out_dir))
    folder = model_dir / MODEL if (model_dir / MODEL / MODEL_CONFIG).is_file() else model_dir
    model, _ = load_model(folder)
    splits = _splits(data_dir, params.split)
    rows = [ShardRows(data_dir, s) for s in splits]
    label_def = _read_json(labels_dir / LABEL_DEF)
    names = [entry["name"] for entry in label_def["labels"]]
    records, targets, windows = _targets(rows, _read_labels(labels_dir), names)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / PLOTS).mkdir(exist_ok=True)
    training_run = _training_run(model_dir)
    common = {
        "split": params.split,
        "splits": splits,
        "data_hash": _data_hash(data_dir, splits, labels_dir),
        "n_records": len(records),
        "n_rows": sum(len(r) for r in rows),
        "label_set": label_def.get("label_set"),
        "training_run_id": training_run,
    }
    kind = model.__class__.__name__
    inputs = {"model": sha256_file(folder / WEIGHTS), "data": common["data_hash"]}
    if kind == "Classifier":
        scores = _classifier_scores(model, rows, windows, params.batch_size)
        thresholds = _read_json(folder / THRESHOLDS)["thresholds"]
        metrics = {"kind": "classifier", **common}
        patients = _patients(data_dir, splits, records)
        metrics |= _classifier_metrics(params, targets, scores, thresholds, names, patients)
        metrics |= _kfp_curves(targets, scores, thresholds, names)
        weights = _challenge_weights(params, records_dir)
        metrics["challenge_score"] = _challenge(label_def, targets, scores, thresholds, weights)
        if metrics["challenge_score"] is not None and weights is not None:
            metrics["challenge_weights"] = str(weights)
            inputs["challenge_weights"] = sha256_file(weights)
        if params.plots:
            predicted = np.stack([scores[:, j] >= thresholds[n] for j, n in enumerate(names)], 1)
            plots.roc_curves(targets, scores, names, out_dir / PLOTS / "roc.png", thresholds)
            plots.pr_curves(targets, scores, names, out_dir / PLOTS / "pr.png", thresholds)
            plots.confusion_matrices(targets, predicted, names, out_dir / PLOTS / "confusion.png")
            plots.calibration(targets, scores, names, out_dir / PLOTS / "calibration.png")
    else:
        if records_dir is None:
            raise EcgflowError("a CLIP model needs --records (the record texts) to evaluate")
        metrics = {"kind": "clip", **common}
        metrics |= _clip_metrics(model, rows, records_dir, targets, windows, label_def, params)
    history = _training_history(training_run)
    if params.plots and history:
        plots.training_curves(history, out_dir / PLOTS / "training.png")
    order = ("roc", "pr", "confusion", "calibration", "training")
    write_report(out_dir, metrics, [out_dir / PLOTS / f"{name}.png" for name in order])
    metrics["mlflow_run_id"] = _log_to_mlflow(params, metrics, out_dir, data_dir, records_dir)
    (out_dir / METRICS).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    write_manifest(
        out_dir,
        stage="eval",
        inputs=inputs,
        params=params.model_dump(mode="json"),
        counts={"records": len(records)},
    )
    return metrics


# --- inputs ------------------------------------------------------------------------------------


def _splits(data_dir: Path, split: str) -> list[str]:
    available = list(preprocess_info(data_dir)["splits"])
    if split == "all":
        return available
    if split not in available:
        raise EcgflowError(f"{data_dir}: no '{split}' split (has {available})")
    return [split]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EcgflowError(f"{path}: not found") from None
    except (OSError, ValueError) as exc:
        raise EcgflowError(f"{path}: unreadable ({exc})") from None


def _read_labels(labels_dir: Path) -> pd.DataFrame:
    path = labels_dir / LABELS
    try:
        return pd.read_parquet(path)
    except FileNotFoundError:
        raise EcgflowError(f"{path}: not found (--labels must be a label output)") from None
    except Exception as exc:
        raise EcgflowError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None


def _targets(
    rows: list[ShardRows], labels: pd.DataFrame, names: list[str]
) -> tuple[list[str], np.ndarray, list[list[tuple[int, int]]]]:
    """Records (first-seen order), their targets, and for each the (split, row) of its windows."""
    table = labels.set_index(labels["record_id"].astype(str))
    missing = [n for n in names if n not in table.columns]
    if missing:
        raise EcgflowError(f"labels.parquet lacks the label columns {missing}")
    windows: dict[str, list[tuple[int, int]]] = {}
    for s, part in enumerate(rows):
        for i, record_id in enumerate(part.record_ids):
            if record_id in table.index:
                windows.setdefault(record_id, []).append((s, i))
    if not windows:
        raise EcgflowError("no evaluated record has labels (labels and data do not match)")
    records = list(windows)
    targets = table.loc[records, names].to_numpy(dtype=np.float64)
    return records, targets, [windows[r] for r in records]


def _patients(data_dir: Path, splits: list[str], records: list[str]) -> list[str] | None:
    """Each record's patient (index.parquet's patient_id; the record itself where unknown).

    None when no record has a patient id: the bootstrap then resamples records.
    """
    found: dict[str, str] = {}
    for split in splits:
        index = pd.read_parquet(data_dir / split / INDEX)
        if "patient_id" not in index.columns:
            continue
        ids = zip(index["record_id"].astype(str), index["patient_id"], strict=True)
        for record_id, patient in ids:
            if patient is not None and not pd.isna(patient) and str(patient):
                found.setdefault(record_id, f"patient:{patient}")
    if not found:
        return None
    return [found.get(r, f"record:{r}") for r in records]


def _data_hash(data_dir: Path, splits: list[str], labels_dir: Path) -> str:
    """SHA-256 over the evaluated splits' index and shards and the labels: what was scored."""
    digest = hashlib.sha256()
    for split in splits:
        for path in sorted((data_dir / split).glob("*")):
            if path.suffix in {".npy", ".parquet"}:
                digest.update(f"{split}/{path.name}:{sha256_file(path)}\n".encode())
    digest.update(f"labels:{sha256_file(labels_dir / LABELS)}\n".encode())
    return digest.hexdigest()


def _training_run(model_dir: Path) -> str | None:
    path = model_dir / METRICS
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8")).get("mlflow_run_id")


# --- scoring -----------------------------------------------------------------------------------


def _embed(fn: Any, rows: list[ShardRows], batch_size: int) -> list[np.ndarray]:
    """``fn`` over every row of every split, in batches; one array per split."""
    out = []
    batches = sum(-(-len(part) // batch_size) for part in rows)
    with torch.no_grad(), progress.task("eval batches", batches) as bar:
        for part in rows:
            chunks = []
            for start in range(0, len(part), batch_size):
                stop = min(start + batch_size, len(part))
                x = torch.from_numpy(np.stack([part.signal(i) for i in range(start, stop)]))
                chunks.append(fn(x).float().numpy())
                bar.advance()
            out.append(np.concatenate(chunks) if chunks else np.zeros((0, 0)))
    return out


def _per_record(values: list[np.ndarray], windows: list[list[tuple[int, int]]]) -> np.ndarray:
    return np.stack([np.mean([values[s][i] for s, i in w], axis=0) for w in windows])


def _classifier_scores(
    model: torch.nn.Module, rows: list[ShardRows], windows: list, batch_size: int
) -> np.ndarray:
    probabilities = _embed(lambda x: torch.sigmoid(model(x)), rows, batch_size)
    return _per_record(probabilities, windows)


def _classifier_metrics(
    params: EvalParams,
    targets: np.ndarray,
    scores: np.ndarray,
    thresholds: dict[str, float],
    names: list[str],
    patients: list[str] | None = None,
) -> dict[str, Any]:
    """Per-label and macro metrics; 95 % intervals by a bootstrap over patients (if known)."""
    missing = [n for n in names if n not in thresholds]
    if missing:
        raise EcgflowError(f"thresholds.json lacks the labels {missing}")
    report = label_report(targets, scores, thresholds, names)
    ci = bootstrap_ci(
        targets, scores, thresholds, names, params.bootstrap, params.seed, groups=patients
    )
    return {
        "macro_auroc": macro(report, "auroc"),
        "macro_auprc": macro(report, "auprc"),
        "macro_f1": macro(report, "f1"),
        "fmax": fmax(targets, scores),
        "ci95": ci,
        "ci_unit": "record" if patients is None else "patient",
        "n_patients": len(set(patients)) if patients is not None else None,
        "bootstrap": params.bootstrap,
        "thresholds_from": "the validation split, at training (thresholds.json)",
        "per_label": report,
    }


def _kfp_curves(
    targets: np.ndarray, scores: np.ndarray, thresholds: dict[str, float], names: list[str]
) -> dict[str, Any]:
    """Pooled over labels, for KFP's ClassificationMetrics.

    Micro-average ROC points (at most ~200) and the 2×2 confusion matrix of every label's
    decision at its threshold.
    """
    from sklearn.metrics import roc_curve

    t = targets.ravel() > 0
    if 0 < t.sum() < len(t):
        fpr, tpr, cut = roc_curve(t, scores.ravel())
        keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), 200)).round().astype(int))
        cut = np.minimum(cut[keep], 1.0)  # sklearn's first threshold is inf
        roc = {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist(), "thresholds": cut.tolist()}
    else:
        roc = None
    decided = np.stack([scores[:, j] >= thresholds[n] for j, n in enumerate(names)], 1).ravel()
    matrix = [[int((~t & ~decided).sum()), int((~t & decided).sum())],
              [int((t & ~decided).sum()), int((t & decided).sum())]]  # fmt: skip
    return {"micro_roc": roc, "pooled_confusion": matrix}


def _challenge(
    label_def: dict[str, Any],
    targets: np.ndarray,
    scores: np.ndarray,
    thresholds: dict[str, float],
    weights: Path | None,
) -> float | None:
    """The CinC Challenge metric for CinC label sets, with the ``weights`` table."""
    from ecgflow.evaluation.challenge import challenge_metric, is_challenge_label_set

    if weights is None or not is_challenge_label_set(str(label_def.get("label_set"))):
        return None
    names = [entry["name"] for entry in label_def["labels"]]
    codes = (label_def.get("info") or {}).get("codes")
    predicted = np.stack([scores[:, j] >= thresholds[n] for j, n in enumerate(names)], axis=1)
    return float(challenge_metric(targets > 0, predicted, names, weights, codes=codes))


def _challenge_weights(params: EvalParams, records_dir: Path | None) -> Path | None:
    """``params.challenge_weights``, else the ingest folder's raw/weights.csv (if any)."""
    if params.challenge_weights is not None:
        return Path(params.challenge_weights)
    return None if records_dir is None else Path(records_dir) / "raw" / "weights.csv"


def _clip_metrics(
    model: Any,
    rows: list[ShardRows],
    records_dir: Path,
    targets: np.ndarray,
    windows: list,
    label_def: dict[str, Any],
    params: EvalParams,
) -> dict[str, Any]:
    texts = record_texts(records_dir)
    ecg_rows = _embed(model.encode_ecg, rows, params.batch_size)
    ecg = _per_record(ecg_rows, windows)
    ecg /= np.linalg.norm(ecg, axis=1, keepdims=True)
    records = [rows[w[0][0]].record_ids[w[0][1]] for w in windows]
    keep = [k for k, r in enumerate(records) if texts.get(r, "").strip()]
    own_texts = [texts[records[k]] for k in keep]
    distinct = list(dict.fromkeys(own_texts))
    text = _encode_texts(model, distinct, params.batch_size)
    position = {t: i for i, t in enumerate(distinct)}
    metrics: dict[str, Any] = retrieval_metrics(
        ecg[keep], text, np.array([position[t] for t in own_texts])
    )
    prompts = label_prompts(label_def)
    names = [entry["name"] for entry in label_def["labels"]]
    label_emb = np.stack([_encode_texts(model, prompts[n], 64).mean(axis=0) for n in names])
    label_emb /= np.linalg.norm(label_emb, axis=1, keepdims=True)
    zero_shot = ecg @ label_emb.T
    report = label_report(targets, zero_shot, dict.fromkeys(names, 0.0), names)
    metrics["zero_shot_auroc"] = {n: report[n]["auroc"] for n in names}
    metrics["zero_shot_macro_auroc"] = macro(report, "auroc")
    return metrics


def _encode_texts(model: Any, texts: list[str], batch_size: int) -> np.ndarray:
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            tokens = model.text_encoder.tokenize(texts[start : start + batch_size])
            out.append(model.encode_text(tokens["input_ids"], tokens["attention_mask"]).numpy())
    return np.concatenate(out)


# --- MLflow ------------------------------------------------------------------------------------


def _training_history(run_id: str | None) -> dict[str, list[tuple[int, float]]]:
    """Per-epoch metrics of the training run from MLflow (empty when it cannot be reached)."""
    if run_id is None:
        return {}
    try:
        import mlflow

        client = mlflow.MlflowClient(tracking.connected_uri())
        keys = [k for k in client.get_run(run_id).data.metrics if not k.startswith("best_")]
        return {
            k: [(m.step, m.value) for m in client.get_metric_history(run_id, k)]
            for k in sorted(keys)
            if k in {"train_loss", "val_loss", "macro_auroc", "mean_recall", "lr"}
        }
    except Exception as exc:  # a missing run must not fail the evaluation
        log.warning("training history of run %s unavailable: %s", run_id, exc)
        return {}


def _log_to_mlflow(
    params: EvalParams,
    metrics: dict[str, Any],
    out_dir: Path,
    data_dir: Path,
    records_dir: Path | None,
) -> str:
    run_id = tracking.start_run(params.experiment, f"eval-{params.split}")
    try:
        import mlflow

        tracking.log_dataset(data_dir, "eval", origin=_source(records_dir))

        flat = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
        for name, row in (metrics.get("per_label") or {}).items():
            flat |= {f"{name}.{k}": v for k, v in row.items() if isinstance(v, int | float)}
        tracking.log_metrics(flat, step=0)
        mlflow.set_tags(
            {
                "stage": "eval",
                "split": params.split,
                "data_hash": metrics["data_hash"],
                "training_run_id": str(metrics.get("training_run_id")),
            }
        )
        tracking.log_artifacts(out_dir / PLOTS, "plots")
        for name in (REPORT, SUMMARY):
            tracking.log_file(out_dir / name)
    finally:
        tracking.end_run()
    return run_id


def _source(records_dir: Path | None) -> str | None:
    """The ingest source the data came from (its manifest's ``source``), if known."""
    path = None if records_dir is None else Path(records_dir) / MANIFEST
    if path is None or not path.is_file():
        return None
    try:
        source = json.loads(path.read_text(encoding="utf-8")).get("source")
    except (OSError, ValueError):
        return None
    return str(source) if source else None
