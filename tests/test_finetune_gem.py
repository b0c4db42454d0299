"""finetune-gem → eval-gem end to end on a handful of records (real PTB-XL + ECG-QA, or synthetic).

With ../shared the records are PTB-XL 1–60 and the questions ECG-QA's own about them; without
it, synthetic records and ECG-QA-format questions written for them. Training is one tiny epoch:
these tests check the plumbing and the contracts, not the accuracy (benchmarks/gem.py does).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import SHARED_DATA
from typer.testing import CliRunner

from ecgflow.cli import app
from ecgflow.models.gem_io import load_gem
from ecgflow.params import EvalGemParams, FinetuneGemParams, TrainClipParams
from ecgflow.stages.build_instructions import BuildInstructionsParams, build_instructions
from ecgflow.stages.eval_gem import eval_gem
from ecgflow.stages.finetune_gem import GemPaths, finetune_gem
from ecgflow.stages.ingest import IngestParams, ingest
from ecgflow.stages.label import LabelParams, label
from ecgflow.stages.preprocess import PreprocessParams, preprocess
from ecgflow.stages.split import SplitParams, split
from ecgflow.stages.train_clip import train_clip

ECGQA = "ecg-qa/ptbxl_single_verify_ecg_id_le500.json"
TINY_TRAIN = {"epochs": 1, "batch_size": 4, "log_every": 1}


def _qa_file(root: Path, shared: Path, record_ids: list[str]) -> Path:
    """ECG-QA's questions about the records, or ECG-QA-format ones for synthetic records."""
    path = root / "qa.json"
    wanted = set(record_ids)
    if (shared / ECGQA).is_file():
        entries = json.loads((shared / ECGQA).read_text())
        entries = [e for e in entries if str(e["ecg_id"][0]) in wanted][:12]
    else:
        entries = [
            {
                "template_id": 26,
                "question_type": "single-verify",
                "attribute": ["static noise"],
                "question": f"Does lead {lead} show any static noise on this ECG?",
                "answer": [answer],
                "ecg_id": [record_id],
                "sample_id": k,
            }
            for k, (record_id, lead, answer) in enumerate(
                (r, lead, a) for r in record_ids for lead, a in (("I", "no"), ("V1", "yes"))
            )
        ]
    path.write_text(json.dumps(entries))
    return path


def _few_generated(root: Path, tmp_path: Path) -> Path:
    """build-instructions' test.json cut to its ECG-QA and 24 noise / feature questions."""
    entries = json.loads((root / "instructions" / "test.json").read_text())
    ecgqa = [e for e in entries if e["meta"]["kind"] == "ecgqa"]
    generated = [e for e in entries if e["meta"]["kind"] in ("noise", "feature")][:24]
    path = tmp_path / "test-few.json"
    path.write_text(json.dumps(ecgqa + generated))
    return path


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gem_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every stage from ingest to finetune-gem on ~60 records, once for the module."""
    shared = SHARED_DATA
    root = tmp_path_factory.mktemp("gem")
    if (shared / "ptbxl").is_dir():
        source, label_set = f"ptbxl:{shared / 'ptbxl'}", "ptbxl-superdiagnostic"
    else:
        source, label_set = "synthetic://?n=60&seed=5&fs=100", "synthetic"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        ingest(IngestParams(source=source, limit=60, workers=1), root / "records")
        label(LabelParams(label_set=label_set), root / "records", root / "labels")
        split(
            SplitParams(ratios=(0.6, 0.2, 0.2)), root / "records", root / "labels", root / "split"
        )
        preprocess(PreprocessParams(workers=1), root / "records", root / "split", root / "data")
        gem_signal = PreprocessParams(workers=1, baseline=False, bandpass=None, normalise="scale")
        preprocess(gem_signal, root / "records", root / "split", root / "gem-data")
        # the ingested record ids (PTB-XL: the ecg_id; synthetic: syn00001, ...)
        ids = [str(r) for r in pd.read_parquet(root / "records" / "records.parquet")["record_id"]]
        qa = _qa_file(root, shared, sorted(ids))
        build_instructions(
            BuildInstructionsParams(noise_questions_per_record=4),
            root / "records",
            root / "labels",
            root / "split",
            root / "instructions",
            [qa],
        )
        clip = TrainClipParams.model_validate(
            {"model": {"encoder": {"width": 8, "depth": 1}, "embed_dim": 16}, "train": TINY_TRAIN}
        )
        train_clip(clip, root / "data", root / "records", root / "clip")
        params = FinetuneGemParams.model_validate(
            {
                "model": {"lead_width": 8, "tower_width": 32, "lora_r": 4},
                "train": TINY_TRAIN,
                "epoch_samples": 8,
                "eval_questions": 6,
            }
        )
        paths = GemPaths(
            root / "clip", root / "gem-data", root / "instructions", None, root / "gem"
        )
        metrics = finetune_gem(params, paths)
    return {"root": root, "qa": qa, "metrics": metrics, **{k: root / k for k in ("gem", "labels")}}


def test_finetune_gem_writes_a_self_contained_model(gem_run):
    out = gem_run["gem"]
    metrics = gem_run["metrics"]
    assert metrics["best_epoch"] == 0
    best = metrics["best"]
    for key in ("qa_accuracy", "qa_balanced_accuracy", "prior_qa_accuracy"):
        assert 0.0 <= best[key] <= 1.0
    model_dir = out / "model"
    for name in (
        "gem.json",
        "towers.safetensors",
        "adapter/adapter_model.safetensors",
        "adapter/adapter_config.json",
        "tokenizer/tokenizer.json",
        "preprocess.json",
        "answer_prior.json",
        "calibration.json",
        "evidence_baseline.json",
        "evidence.json",
    ):
        assert (model_dir / name).is_file(), name
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["train_instructions"] > 0
    assert (out / "checkpoints" / "last.pt").is_file()
    skipped = json.loads((out / "skipped.json").read_text())
    assert isinstance(skipped, list)
    model = load_gem(model_dir)
    assert model.config.encoder.width == 8 and model.config.lora_r == 4
    assert model.calibration is not None  # fitted on the val questions, applied by choose
    baseline = json.loads((model_dir / "evidence_baseline.json").read_text())
    assert baseline["kind"] == "gem-evidence-baseline" and baseline["families"]
    assert "p_asked_kind_asked_lead" in baseline["features"]["quality"]
    # the prompts carried evidence: the model measures it the same way at eval and serving
    assert model.evidence_reader is not None
    if (SHARED_DATA / "ptbxl").is_dir():  # lead annotations: the lead-quality model beside it
        assert (model_dir / "lead_quality.json").is_file()
        assert model.evidence_reader.lead_quality is not None
        assert {"lead_quality.json", "record_evidence.json"} <= set(manifest["inputs"])


def test_eval_gem_scores_the_questions_beside_the_label_prior(gem_run, tmp_path):
    root = gem_run["root"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        metrics = eval_gem(
            EvalGemParams(max_new_tokens=4, split="all"),
            gem_run["gem"] / "model",
            root / "gem-data",
            [gem_run["qa"], _few_generated(root, tmp_path), gem_run["qa"]],
            tmp_path / "eval",
            labels_dir=gem_run["labels"],
        )
    questions = json.loads(gem_run["qa"].read_text())
    # the ECG-QA file given twice (and test.json's copies of its test questions): each once
    skipped = json.loads((tmp_path / "eval" / "skipped.json").read_text())
    predictions = json.loads((tmp_path / "eval" / "predictions.json").read_text())
    asked = {(p["record_id"], p["question"]) for p in predictions}
    assert len(asked) == len(predictions) == metrics["n_questions"]
    ecgqa_ids = {p["id"] for p in predictions if p["id"].startswith("ecgqa-")}
    assert ecgqa_ids and len(ecgqa_ids) <= len(questions)
    again = [s for s in skipped if s.get("duplicate_of") in ecgqa_ids]
    assert len(again) >= len(ecgqa_ids)  # at least the third file's copy of each
    assert metrics["n_duplicates"] == sum(1 for s in skipped if s.get("duplicate_of"))
    # ECG-QA and generated questions are reported apart, with both baselines beside GEM
    assert set(metrics["by_source"]) == {"ecgqa", "generated"}
    for source, entry in metrics["by_source"].items():
        assert entry["n"] == sum(p["source"] == source for p in predictions)
        assert entry["by_template"] and "balanced_accuracy" in entry and "auroc" in entry
    assert set(metrics["evidence_baseline"]["by_source"]) == {"ecgqa", "generated"}
    assert "logistic regression" in metrics["evidence_baseline"]["uses"]
    assert "quality model" in metrics["evidence_baseline"]["uses"]
    if (SHARED_DATA / "ptbxl").is_dir():  # the lead-quality model's own scores
        lead_quality = metrics["lead_quality"]
        assert lead_quality["build_instructions_test"]["static_noise"]["n"] > 0
        assert any(v["n"] > 0 for v in lead_quality["questions"].values())
    assert set(metrics["label_prior"]["by_source"]) == {"ecgqa", "generated"}
    assert metrics["calibrated"] is True and "by_source" in metrics["uncalibrated"]
    for key in ("qa_accuracy", "qa_balanced_accuracy"):
        assert 0.0 <= metrics[key] <= 1.0
        assert 0.0 <= metrics["label_prior"][key] <= 1.0
    assert metrics["qa_accuracy_by_template"]
    assert "log-probability" in metrics["scoring"]
    assert sum(metrics["questions_by_split"].values()) == metrics["n_questions"]
    assert metrics["split"] == "all" and len(metrics["data_hash"]) == 64
    ecgqa = [p for p in predictions if p["source"] == "ecgqa"]
    assert {p["model"] for p in ecgqa} <= {"yes", "no", "not sure"}
    hits = sum(p["model"] == p["truth"] for p in predictions)
    assert hits / len(predictions) == pytest.approx(metrics["qa_accuracy"])
    assert 0.0 <= metrics["labels"]["question_macro_f1"] <= 1.0
    assert "interpretation_macro_f1" in metrics["labels"]
    assert (tmp_path / "eval" / "plots" / "qa_accuracy_by_template.png").is_file()


def test_cli_runs_eval_gem_and_names_bad_inputs(gem_run, tmp_path):
    runner = CliRunner()
    root = gem_run["root"]
    result = runner.invoke(
        app,
        [
            "eval-gem",
            "--model",
            str(tmp_path / "missing"),
            "--data",
            str(root / "gem-data"),
            "--qa",
            str(gem_run["qa"]),
            "--out",
            str(tmp_path / "e"),
        ],
    )
    assert result.exit_code == 2
    assert "answer_prior.json" in result.output or "missing" in result.output
    bad = tmp_path / "bad.json"
    bad.write_text('[{"question": "x"}]')
    result = runner.invoke(
        app,
        [
            "finetune-gem",
            "--encoder",
            str(root / "clip"),
            "--data",
            str(root / "gem-data"),
            "--instructions",
            str(tmp_path / "nothing"),
            "--out",
            str(tmp_path / "g"),
        ],
    )
    assert result.exit_code == 2
    assert "train.json" in result.output
