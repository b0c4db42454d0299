"""The build-instructions stage: grounded question/answer pairs per record for finetune-GEM.

Inputs: an ingest folder (``records.parquet``; for PTB-XL the noise columns of
``raw/ptbxl_database.csv``), a label folder (``labels.parquet`` + ``label_def.json``), a split
folder (``split.parquet``) and optional ECG-QA JSON files. Questions come from
:mod:`ecgflow.text.instructions`; measured-feature questions read each record's signal. Records
of the test split never feed a training question: theirs go to ``test.json``, which only
eval-gem reads.

Output (``out_dir``)::

    train.json, val.json   LLaVA-style instructions ({id, record_id, ecg, image, conversations,
                           meta}) for finetune-gem
    test.json              the same for the test split's records: evaluation only
    record_evidence.json   (``evidence``, the default) each record's evidence
                           (:mod:`ecgflow.text.evidence`): its text is also in every
                           conversation's human turn after ``<ecg>`` and in ``meta.evidence``;
                           with ``--classifier EXPORT`` it states that classifier's per-label
                           probabilities (the training records': from a classifier trained on
                           them, so more confident than on new records)
    classifier/            (with ``--classifier``) a copy of that export's model.onnx and side
                           files: finetune-gem ships it in the GEM folder
    lead_quality.json      the per-lead quality model (:mod:`ecgflow.models.lead_quality`)
                           fitted on the train split's PTB-XL lead annotations at the rate most
                           records have, with its val/test AUROC per kind (PTB-XL only)
    skipped.json           every input left out, with its reason (unreadable annotations or
                           records, ECG-QA questions about unknown records)
    manifest.json          inputs, params, counts, sha256 of every file
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ecgflow.artifacts import (
    EVIDENCE_CLASSIFIER,
    LABELS,
    LEAD_QUALITY,
    MODEL_ONNX,
    RAW,
    RECORD_EVIDENCE,
    RECORDS,
    SKIPPED,
    SPLIT,
)
from ecgflow.errors import EcgflowError
from ecgflow.io.readers import read_record
from ecgflow.io.stage_tables import read_stage_table
from ecgflow.manifest import sha256_file, write_manifest, writes_output
from ecgflow.params.instructions import BuildInstructionsParams
from ecgflow.text import load_label_def, record_texts
from ecgflow.text.instructions import (
    LEADS,
    NOISE_COLUMNS,
    ecgqa_instruction,
    feature_instructions,
    label_instructions,
    noise_instructions,
    read_ecgqa,
    report_instruction,
)

if TYPE_CHECKING:  # scipy.signal (~0.5 s): imported when the rhythm is measured
    from ecgflow.mlflow_model import RawECGClassifier
    from ecgflow.signal.rhythm import Rhythm
    from ecgflow.text.evidence import ClassifierKey

log = logging.getLogger(__name__)

STAGE = "build-instructions"
TRAINING_SPLITS = ("train", "val")
EVALUATION_SPLIT = "test"
_DATABASE = "ptbxl_database.csv"


@writes_output("build-instructions")
def build_instructions(
    params: BuildInstructionsParams,
    records_dir: Path,
    labels_dir: Path,
    splits_dir: Path,
    out_dir: Path,
    qa_files: list[Path] | None = None,
    classifier_dir: Path | None = None,
) -> dict[str, Any]:
    """Write ``train.json`` / ``val.json`` (module docstring); returns the counts.

    ``classifier_dir``: a classifier export (``model.onnx`` + side files) whose per-label
    probabilities join each record's evidence (``params.evidence``).
    """
    records_dir, labels_dir, out_dir = Path(records_dir), Path(labels_dir), Path(out_dir)
    records = read_stage_table(records_dir / RECORDS, ("record_id", "files", "path"), "ingest")
    split = read_stage_table(Path(splits_dir) / SPLIT, ("record_id", "split"), "split")
    label_def = load_label_def(labels_dir)
    names = [str(entry["name"]) for entry in label_def["labels"]]
    labels = read_stage_table(labels_dir / LABELS, ("record_id", *names), "label")
    split_of = dict(zip(split["record_id"], split["split"].astype(str), strict=True))
    positives = _positives(labels, names)
    texts = record_texts(records_dir) if params.report_questions else {}
    noise = _noise_annotations(records_dir / RAW / _DATABASE)
    rng = random.Random(params.seed)
    out: dict[str, list[dict[str, Any]]] = {
        name: [] for name in (*TRAINING_SPLITS, EVALUATION_SPLIT)
    }
    skipped: list[dict[str, str]] = []
    held_out = 0
    ecg_paths = {}
    model_fs = _common_rate(records)
    rhythms: dict[str, Rhythm] = {}
    lead_features: dict[str, np.ndarray] = {}
    classified: dict[str, dict[str, float]] = {}
    classifier = _classifier(classifier_dir) if params.evidence else None
    for row in records.to_dict(orient="records"):
        record_id = row["record_id"]
        ecg = _record_path(row["files"])
        ecg_paths[record_id] = ecg
        part = split_of.get(record_id)
        if part is None:
            skipped.append({"record_id": record_id, "reason": "not in split.parquet"})
            continue
        if part not in out:  # a split neither trained on nor evaluated
            continue
        held_out += part == EVALUATION_SPLIT
        items = []
        if record_id in noise:
            found, problems = noise_instructions(
                record_id, ecg, noise[record_id], rng, params.noise_questions_per_record
            )
            items += found
            skipped += [{"record_id": record_id, "reason": p} for p in problems]
        if params.label_questions and record_id in positives:
            items += label_instructions(record_id, ecg, positives[record_id], label_def)
        if params.report_questions:
            report = report_instruction(record_id, ecg, texts.get(record_id, ""))
            items += [report] if report else []
        if params.feature_questions or params.evidence:
            try:
                rhythm, features, probabilities = _measure(
                    records_dir / RAW, row, model_fs, params.evidence, classifier
                )
            except EcgflowError as exc:
                skipped.append({"record_id": record_id, "reason": f"features: {exc}"})
            else:
                rhythms[record_id] = rhythm
                if features is not None:
                    lead_features[record_id] = features
                if probabilities is not None:
                    classified[record_id] = probabilities
                if params.feature_questions:
                    items += feature_instructions(record_id, ecg, rhythm)
        out[part] += items
    qa_counts = _add_ecgqa(qa_files or [], ecg_paths, split_of, out, skipped)

    out_dir.mkdir(parents=True, exist_ok=True)
    evidence_counts = {}
    if params.evidence:
        key = None
        if classifier is not None:
            from ecgflow.text.evidence import classifier_key

            key = classifier_key(classifier)
        evidence_counts = _write_evidence(
            out, rhythms, lead_features, noise, split_of, model_fs, out_dir, classified, key
        )
        if classifier is not None and classifier_dir is not None:
            from ecgflow.models.gem_evidence import copy_classifier

            copy_classifier(Path(classifier_dir), out_dir / EVIDENCE_CLASSIFIER)
            evidence_counts["classifier_records"] = len(classified)
    for part, items in out.items():
        _write_json(out_dir / f"{part}.json", items)
    _write_json(out_dir / SKIPPED, skipped)
    counts = {
        **{f"{part}_instructions": len(items) for part, items in out.items()},
        "held_out_records": held_out,
        "skipped": len(skipped),
        **qa_counts,
        **evidence_counts,
        **{f"kind_{k}": v for k, v in sorted(Counter(_kinds(out)).items())},
    }
    inputs = {
        RECORDS: sha256_file(records_dir / RECORDS),
        LABELS: sha256_file(labels_dir / LABELS),
        SPLIT: sha256_file(Path(splits_dir) / SPLIT),
        **{str(path): sha256_file(Path(path)) for path in qa_files or []},
        **(
            {"classifier": sha256_file(Path(classifier_dir) / MODEL_ONNX)}
            if classifier is not None and classifier_dir is not None
            else {}
        ),
    }
    write_manifest(
        out_dir, stage=STAGE, inputs=inputs, params=params.model_dump(mode="json"), counts=counts
    )
    return counts


def _classifier(classifier_dir: Path | None) -> RawECGClassifier | None:
    """The export's classifier on raw records, or None without one."""
    if classifier_dir is None:
        return None
    from ecgflow.mlflow_model import RawECGClassifier

    if not (Path(classifier_dir) / MODEL_ONNX).is_file():
        raise EcgflowError(f"--classifier {classifier_dir}: no {MODEL_ONNX} (an export output)")
    return RawECGClassifier(Path(classifier_dir))


def _measure(
    raw_dir: Path,
    row: dict[str, Any],
    model_fs: float,
    with_features: bool,
    classifier: RawECGClassifier | None = None,
) -> tuple[Rhythm, np.ndarray | None, dict[str, float] | None]:
    """One record's rhythm, lead-quality features (``with_features``) and classifier output.

    Measured in mV; the classifier's probabilities are None without one.
    """
    from ecgflow.models.lead_quality import aligned_features
    from ecgflow.signal.rhythm import measure_rhythm  # scipy.signal: only when measuring

    leads = row.get("leads")
    leads = None if leads is None else [str(lead) for lead in leads]
    record = read_record(
        raw_dir / str(row["path"]),
        fs=row.get("fs"),
        leads=leads,
        record_id=str(row["record_id"]),
    )
    rhythm = measure_rhythm(record.signal, record.fs, record.leads)
    probabilities = None if classifier is None else classifier.probabilities(record)
    if not with_features:
        return rhythm, None, probabilities
    features = aligned_features(record.signal, record.fs, record.leads, model_fs)
    return rhythm, features, probabilities


def _common_rate(records: pd.DataFrame) -> float:
    """The sampling rate most records have (the lead-quality model's rate; 100 Hz if unknown)."""
    if "fs" not in records.columns or records.empty:
        return 100.0
    rates = records["fs"].dropna().astype(float)
    return float(rates.mode().min()) if len(rates) else 100.0


def _write_evidence(
    out: dict[str, list[dict[str, Any]]],
    rhythms: dict[str, Rhythm],
    lead_features: dict[str, np.ndarray],
    noise: dict[str, dict[str, str | None]],
    split_of: dict[str, str],
    model_fs: float,
    out_dir: Path,
    classified: dict[str, dict[str, float]] | None = None,
    key: dict[str, ClassifierKey] | None = None,
) -> dict[str, int]:
    """Fit the lead-quality model, write each record's evidence into its conversations.

    ``classified``: the classifier's probabilities by record, stated in the evidence with
    ``key`` (each label's description and threshold).

    The model is fitted on the train split's annotated records; their own evidence uses
    out-of-fold probabilities (5 folds), so training conversations show what the model says
    about records it has not seen, as at evaluation and serving. Writes ``lead_quality.json``
    (with its validation and test AUROC per kind) and ``record_evidence.json``.
    """
    from ecgflow.models.lead_quality import (
        KINDS,
        cross_fitted,
        fit_lead_quality,
        lead_auroc,
        lead_targets,
    )
    from ecgflow.text.evidence import evidence_from, with_evidence

    train = [r for r in lead_features if split_of.get(r) == "train" and r in noise]
    quality: dict[str, np.ndarray] = {}
    counts = {"lead_quality_train_records": len(train)}
    if train:
        x = np.stack([lead_features[r] for r in train])
        y = np.stack([lead_targets(noise[r]) for r in train])
        if np.nansum(y) > 0:
            model = fit_lead_quality(x, y, model_fs)
            others = [r for r in lead_features if r not in set(train)]
            if others:
                p = model.probabilities(np.stack([lead_features[r] for r in others]))
                quality |= dict(zip(others, p, strict=True))
            quality |= dict(zip(train, cross_fitted(x, y, model_fs), strict=True))
            for part in ("val", "test"):
                annotated = [r for r in lead_features if split_of.get(r) == part and r in noise]
                if annotated:
                    model.metrics[part] = lead_auroc(
                        np.stack([quality[r] for r in annotated]),
                        np.stack([lead_targets(noise[r]) for r in annotated]),
                    )
            model.metrics["train_out_of_fold"] = lead_auroc(quality_of(train, quality), y)
            model.save(out_dir / LEAD_QUALITY)
            log.info("build-instructions: lead-quality model: %s", _auroc_line(model.metrics))
    evidence = {}
    for record_id, rhythm in rhythms.items():
        p = quality.get(record_id)
        per_lead = None
        if p is not None:
            per_lead = {
                kind: {LEADS[i]: float(p[i, k]) for i in range(len(LEADS)) if np.isfinite(p[i, k])}
                for k, kind in enumerate(KINDS)
            }
        evidence[record_id] = evidence_from(
            rhythm, per_lead, (classified or {}).get(record_id), key
        )
    texts = {r: e.text() for r, e in evidence.items()}
    for items in out.values():
        for item in items:
            text = texts.get(item["record_id"])
            if text:
                turn = item["conversations"][0]
                turn["value"] = with_evidence(turn["value"], text)
                item["meta"]["evidence"] = text
    _write_json(out_dir / RECORD_EVIDENCE, {r: e.to_json() for r, e in sorted(evidence.items())})
    return counts | {"evidence_records": len(evidence)}


def quality_of(records: list[str], quality: dict[str, np.ndarray]) -> np.ndarray:
    """``[N, 12, 4]`` probabilities of ``records``."""
    return np.stack([quality[r] for r in records])


def _auroc_line(metrics: dict[str, Any]) -> str:
    scores = metrics.get("test") or metrics.get("val") or {}
    return ", ".join(f"{k} AUROC {v['auroc']} (n={v['n']})" for k, v in scores.items())


def _positives(labels: pd.DataFrame, names: list[str]) -> dict[str, list[str]]:
    matrix = labels[names].to_numpy() > 0
    return {
        rid: [n for n, on in zip(names, row, strict=True) if on]
        for rid, row in zip(labels["record_id"], matrix, strict=True)
    }


def _noise_annotations(path: Path) -> dict[str, dict[str, str | None]]:
    """PTB-XL's four noise columns per ecg_id, from the database copied by ingest ({} if none)."""
    if not path.is_file():
        return {}
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if "ecg_id" not in table.columns or not set(NOISE_COLUMNS) <= set(table.columns):
        return {}
    table["ecg_id"] = table["ecg_id"].str.strip()
    return table.set_index("ecg_id")[list(NOISE_COLUMNS)].to_dict(orient="index")


def _record_path(files: Any) -> str:
    """The record's WFDB path relative to the ingest folder (``raw/<header without .hea>``)."""
    names = [str(f) for f in (files.tolist() if isinstance(files, np.ndarray) else files or [])]
    header = next((name for name in names if name.endswith(".hea")), names[0] if names else "")
    return f"{RAW}/{header.removesuffix('.hea')}"


def _add_ecgqa(
    qa_files: list[Path],
    ecg_paths: dict[str, str],
    split_of: dict[str, str],
    out: dict[str, list[dict[str, Any]]],
    skipped: list[dict[str, str]],
) -> dict[str, int]:
    """Imported ECG-QA questions join their record's split (test: held out); others are listed."""
    used = held_out = 0
    for path in qa_files:
        for position, entry in enumerate(read_ecgqa(Path(path))):
            record_id = str(entry["ecg_id"][0])
            part = split_of.get(record_id)
            if record_id not in ecg_paths or part is None:
                reason = f"{path} entry {position}: ecg_id {record_id} is not an ingested record"
                skipped.append({"record_id": record_id, "reason": reason})
            elif part in out:
                out[part].append(ecgqa_instruction(entry, ecg_paths[record_id], position))
                held_out += part == EVALUATION_SPLIT
                used += part != EVALUATION_SPLIT
    return {"ecgqa_used": used, "ecgqa_held_out": held_out}


def _kinds(out: dict[str, list[dict[str, Any]]]) -> list[str]:
    return [item["meta"]["kind"] for items in out.values() for item in items]


def _write_json(path: Path, document: Any) -> None:
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
