"""build-instructions on real PTB-XL rows (or synthetic records): splits, ECG-QA, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ecgflow.cli import app
from ecgflow.errors import EcgflowError
from ecgflow.manifest import write_manifest
from ecgflow.stages.build_instructions import BuildInstructionsParams, build_instructions
from ecgflow.stages.ingest import IngestParams, ingest
from ecgflow.stages.label import LabelParams, label
from ecgflow.stages.split import SplitParams, split
from ecgflow.text.instructions import parse_leads
from ecgflow.training.gem_data import read_instructions

NOISE = ("static_noise", "burst_noise", "baseline_drift", "electrodes_problems")
ECGQA = "ecg-qa/ptbxl_single_verify_ecg_id_le500.json"


def _prepare(root: Path, source: str, label_set: str) -> tuple[Path, Path, Path]:
    records, labels, splits = root / "records", root / "labels", root / "splits"
    ingest(IngestParams(source=source, workers=1), records)
    label(LabelParams(label_set=label_set), records, labels)
    split(SplitParams(), records, labels, splits)
    return records, labels, splits


@pytest.fixture(scope="module")
def ptbxl(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ...]:
    root = tmp_path_factory.mktemp("gem-data")
    return _prepare(root, f"ptbxl:{shared_data / 'ptbxl'}", "ptbxl-superdiagnostic")


def test_ptbxl_instructions_keep_test_records_out_and_name_noisy_leads(
    ptbxl, tmp_path, shared_data
):
    records, labels, splits = ptbxl
    qa = shared_data / ECGQA
    counts = build_instructions(BuildInstructionsParams(), records, labels, splits, tmp_path, [qa])
    assignment = pd.read_parquet(splits / "split.parquet")
    split_of = dict(zip(assignment["record_id"], assignment["split"], strict=True))
    database = pd.read_csv(records / "raw" / "ptbxl_database.csv", dtype=str, keep_default_na=False)
    annotations = {c: dict(zip(database["ecg_id"], database[c], strict=True)) for c in NOISE}
    seen_kinds = set()
    for part in ("train", "val", "test"):
        items = json.loads((tmp_path / f"{part}.json").read_text())
        assert items
        for item in items:
            record_id = item["record_id"]
            assert split_of[record_id] == part  # test records only ever in test.json
            assert (records / f"{item['ecg']}.hea").is_file()
            seen_kinds.add(item["meta"]["kind"])
            meta, question = item["meta"], item["conversations"][0]["value"]
            if meta["kind"] == "noise" and meta["template_id"] == 26:
                asked = question.splitlines()[-1]  # the question, after the evidence
                lead = asked.split("lead ")[1].split(" ")[0]
                column = meta["attribute"].replace(" ", "_")
                leads = parse_leads(annotations[column][record_id])
                assert item["conversations"][1]["value"] == ("yes" if lead in leads else "no")
    assert seen_kinds == {"noise", "label", "report", "ecgqa", "feature"}
    test_records = sum(s == "test" for s in split_of.values())
    test_items = json.loads((tmp_path / "test.json").read_text())
    assert sum(i["meta"]["kind"] == "ecgqa" for i in test_items) == counts["ecgqa_held_out"]
    assert counts["held_out_records"] == test_records > 0
    assert counts["ecgqa_used"] + counts["ecgqa_held_out"] == 413
    assert counts["ecgqa_held_out"] > 0
    skipped = json.loads((tmp_path / "skipped.json").read_text())
    assert any("leicht" in entry["reason"] for entry in skipped) or counts["skipped"] == len(
        skipped
    )
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["counts"] == counts and str(qa) in manifest["inputs"]
    # evidence: the lead-quality model fitted on train records, its held-out AUROC, the text
    quality = json.loads((tmp_path / "lead_quality.json").read_text())
    assert quality["metrics"]["test"]["baseline_drift"]["n"] > 0
    assert quality["metrics"]["test"]["static_noise"]["auroc"] > 0.6
    assert counts["lead_quality_train_records"] == sum(s == "train" for s in split_of.values())
    evidence = json.loads((tmp_path / "record_evidence.json").read_text())
    for item in test_items:
        text = evidence[item["record_id"]]["text"]
        assert text.startswith("Leads: I ") and item["meta"]["evidence"] == text
        assert item["conversations"][0]["value"].startswith(f"<ecg>\n{text}\n")
    examples, _ = read_instructions(tmp_path / "test.json", {"noise", "ecgqa"})
    assert examples and all(e.question.startswith("<ecg>\n") for e in examples)
    assert not any("Leads:" in e.question for e in examples)
    assert all(e.prompt.startswith(f"<ecg>\n{e.evidence}\n") for e in examples)
    again = tmp_path / "again"
    build_instructions(BuildInstructionsParams(), records, labels, splits, again, [qa])
    assert (again / "train.json").read_bytes() == (tmp_path / "train.json").read_bytes()


def test_synthetic_records_get_label_and_report_questions(tmp_path):
    records, labels, splits = _prepare(tmp_path, "synthetic://?n=40&seed=3", "synthetic")
    counts = build_instructions(
        BuildInstructionsParams(), records, labels, splits, tmp_path / "out"
    )
    assert counts["kind_label"] > 0 and counts["kind_report"] > 0 and counts["kind_feature"] > 0
    assert "kind_noise" not in counts  # no noise annotations outside PTB-XL
    assert not (tmp_path / "out" / "lead_quality.json").exists()  # nothing to fit it on
    items = json.loads((tmp_path / "out" / "train.json").read_text())
    assert all(i["meta"]["evidence"].startswith("Heart rate ") for i in items)


def test_a_classifier_states_its_probabilities_in_every_conversation_and_travels(tmp_path):
    """--classifier: each record's probabilities in its evidence; GEM's reader re-measures them."""
    from datasets import tiny_onnx_export

    from ecgflow.io.readers import read_record
    from ecgflow.mlflow_model import RawECGClassifier
    from ecgflow.models.gem_evidence import EvidenceReader, load_evidence_reader

    records, labels, splits = _prepare(tmp_path, "synthetic://?n=24&seed=6", "synthetic")
    names = ["NORM", "MI", "STTC"]
    export = tiny_onnx_export(
        tmp_path / "export", names, dict.fromkeys(names, 0.5), {"fs": 100.0, "length_s": 1.0}
    )
    write_manifest(export, stage="export", inputs={}, params={}, counts={})
    out = tmp_path / "out"
    counts = build_instructions(
        BuildInstructionsParams(), records, labels, splits, out, classifier_dir=export
    )
    assert counts["classifier_records"] == 24
    assert (out / "classifier" / "model.onnx").is_file()  # finetune-gem ships this copy
    stored = json.loads((out / "record_evidence.json").read_text())
    row = pd.read_parquet(records / "records.parquet").iloc[0]
    record = read_record(records / "raw" / str(row["path"]), record_id=str(row["record_id"]))
    expected = RawECGClassifier(export).probabilities(record)
    got = stored[str(row["record_id"])]["classifier"]
    assert got == pytest.approx(expected, abs=1e-4)
    items = json.loads((out / "train.json").read_text())
    assert all("\nClassifier: " in i["conversations"][0]["value"] for i in items)
    # each label named as its question names it, called at the export's threshold (0.5)
    calls = {n: ("likely" if p >= 0.5 else "unlikely") for n, p in expected.items()}
    line = stored[str(row["record_id"])]["text"].splitlines()[-1]
    assert all(f" {calls[n]} {expected[n]:.2f}" in line for n in list(expected)[:5]), line
    # the GEM folder's copy answers the same for the record's signal in mV
    model_dir = tmp_path / "gem"
    model_dir.mkdir()
    EvidenceReader(None, out / "classifier").save(model_dir)
    reader = load_evidence_reader(model_dir)
    assert reader is not None and reader.classifier_dir == model_dir / "classifier"
    measured = reader.measure(record.signal, record.fs, record.leads)
    assert measured.classifier == pytest.approx(expected, abs=1e-5)
    assert measured.text().splitlines()[-1] == line  # serving states the same words
    with pytest.raises(EcgflowError, match=r"no model\.onnx"):  # an ingest folder is no export
        build_instructions(
            BuildInstructionsParams(), records, labels, splits, out, classifier_dir=records
        )


def test_cli_and_bad_inputs(tmp_path):
    records, labels, splits = _prepare(tmp_path, "synthetic://?n=30&seed=4", "synthetic")
    out = tmp_path / "cli"
    args = ["build-instructions", "--records", str(records), "--labels", str(labels)]
    args += ["--splits", str(splits), "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "instructions: train" in result.output and (out / "val.json").is_file()
    bad_qa = tmp_path / "qa.json"
    bad_qa.write_text('[{"question": "q", "answer": ["no"]}]')
    result = CliRunner().invoke(app, [*args, "--qa", str(bad_qa)])
    assert result.exit_code == 2 and "entry 0 lacks ecg_id" in result.output
    result = CliRunner().invoke(app, [*args, "--noise-questions", "-1"])
    assert result.exit_code == 2 and "noise_questions_per_record" in result.output
    with pytest.raises(EcgflowError, match=r"split\.parquet: not found"):
        build_instructions(BuildInstructionsParams(), records, labels, tmp_path / "none", out)
