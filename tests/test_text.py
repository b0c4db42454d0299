"""Record texts and label prompts (ecgflow.text) on real PTB-XL and CinC ingests and synthetic."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from ecgflow.errors import EcgflowError
from ecgflow.labels.cinc import SCORED_2021
from ecgflow.stages.ingest import IngestParams, ingest
from ecgflow.stages.label import LabelParams, label
from ecgflow.text import TEMPLATES, label_prompts, load_label_def, record_texts


def records_of(folder: Path) -> pd.DataFrame:
    return pd.read_parquet(folder / "records.parquet").set_index("record_id")


def write_records(folder: Path, rows: list[dict]) -> Path:
    """A minimal ingest folder: records.parquet with the columns record_texts reads."""
    (folder / "raw").mkdir(parents=True)
    columns = ["record_id", "dataset", "report", "labels", "scp_codes"]
    frame = pd.DataFrame([{c: row.get(c) for c in columns} for row in rows], columns=columns)
    frame.to_parquet(folder / "records.parquet")
    return folder


# --- PTB-XL --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ptbxl(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ptbxl") / "ingest"
    ingest(IngestParams(source=f"ptbxl:{shared_data / 'ptbxl'}", limit=20, workers=1), out)
    return out


def expected_ptbxl_text(shared: Path, scp_codes: str) -> str:
    """Statement descriptions by likelihood (descending, ties by code), from the original CSV."""
    with (shared / "ptbxl" / "scp_statements.csv").open(newline="") as handle:
        description = {row[""]: row["description"] for row in csv.DictReader(handle)}
    codes = sorted(json.loads(scp_codes).items(), key=lambda item: (-item[1], item[0]))
    sentences = []
    for code, _ in codes:
        text = description[code]
        sentence = text[0].upper() + text[1:] + "."
        if sentence not in sentences:
            sentences.append(sentence)
    return " ".join(sentences)


def test_ptbxl_texts_are_statements_by_likelihood(shared_data: Path, ptbxl: Path) -> None:
    texts = record_texts(ptbxl)
    records = records_of(ptbxl)
    assert list(texts) == records.index.tolist() and len(texts) == 20
    # ecg_id 8: {"ABQRS": 0.0, "IMI": 35.0, "SR": 0.0}, checked by hand against the table
    assert json.loads(records.loc["8", "scp_codes"]) == {"ABQRS": 0.0, "IMI": 35.0, "SR": 0.0}
    assert texts["8"] == "Inferior myocardial infarction. Abnormal QRS. Sinus rhythm."
    assert texts["1"] == (
        "Normal ECG. Low QRS voltages in the frontal and horizontal leads. Sinus rhythm."
    )
    for record_id, scp_codes in records["scp_codes"].items():
        assert texts[record_id] == expected_ptbxl_text(shared_data, scp_codes)


def test_ptbxl_include_report_appends_the_original_report(ptbxl: Path) -> None:
    plain = record_texts(ptbxl)
    with_report = record_texts(ptbxl, include_report=True)
    reports = records_of(ptbxl)["report"]
    assert with_report["2"] == (
        "Normal ECG. Sinus bradycardia. Report: sinusbradykardie sonst normales ekg"
    )
    for record_id, text in plain.items():
        assert with_report[record_id] == f"{text} Report: {' '.join(reports[record_id].split())}"


def test_ptbxl_without_statement_table_fails(ptbxl: Path, tmp_path: Path) -> None:
    copy = tmp_path / "ingest"
    shutil.copytree(ptbxl, copy)
    (copy / "raw" / "scp_statements.csv").unlink()
    with pytest.raises(EcgflowError, match=r"raw/scp_statements\.csv: not found"):
        record_texts(copy)


def test_unknown_codes_ties_and_repeats(shared_data: Path, tmp_path: Path) -> None:
    folder = write_records(
        tmp_path / "ingest",
        [
            {
                "record_id": "a",
                "dataset": "ptbxl",
                "scp_codes": '{"SR": 0.0, "XYZ": 50, "NORM": 50}',
            },
            {"record_id": "b", "dataset": "ptbxl", "scp_codes": "{}", "report": "nur text"},
            {"record_id": "c", "dataset": "ptbxl", "scp_codes": None},
            {"record_id": "d", "dataset": "folder", "labels": ["sinus_rhythm", "sinus_rhythm"]},
            {"record_id": "e", "dataset": "folder", "report": "  Atrial   flutter. "},
            {"record_id": "f", "dataset": "code15", "labels": []},
        ],
    )
    shutil.copy(shared_data / "ptbxl" / "scp_statements.csv", folder / "raw")
    assert record_texts(folder) == {
        "a": "Normal ECG. XYZ. Sinus rhythm.",
        "b": "",
        "c": "",
        "d": "Sinus rhythm.",
        "e": "Atrial flutter.",
        "f": "",
    }
    assert record_texts(folder, include_report=True)["b"] == "Report: nur text"


def test_bad_scp_codes_and_missing_records_fail(tmp_path: Path) -> None:
    with pytest.raises(EcgflowError, match=r"records\.parquet: not found"):
        record_texts(tmp_path)
    folder = write_records(
        tmp_path / "bad", [{"record_id": "x", "dataset": "ptbxl", "scp_codes": "{"}]
    )
    header = ",description,diagnostic,form,rhythm,diagnostic_class,diagnostic_subclass\n"
    (folder / "raw" / "scp_statements.csv").write_text(header)
    with pytest.raises(EcgflowError, match="record x: scp_codes is not JSON"):
        record_texts(folder)


# --- CinC ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cinc(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cinc") / "ingest"
    ingest(IngestParams(source=f"cinc:{shared_data / 'cinc2021'}", workers=1), out)
    return out


def challenge_names(shared: Path) -> dict[str, str]:
    names = {}
    for table in ("dx_mapping_scored.csv", "dx_mapping_unscored.csv"):
        with (shared / "cinc2021" / table).open(newline="") as handle:
            names |= {row["SNOMEDCTCode"]: row["Dx"] for row in csv.DictReader(handle)}
    return names


def test_cinc_texts_are_snomed_names_from_the_challenge_tables(
    shared_data: Path, cinc: Path
) -> None:
    assert (cinc / "raw" / "dx_mapping_unscored.csv").is_file()  # ingest keeps the tables
    texts = record_texts(cinc)
    records = records_of(cinc)
    names = challenge_names(shared_data)
    assert len(texts) == len(records) == 50
    assert texts["E07500"] == "Left atrial enlargement. Sinus bradycardia."
    for record_id, codes in records["labels"].items():
        expected = " ".join(f"{names[c][0].upper()}{names[c][1:]}." for c in codes)
        assert texts[record_id] == expected
    assert "SNOMED CT" not in " ".join(texts.values())


def test_cinc_without_tables_uses_the_builtin_scored_names(cinc: Path, tmp_path: Path) -> None:
    copy = tmp_path / "ingest"
    shutil.copytree(cinc, copy)
    for table in ("dx_mapping_scored.csv", "dx_mapping_unscored.csv"):
        (copy / "raw" / table).unlink()
    texts = record_texts(copy)
    scored = {code for _, codes in SCORED_2021 for code, _ in codes}
    assert texts["E07504"] == "Prolonged qt interval."  # 111975006, scored
    assert texts["E07500"] == "SNOMED CT 67741000119109. Sinus bradycardia."  # first unscored
    for record_id, codes in records_of(copy)["labels"].items():
        unknown = [c for c in codes if c not in scored]
        assert texts[record_id].count("SNOMED CT") == len(unknown)


# --- synthetic -----------------------------------------------------------------------------


def test_synthetic_texts_are_their_reports(tmp_path: Path) -> None:
    out = tmp_path / "ingest"
    ingest(IngestParams(source="synthetic://?n=5&seed=1", workers=1), out)
    texts = record_texts(out)
    reports = records_of(out)["report"]
    assert texts == reports.to_dict()
    assert all(text.endswith(".") and "bpm" in text for text in texts.values())
    assert record_texts(out, include_report=True) == texts


# --- prompts -------------------------------------------------------------------------------


def test_templates() -> None:
    assert 4 <= len(TEMPLATES) <= 6 and len(set(TEMPLATES)) == len(TEMPLATES)
    assert all(template.count("{}") == 1 for template in TEMPLATES)


def test_label_prompts_from_the_label_stage(ptbxl: Path, tmp_path: Path) -> None:
    label(LabelParams(label_set="ptbxl-superdiagnostic"), ptbxl, tmp_path / "labels")
    label_def = load_label_def(tmp_path / "labels")
    prompts = label_prompts(label_def)
    assert list(prompts) == ["NORM", "MI", "STTC", "CD", "HYP"]
    for entry in label_def["labels"]:
        assert len(prompts[entry["name"]]) == len(TEMPLATES)
        assert all(entry["description"] in prompt for prompt in prompts[entry["name"]])
    assert prompts["NORM"][0] == "an ECG showing normal ECG."
    assert prompts["STTC"][1] == "12-lead ECG with ST/T change."


def test_label_prompts_wording() -> None:
    label_def = {
        "labels": [
            {"name": "N", "description": "Normal ECG."},
            {"name": "WPW", "description": "Wolf-Parkinson-White syndrome"},
            {"name": "T", "description": "T-wave abnormality"},
            {"name": "sinus_rhythm", "description": ""},
            {
                "name": "LBBB",
                "description": "complete left bundle branch block; left bundle branch block",
            },
        ]
    }
    first = {name: prompts[0] for name, prompts in label_prompts(label_def).items()}
    assert first == {
        "N": "an ECG showing normal ECG.",
        "WPW": "an ECG showing Wolf-Parkinson-White syndrome.",
        "T": "an ECG showing T-wave abnormality.",
        "sinus_rhythm": "an ECG showing sinus rhythm.",
        "LBBB": "an ECG showing complete left bundle branch block or left bundle branch block.",
    }


def test_load_label_def_errors(tmp_path: Path) -> None:
    with pytest.raises(EcgflowError, match=r"label_def\.json: not found"):
        load_label_def(tmp_path)
    (tmp_path / "label_def.json").write_text("{not json")
    with pytest.raises(EcgflowError, match="not valid JSON"):
        load_label_def(tmp_path)
    (tmp_path / "label_def.json").write_text('{"labels": [{"description": "x"}]}')
    with pytest.raises(EcgflowError, match=r"labels\[0\]"):
        load_label_def(tmp_path)
    with pytest.raises(EcgflowError, match="'labels' list"):
        label_prompts({"label_set": "x"})
