"""GEM's evidence without the LM: the per-lead quality model and the evidence-only baseline.

Builds, in a temporary folder, ingest → label → split (PTB-XL's strat_fold: patient-disjoint)
→ preprocess (GEM's signal: as recorded, mV) → build-instructions (evidence on, ECG-QA
questions when given) from a PTB-XL folder, then reports on the held-out test split:

  lead quality   the per-lead quality model's lead-level AUROC per kind on the val and test
                 records (all 48 lead × kind targets per record), with n and positives
  baseline       the evidence-only baseline (a logistic regression per question family,
                 :mod:`ecgflow.models.gem_baseline`) fitted on the training questions, without
                 and with the lead-quality probabilities among its features, beside the label
                 prior: accuracy, balanced accuracy and AUROC of p(yes), ECG-QA and generated
                 questions apart

Usage: python benchmarks/gem_evidence.py --ptbxl ../shared/data/ptbxl
       [--ecgqa ../shared/data/ecg-qa/ptbxl_single_verify_ecg_id_le500.json] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ecgflow.evaluation.qa import qa_report
from ecgflow.models.gem_baseline import fit_evidence_baseline
from ecgflow.models.gem_calibration import question_group
from ecgflow.models.gem_evidence import EvidenceSource, read_record_evidence
from ecgflow.params import PreprocessParams
from ecgflow.stages.build_instructions import BuildInstructionsParams, build_instructions
from ecgflow.stages.finetune_gem import EvidenceCache, answer_prior, prior_key
from ecgflow.stages.ingest import IngestParams, ingest
from ecgflow.stages.label import LabelParams, label
from ecgflow.stages.preprocess import preprocess
from ecgflow.stages.split import SplitParams, split
from ecgflow.training.data import ShardRows, preprocess_info
from ecgflow.training.gem_data import RecordSignals, read_instructions

KINDS = {"noise", "feature", "label", "ecgqa"}


def prepare(root: Path, ptbxl: Path, ecgqa: Path | None, limit: int | None) -> None:
    """Every stage up to build-instructions in ``root``."""
    ingest(IngestParams(source=f"ptbxl:{ptbxl}", limit=limit, workers=1), root / "records")
    label(LabelParams(label_set="ptbxl-superdiagnostic"), root / "records", root / "labels")
    split(SplitParams(), root / "records", root / "labels", root / "split")
    signal = PreprocessParams(workers=1, baseline=False, bandpass=None, normalise="scale")
    preprocess(signal, root / "records", root / "split", root / "data")
    build_instructions(
        BuildInstructionsParams(),
        root / "records",
        root / "labels",
        root / "split",
        root / "instructions",
        [ecgqa] if ecgqa else [],
    )


def baseline_scores(root: Path) -> dict[str, Any]:
    """The evidence-only baseline without and with lead quality, and the label prior."""
    info = preprocess_info(root / "data")
    leads = [str(c) for c in info["channels"]]
    signals = RecordSignals(
        [ShardRows(root / "data", s) for s in ("train", "val", "test") if s in info["splits"]]
    )
    train, _ = read_instructions(root / "instructions" / "train.json", KINDS)
    test, _ = read_instructions(root / "instructions" / "test.json", KINDS)
    train = [e for e in train if e.candidates and e.record_id in signals]
    test = [e for e in test if e.candidates and e.record_id in signals]
    stored = read_record_evidence(root / "instructions" / "record_evidence.json")
    source = EvidenceSource(stored, None, float(info["fs"]), leads, 1.0)
    truth = [e.answer for e in test]
    groups = [question_group(e.kind, e.template_id, e.attribute) for e in test]
    prior = answer_prior(train)
    out: dict[str, Any] = {
        "label prior": qa_report(
            truth, [prior.predict(prior_key(e), e.attribute) for e in test], groups
        )
    }
    for name, with_quality in (("without lead quality", None), ("with lead quality", source)):
        cache = EvidenceCache(signals, float(info["fs"]), leads, with_quality)
        x = np.stack([cache.features(e) for e in train])
        fitted = fit_evidence_baseline(
            [question_group(e.kind, e.template_id, e.attribute) for e in train],
            x,
            [e.answer for e in train],
        )
        answers, p_yes = [], []
        for e, group in zip(test, groups, strict=True):
            answer, p = fitted.predict(group, cache.features(e), list(e.candidates or ()))
            answers.append(answer)
            p_yes.append(p)
        out[name] = qa_report(truth, answers, groups, p_yes)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ptbxl", type=Path, required=True)
    parser.add_argument("--ecgqa", type=Path)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--keep", type=Path, help="build here instead of a temporary folder")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        if not (root / "instructions" / "test.json").is_file():
            prepare(root, args.ptbxl, args.ecgqa, args.limit)
        quality = json.loads((root / "instructions" / "lead_quality.json").read_text())
        fitted_on = quality["metrics"]["train_out_of_fold"]["static_noise"]["records"]
        print(f"lead quality: fitted at {quality['fs']:g} Hz on {fitted_on} train records")
        for part in ("val", "test"):
            for kind, s in quality["metrics"].get(part, {}).items():
                auroc = "n/a" if s["auroc"] is None else f"{s['auroc']:.3f}"
                print(
                    f"  {part:4s} {kind:20s} AUROC {auroc:>5s}  leads {s['n']:5d}  "
                    f"positive {s['positives']:4d}  records {s['records']}"
                )
        scores = baseline_scores(root)
        for source in ("ecgqa", "generated"):
            print(f"{source} questions (test split)")
            for name, report in scores.items():
                entry = report["by_source"].get(source)
                if entry is None:
                    continue
                auroc = entry.get("auroc")
                auroc_text = "  n/a" if auroc is None or auroc != auroc else f"{auroc:.3f}"
                print(
                    f"  {name:22s} n {entry['n']:5d}  accuracy {entry['accuracy']:.3f}  "
                    f"balanced {entry['balanced_accuracy']:.3f}  AUROC {auroc_text}"
                )
    print(f"wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
