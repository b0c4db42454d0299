"""The eval-gem stage: a GEM model's question answering on ECG-QA-style questions.

Inputs: a GEM folder (finetune-gem's ``model/``), a preprocess output prepared like the one it
was trained on (questions about records of ``split``, ``test`` by default, are asked; the
others are listed in ``skipped.json``), question files — ECG-QA's JSON (``question``,
``answer``, ``ecg_id``, ``template_id``, ``attribute``, ``question_type``) or build-instructions'
``test.json`` (its noise, label, feature and ECG-QA questions) — optionally render-images output
(when the model reads images) and a label output.

Questions are de-duplicated by (record, question text): build-instructions' ``test.json`` holds
the test split's ECG-QA questions, which the ECG-QA file holds too; each is scored once (the
later copies are listed in ``skipped.json``).

Scoring: closed-set questions (ECG-QA's *verify* type: yes / no / not sure) are answered by the
candidate with the highest summed log-probability plus the model's calibration offset for the
question's (source, template, attribute) (``calibration.json``; the raw argmax is reported too,
as ``uncalibrated``); the others by greedy generation. Answers match by exact equality after
normalisation (:func:`ecgflow.evaluation.qa.normalise_answer`). The model sees only the signal
(and image), the question text and — for a model trained with evidence (``evidence.json``) —
the record's evidence lines after ``<ecg>`` (build-instructions' ``record_evidence.json`` beside
an instructions file, else measured on the GEM signal with the model's lead-quality model) —
never metadata. ``lead_quality`` reports the per-lead quality model's own AUROC: per kind over
the test split's 48 lead × kind annotations (from build-instructions) and per attribute over
the evaluated lead-level noise questions. ECG-QA and generated questions are reported
separately (``by_source``: accuracy, balanced accuracy over the true answers, AUROC of p(yes), n;
per template and per family); "not sure" is never a true answer, so choosing it is just wrong.
Beside GEM: the **label prior** (the majority answer of the question's (source, template,
attribute) among the training questions, ``answer_prior.json``) and the **evidence-only
baseline** (``evidence_baseline.json``: a logistic regression per family on per-lead signal
statistics and the measured rhythm, no LM; :mod:`ecgflow.models.gem_baseline`; it answers the
open heart-rate question with the measured rate).

With ``labels_dir``: every label of the label set is asked as a yes/no question per evaluated
record, and (``interpret``) a generated interpretation is mapped back to labels by their names
and descriptions; both are scored by macro F1, beside the macro F1 of the classifier whose
probabilities the evidence states (``classifier_macro_f1``, its own tuned thresholds, the same
records).

Output (``out_dir``): ``metrics.json``, ``predictions.json`` (one row per question: id,
record, source, template, truth, model (calibrated and raw), prior and evidence answers,
p(yes)), ``skipped.json``, ``plots/``, ``manifest.json``; the numbers and plots also go to
an MLflow run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import f1_score

from ecgflow import tracking
from ecgflow.artifacts import (
    LABELS,
    METRICS,
    PLOTS,
    PREDICTIONS,
    RECORD_EVIDENCE,
    SKIPPED,
)
from ecgflow.errors import EcgflowError
from ecgflow.evaluation import plots
from ecgflow.evaluation.qa import AnswerPrior, normalise_answer, qa_metrics, qa_report
from ecgflow.manifest import sha256_file, write_manifest, writes_output
from ecgflow.models.gem_baseline import EVIDENCE_BASELINE, load_evidence_baseline
from ecgflow.models.gem_calibration import asked_lead, decide, question_group, yes_probability
from ecgflow.models.gem_evidence import (
    EvidenceSource,
    load_evidence_reader,
    read_record_evidence,
    scale_mv,
)
from ecgflow.models.gem_io import load_gem
from ecgflow.params import EvalGemParams
from ecgflow.stages.finetune_gem import (
    ANSWER_PRIOR,
    EvidenceCache,
    GemDataset,
    gem_batches,
    prior_key,
    score_closed_set,
)
from ecgflow.text import load_label_def
from ecgflow.text.instructions import (
    NOISE_COLUMNS,
    YES_NO,
    ecgqa_instruction,
    label_instructions,
    read_ecgqa,
)
from ecgflow.training.data import ShardRows, preprocess_info
from ecgflow.training.gem_data import GemExample, ImageLookup, RecordSignals, read_instructions

log = logging.getLogger(__name__)

SCORING = (
    "closed-set questions: the candidate answer with the highest summed log-probability "
    "(answer tokens and end of turn) plus the calibration offset of its (source, template, "
    "attribute); open questions: greedy generation; exact match after normalisation (lower "
    "case, no surrounding punctuation, list items sorted); questions de-duplicated by (record, "
    "question); balanced accuracy over the true answers"
)
DESCRIBE = "Describe the findings of this ECG."
#: Kinds asked from an instructions file (free-text reports cannot be scored by exact match).
EVALUATED_KINDS = frozenset({"noise", "label", "feature", "ecgqa"})


@writes_output("eval-gem")
def eval_gem(
    params: EvalGemParams,
    model_dir: Path,
    data_dir: Path,
    qa_files: list[Path],
    out_dir: Path,
    images_dir: Path | None = None,
    labels_dir: Path | None = None,
) -> dict[str, Any]:
    """Evaluate the GEM model in ``model_dir`` (see the module docstring); returns metrics."""
    model_dir, data_dir, out_dir = Path(model_dir), Path(data_dir), Path(out_dir)
    if not qa_files:
        raise EcgflowError("eval-gem: give at least one --qa FILE.json")
    prior = _read_prior(model_dir)
    info = preprocess_info(data_dir)
    splits = [str(s) for s in info.get("splits") or []]
    by_split = {s: ShardRows(data_dir, s) for s in splits}
    split_of = {rid: s for s, rows in reversed(by_split.items()) for rid in rows.record_ids}
    signals = RecordSignals(list(by_split.values()))
    model = load_gem(model_dir)
    images = None
    if model.config.image:
        if images_dir is None:
            raise EcgflowError(f"{model_dir}: this GEM model reads images; pass --images")
        images = ImageLookup(images_dir, model.config.image_size)

    if params.split != "all" and params.split not in by_split:
        raise EcgflowError(f"{data_dir}: no '{params.split}' split (has {', '.join(splits)})")
    examples, skipped = _questions(qa_files, signals, images)
    source = _evidence_source(model_dir, model, qa_files, info)
    if params.split != "all":
        elsewhere = [e for e in examples if split_of[e.record_id] != params.split]
        skipped += [
            {"id": e.id, "reason": f"record {e.record_id} is in the {split_of[e.record_id]} split"}
            for e in elsewhere
        ]
        examples = [e for e in examples if split_of[e.record_id] == params.split]
    if not examples:
        raise EcgflowError(
            f"eval-gem: none of the questions is about a record of {data_dir} "
            f"(split {params.split})"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    examples = _with_evidence(examples, source, signals)
    answers = _answer(model, examples, signals, images, params)
    predicted = answers.decided
    truth = [e.answer for e in examples]
    groups = [question_group(e.kind, e.template_id, e.attribute) for e in examples]
    templates = [prior_key(e) for e in examples]  # "ecgqa:26", never pooled with "generated:26"
    baseline = [prior.predict(prior_key(e), e.attribute) for e in examples]
    metrics: dict[str, Any] = qa_metrics(truth, predicted, templates)
    metrics["calibrated"] = model.calibration is not None
    metrics["by_source"] = qa_report(truth, predicted, groups, answers.p_yes)["by_source"]
    metrics["uncalibrated"] = qa_report(truth, answers.raw, groups, answers.p_yes_raw)
    metrics["label_prior"] = qa_metrics(truth, baseline, templates)
    metrics["label_prior"]["by_source"] = qa_report(truth, baseline, groups)["by_source"]
    evidence = _evidence_answers(model_dir, model, examples, groups, signals, info, source)
    if evidence is None:
        metrics["evidence_baseline"] = {"missing": f"{model_dir / EVIDENCE_BASELINE} not found"}
    else:
        metrics["evidence_baseline"] = qa_report(truth, evidence[0], groups, evidence[1])
        metrics["evidence_baseline"]["uses"] = EVIDENCE_USES
    metrics["lead_quality"] = _lead_quality_scores(source, examples, groups, signals)
    attributes = [f"{g[0]}: {g[1]}: {g[2]}" for g in groups]
    metrics["qa_accuracy_by_attribute"] = qa_metrics(truth, predicted, attributes)[
        "qa_accuracy_by_template"
    ]
    metrics["label_prior"]["qa_accuracy_by_attribute"] = qa_metrics(truth, baseline, attributes)[
        "qa_accuracy_by_template"
    ]
    metrics["scoring"] = SCORING
    metrics["split"] = params.split
    metrics["data_hash"] = questions_hash(examples, info)
    metrics["questions_by_split"] = dict(
        sorted(Counter(split_of[e.record_id] for e in examples).items())
    )
    metrics["n_skipped"] = len(skipped)
    metrics["n_duplicates"] = sum(1 for s in skipped if s.get("duplicate_of"))
    if labels_dir is not None:
        records = sorted({e.record_id for e in examples}, key=_numeric_first)
        metrics["labels"] = _label_scores(
            model, records, signals, images, labels_dir, params, source
        )
    rows = [
        {
            "id": e.id,
            "record_id": e.record_id,
            "source": groups[i][0],
            "template_id": e.template_id,
            "attribute": e.attribute,
            "question": e.question,
            "truth": normalise_answer(e.answer),
            "model": normalise_answer(predicted[i]),
            "model_uncalibrated": normalise_answer(answers.raw[i]),
            "p_yes": _finite(answers.p_yes[i]),
            "prior": baseline[i],
            "evidence": None if evidence is None else normalise_answer(evidence[0][i]),
        }
        for i, e in enumerate(examples)
    ]
    _write_json(out_dir / PREDICTIONS, rows)
    _write_json(out_dir / SKIPPED, skipped)
    if params.plots:
        (out_dir / PLOTS).mkdir(exist_ok=True)
        plots.qa_by_template(
            metrics["qa_accuracy_by_template"],
            metrics["label_prior"]["qa_accuracy_by_template"],
            out_dir / PLOTS / "qa_accuracy_by_template.png",
        )
    metrics["mlflow_run_id"] = _log_to_mlflow(params, metrics, out_dir)
    _write_json(out_dir / METRICS, metrics)
    write_manifest(
        out_dir,
        stage="eval-gem",
        inputs={
            "gem.json": sha256_file(model_dir / "gem.json"),
            "preprocess.json": sha256_file(data_dir / "preprocess.json"),
            **{Path(p).name: sha256_file(Path(p)) for p in qa_files},
        },
        params=params.model_dump(mode="json"),
        counts={"questions": len(examples), "skipped": len(skipped)},
    )
    log.info(
        "eval-gem: %d questions, accuracy %.3f (prior %.3f), balanced %.3f (prior %.3f)",
        len(examples),
        metrics["qa_accuracy"],
        metrics["label_prior"]["qa_accuracy"],
        metrics["qa_balanced_accuracy"],
        metrics["label_prior"]["qa_balanced_accuracy"],
    )
    return metrics


def questions_hash(examples: list[GemExample], info: dict[str, Any]) -> str:
    """sha256 of what was asked (ids, records, questions, answers) and how signals were made.

    The registry compares two GEM versions only when they were evaluated on the same hash.
    """
    digest = hashlib.sha256(json.dumps(info.get("params"), sort_keys=True).encode())
    for e in sorted(examples, key=lambda e: e.id):
        digest.update(json.dumps([e.id, e.record_id, e.question, e.answer]).encode())
    return digest.hexdigest()


def _read_prior(model_dir: Path) -> AnswerPrior:
    path = model_dir / ANSWER_PRIOR
    try:
        return AnswerPrior.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise EcgflowError(f"{path}: not found (--model must be finetune-gem's model/)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EcgflowError(f"{path}: unreadable ({exc})") from None


def _questions(
    qa_files: list[Path], signals: RecordSignals, images: ImageLookup | None
) -> tuple[list[GemExample], list[dict[str, str]]]:
    """Questions of every file, each (record, question) once; the others are skipped.

    Skipped: a question whose record has no signal (or image), and a question already asked
    about the same record (the first copy is kept).

    A file is either ECG-QA's JSON or an instructions file of build-instructions (its
    ``test.json``: every kind but the free-text reports).
    """
    examples: list[GemExample] = []
    skipped: list[dict[str, str]] = []
    seen: dict[tuple[str, str], str] = {}
    for path in qa_files:
        if _is_instructions(Path(path)):
            found, bad = read_instructions(Path(path), EVALUATED_KINDS)
            skipped += bad
        else:
            found = [_ecgqa_example(e, i) for i, e in enumerate(read_ecgqa(Path(path)))]
        for example in found:
            if example.record_id not in signals:
                reason = f"{path}: no signal for record {example.record_id}"
                skipped.append({"id": example.id, "reason": reason})
            elif images is not None and not images.has(example.record_id):
                reason = f"{path}: no image for record {example.record_id}"
                skipped.append({"id": example.id, "reason": reason})
            elif _asked(example) in seen:
                first = seen[_asked(example)]
                reason = f"{path}: the same question about record {example.record_id} as {first}"
                skipped.append({"id": example.id, "reason": reason, "duplicate_of": first})
            else:
                seen[_asked(example)] = example.id
                examples.append(example)
    return examples, skipped


def _asked(example: GemExample) -> tuple[str, str]:
    """What makes two questions the same: the record and the question text (normalised)."""
    text = example.question.replace("<ecg>", " ").replace("<image>", " ")
    return example.record_id, " ".join(text.lower().split())


def _is_instructions(path: Path) -> bool:
    """Whether ``path`` holds build-instructions' conversations (not ECG-QA entries)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EcgflowError(f"{path}: not found (--qa)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EcgflowError(f"{path}: unreadable ({exc})") from None
    return (
        isinstance(data, list)
        and bool(data)
        and isinstance(data[0], dict)
        and ("conversations" in data[0])
    )


def _ecgqa_example(entry: dict[str, Any], position: int) -> GemExample:
    item = ecgqa_instruction(entry, "", position)
    meta = item["meta"]
    return GemExample(
        id=item["id"],
        record_id=item["record_id"],
        question=item["conversations"][0]["value"],
        answer=item["conversations"][1]["value"],
        kind="ecgqa",
        template_id=meta["template_id"],
        attribute=meta["attribute"],
        candidates=tuple(meta["candidates"]) if meta["candidates"] else None,
    )


@dataclass
class Answers:
    """GEM's answers in the examples' order: decided (calibrated) and raw, with p(yes)."""

    decided: list[str]
    raw: list[str]
    p_yes: list[float]
    p_yes_raw: list[float]


def _answer(
    model: Any,
    examples: list[GemExample],
    signals: RecordSignals,
    images: ImageLookup | None,
    params: EvalGemParams,
) -> Answers:
    """Closed-set answers by calibrated likelihood, open ones by generation."""
    n = len(examples)
    out = Answers([""] * n, [""] * n, [math.nan] * n, [math.nan] * n)
    closed = [i for i, e in enumerate(examples) if e.candidates]
    open_ = [i for i, e in enumerate(examples) if not e.candidates]
    with torch.no_grad():
        if closed:
            dataset = GemDataset([examples[i] for i in closed], signals, images)
            scored = score_closed_set(model, dataset, torch.device("cpu"), params.batch_size)
            for i, scores in zip(closed, scored, strict=True):
                e = examples[i]
                options = list(e.candidates or ())
                group = question_group(e.kind, e.template_id, e.attribute)
                offsets = model.offsets(e.question, group)
                out.decided[i], p = decide(options, scores, offsets)
                out.raw[i], p_raw = decide(options, scores)
                out.p_yes[i] = yes_probability(options, p)
                out.p_yes_raw[i] = yes_probability(options, p_raw)
        if open_:
            generated = _generate(model, [examples[i] for i in open_], signals, images, params)
            for i, text in zip(open_, generated, strict=True):
                out.decided[i] = out.raw[i] = text
    return out


#: What the evidence-only baseline reads (metrics.json says it beside its scores).
EVIDENCE_USES = (
    "per lead: log std, log first-difference std, log range of the 0.2 s moving average, "
    "high-frequency power share (ecgflow.signal.quality.noise_ratio), first-difference "
    "zero-crossing rate; per record: heart rate, RR CV, QRS axis (ecgflow.signal.rhythm); for "
    "noise questions the per-lead quality model's p of the asked kind (the evidence text's) at "
    "the asked lead, its maximum and mean over leads; a "
    "logistic regression per (source, template, attribute) fitted on the training questions"
)


def _evidence_answers(
    model_dir: Path,
    model: Any,
    examples: list[GemExample],
    groups: list[tuple[str, str, str]],
    signals: RecordSignals,
    info: dict[str, Any],
    source: EvidenceSource,
) -> tuple[list[str], list[float]] | None:
    """The evidence-only baseline's answers and p(yes), or None when the model has none."""
    baseline = load_evidence_baseline(model_dir)
    if baseline is None:
        return None
    cache = EvidenceCache(signals, float(info["fs"]), list(model.config.leads), source)
    answers, p_yes = [], []
    for e, group in zip(examples, groups, strict=True):
        features = cache.features(e)
        if e.candidates:
            answer, p = baseline.predict(group, features, list(e.candidates))
        elif e.kind == "feature" and e.attribute == "heart rate":
            rate = cache.evidence(e.record_id).heart_rate_bpm
            answer, p = (f"{round(rate)} bpm" if math.isfinite(rate) else ""), math.nan
        else:
            answer, p = "", math.nan
        answers.append(answer)
        p_yes.append(p)
    return answers, p_yes


def _evidence_source(
    model_dir: Path, model: Any, qa_files: list[Path], info: dict[str, Any]
) -> EvidenceSource:
    """Evidence by record: build-instructions' (beside an instructions file), else measured.

    Measured with the model's own lead-quality model (``evidence.json``) on the GEM signal;
    a model trained without evidence gets none (``source.reader`` is None).
    """
    stored = {}
    for path in qa_files:
        if _is_instructions(Path(path)):
            stored |= read_record_evidence(Path(path).parent / RECORD_EVIDENCE)
    reader = load_evidence_reader(model_dir)
    leads = list(model.config.leads)
    return EvidenceSource(stored, reader, float(info["fs"]), leads, scale_mv(info))


def _signal_of(signals: RecordSignals, record_id: str) -> Callable[[], np.ndarray]:
    """A reader of the record's GEM signal, for evidence that is measured only when not stored."""
    return lambda: signals.get(record_id).numpy()


def _with_evidence(
    examples: list[GemExample], source: EvidenceSource, signals: RecordSignals
) -> list[GemExample]:
    """Each example with its record's evidence text when the model reads evidence, else none."""
    if source.reader is None:
        return [replace(e, evidence=None) for e in examples]
    out = []
    for e in examples:
        if e.evidence is None:
            found = source.evidence(e.record_id, _signal_of(signals, e.record_id))
            e = replace(e, evidence=None if found is None else found.text())
        out.append(e)
    return out


def _lead_quality_scores(
    source: EvidenceSource,
    examples: list[GemExample],
    groups: list[tuple[str, str, str]],
    signals: RecordSignals,
) -> dict[str, Any]:
    """The per-lead quality model's own scores.

    ``build_instructions``: its lead-level AUROC per kind on the test split's annotations (all
    48 targets per record, from ``lead_quality.json``); ``questions``: the AUROC of its p for
    the asked lead and kind over this evaluation's lead-level noise questions, per source and
    attribute, with n and positives.
    """
    from sklearn.metrics import roc_auc_score

    from ecgflow.models.lead_quality import KINDS

    kind_of = {NOISE_COLUMNS[k]: i for i, k in enumerate(KINDS)}
    scored: dict[str, tuple[list[int], list[float]]] = {}
    for e, group in zip(examples, groups, strict=True):
        lead = asked_lead(e.question, source.leads)
        if e.attribute not in kind_of or lead is None or normalise_answer(e.answer) not in YES_NO:
            continue
        quality = source.quality(e.record_id, _signal_of(signals, e.record_id))
        if quality is None:
            continue
        truth, p = scored.setdefault(f"{group[0]}: {e.attribute}", ([], []))
        truth.append(int(normalise_answer(e.answer) == "yes"))
        p.append(float(quality[lead, kind_of[e.attribute]]))
    questions = {
        key: {
            "auroc": float(roc_auc_score(y, p)) if 0 < sum(y) < len(y) else None,
            "n": len(y),
            "positives": sum(y),
        }
        for key, (y, p) in sorted(scored.items())
    }
    model = None if source.reader is None else source.reader.lead_quality
    stored = None if model is None else model.metrics.get("test")
    return {"build_instructions_test": stored, "questions": questions}


def _finite(value: float) -> float | None:
    return round(value, 6) if math.isfinite(value) else None


def _generate(
    model: Any,
    examples: list[GemExample],
    signals: RecordSignals,
    images: ImageLookup | None,
    params: EvalGemParams,
) -> list[str]:
    dataset = GemDataset(examples, signals, images)
    out: list[str] = []
    for _, batch in gem_batches(dataset, params.batch_size, torch.device("cpu")):
        out += model.generate(
            batch["signals"], batch["questions"], batch["images"], params.max_new_tokens
        )
    return out


def _label_scores(
    model: Any,
    records: list[str],
    signals: RecordSignals,
    images: ImageLookup | None,
    labels_dir: Path,
    params: EvalGemParams,
    source: EvidenceSource,
) -> dict[str, Any]:
    """Macro F1 of the labels as answered by yes/no questions and read from interpretations."""
    label_def = load_label_def(labels_dir)
    names = [str(entry["name"]) for entry in label_def["labels"]]
    table = pd.read_parquet(labels_dir / LABELS)
    table = table.set_index(table["record_id"].astype(str))
    records = [r for r in records if r in table.index]
    if not records:
        return {"n_records": 0}
    truth = table.loc[records, names].to_numpy(dtype=int)
    questions: list[GemExample] = []
    for record_id in records:
        for item in label_instructions(record_id, "", [], label_def):
            questions.append(
                GemExample(
                    id=item["id"],
                    record_id=record_id,
                    question=item["conversations"][0]["value"],
                    answer="",
                    kind="label",
                    attribute=item["meta"]["attribute"],
                    candidates=tuple(item["meta"]["candidates"]),
                )
            )
    questions = _with_evidence(questions, source, signals)
    chosen = _answer(model, questions, signals, images, params).decided
    asked = np.array([a == "yes" for a in chosen], dtype=int).reshape(len(records), len(names))
    result: dict[str, Any] = {
        "n_records": len(records),
        "labels": names,
        "question_macro_f1": float(f1_score(truth, asked, average="macro", zero_division=0)),
    }
    decided = _classifier_decisions(source, records, names, signals)
    if decided is not None:  # the classifier the evidence states, on the same records
        result["classifier_macro_f1"] = float(
            f1_score(truth, decided, average="macro", zero_division=0)
        )
    if params.interpret:
        describe = [
            GemExample(id=f"{r}-describe", record_id=r, question=DESCRIBE, answer="", kind="report")
            for r in records
        ]
        texts = _generate(model, _with_evidence(describe, source, signals), signals, images, params)
        mentioned = np.array([_mentions(t, label_def) for t in texts], dtype=int)
        result["interpretation_macro_f1"] = float(
            f1_score(truth, mentioned, average="macro", zero_division=0)
        )
        result["interpretation_examples"] = texts[:5]
    return result


def _classifier_decisions(
    source: EvidenceSource, records: list[str], names: list[str], signals: RecordSignals
) -> np.ndarray | None:
    """``[records, labels]`` decisions of the evidence's classifier at its tuned thresholds.

    None when the model's evidence states no classifier (or not for every record and label).
    """
    classifier = None if source.reader is None else source.reader.classifier()
    if classifier is None:
        return None
    thresholds = dict(zip(classifier.labels, classifier.thresholds.tolist(), strict=True))
    rows = []
    for record_id in records:
        evidence = source.evidence(record_id, _signal_of(signals, record_id))
        stated = None if evidence is None else evidence.classifier
        if not stated or any(n not in stated or n not in thresholds for n in names):
            return None
        rows.append([stated[n] >= float(thresholds[n]) for n in names])
    return np.array(rows, dtype=int)


def _mentions(text: str, label_def: dict[str, Any]) -> list[bool]:
    """Per label, whether ``text`` names it (its name as a word, or its description)."""
    lowered = text.lower()
    out = []
    for entry in label_def["labels"]:
        name = str(entry["name"])
        phrases = [p.strip().lower() for p in str(entry.get("description") or "").split(";")]
        by_name = re.search(rf"\b{re.escape(name.lower())}\b", lowered) is not None
        out.append(by_name or any(p and p in lowered for p in phrases))
    return out


def headline(metrics: dict[str, Any]) -> dict[str, float]:
    """The numbers of ``metrics.json`` that MLflow and KFP show: model, baselines, per source."""
    prior = metrics["label_prior"]
    flat = {
        "qa_accuracy": metrics["qa_accuracy"],
        "qa_balanced_accuracy": metrics["qa_balanced_accuracy"],
        "prior_qa_accuracy": prior["qa_accuracy"],
        "prior_qa_balanced_accuracy": prior["qa_balanced_accuracy"],
        "n_questions": metrics["n_questions"],
    }
    reports = {
        "": metrics.get("by_source") or {},
        "prior_": prior.get("by_source") or {},
        "uncalibrated_": (metrics.get("uncalibrated") or {}).get("by_source") or {},
        "evidence_": (metrics.get("evidence_baseline") or {}).get("by_source") or {},
    }
    for prefix, by_source in reports.items():
        for source, entry in by_source.items():
            for key in ("accuracy", "balanced_accuracy", "auroc"):
                if entry.get(key) is not None:
                    flat[f"{prefix}{source}_qa_{key}"] = entry[key]
    labels = metrics.get("labels") or {}
    shown = ("question_macro_f1", "interpretation_macro_f1", "classifier_macro_f1")
    flat |= {k: labels[k] for k in shown if k in labels}
    return flat


def _log_to_mlflow(params: EvalGemParams, metrics: dict[str, Any], out_dir: Path) -> str:
    run_id = tracking.start_run(params.experiment, "eval-gem")
    try:
        flat = headline(metrics)
        tracking.log_metrics(flat, step=0)
        if (out_dir / PLOTS).is_dir():
            tracking.log_artifacts(out_dir / PLOTS, "plots")
    finally:
        tracking.end_run()
    return run_id


def _numeric_first(record_id: str) -> tuple[int, str]:
    return (int(record_id), "") if record_id.isdigit() else (1 << 62, record_id)


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
