"""Instruction builder: PTB-XL noise annotations → lead-level questions, ECG-QA import."""

from __future__ import annotations

import csv
import json
import random
import re
from pathlib import Path

import pytest

from ecgflow.errors import EcgflowError
from ecgflow.text.instructions import (
    ANY_NOISE,
    LEADS,
    NOISE_COLUMNS,
    LeadParseError,
    ecgqa_instruction,
    label_instructions,
    noise_instructions,
    parse_leads,
    read_ecgqa,
    report_instruction,
)

ECGQA = "ecg-qa/ptbxl_single_verify_ecg_id_le500.json"
_LEAD = re.compile(r"\blead (aVR|aVL|aVF|V\d+|III|II|I)\b")


def _lead_of(question: str) -> str | None:
    found = _LEAD.search(question)
    return found.group(1) if found else None


@pytest.mark.parametrize(
    ("text", "leads"),
    [
        (" , I-AVR,  ", ["I", "II", "III", "aVR"]),
        (" , alles,  ", list(LEADS)),
        ("V2,3", ["V2", "V3"]),
        (", V1V6", ["V1", "V6"]),
        ("v5-6,", ["V5", "V6"]),
        (", I,II,AVR,AVL.AVF,V1,", ["I", "II", "aVR", "aVL", "aVF", "V1"]),
        (", II,III,AVF-V6", ["II", "III", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]),
        (", I,III-AVR,", ["I", "III", "aVR"]),
        ("", []),
        (None, []),
    ],
)
def test_parse_leads_reads_ptbxl_annotation_forms(text, leads):
    assert parse_leads(text) == leads


@pytest.mark.parametrize("text", [", leicht,", ", 1", "X-Y"])
def test_parse_leads_refuses_what_names_no_lead(text):
    with pytest.raises(LeadParseError, match="in"):
        parse_leads(text)


def test_noise_questions_name_the_annotated_leads():
    annotations = {"static_noise": " , I-AVR,  ", "burst_noise": "V5", "baseline_drift": ""}
    annotations["electrodes_problems"] = None
    items, problems = noise_instructions("7", "raw/7", annotations, random.Random(0), 10_000)
    assert problems == []
    answers = {}
    for item in items:
        meta, (human, gpt) = item["meta"], item["conversations"]
        assert human["value"].startswith("<ecg>\n") and gpt["from"] == "gpt"
        lead = _lead_of(human["value"])
        answers[(meta["template_id"], meta["attribute"], lead)] = gpt["value"]
    assert answers[(26, "static noise", "aVR")] == "yes"
    assert answers[(26, "static noise", "aVL")] == "no"
    assert answers[(26, "burst noise", "V5")] == "yes"
    assert answers[(28, ANY_NOISE, "V5")] == "yes"
    assert answers[(28, ANY_NOISE, "V6")] == "no"
    assert answers[(27, "baseline drift", None)] == "no"
    assert answers[(27, "static noise", None)] == "yes"
    assert len(items) == 12 * 5 + 4


def test_an_unreadable_annotation_is_reported_not_guessed():
    annotations = dict.fromkeys(NOISE_COLUMNS, "")
    annotations["static_noise"] = ", leicht,"
    items, problems = noise_instructions("9", "raw/9", annotations, random.Random(0), 10_000)
    assert len(problems) == 1 and "record 9: static_noise" in problems[0]
    attributes = {item["meta"]["attribute"] for item in items}
    assert "static noise" not in attributes and ANY_NOISE not in attributes
    limited, _ = noise_instructions("9", "raw/9", annotations, random.Random(0), 5)
    assert len(limited) == 5 + 3  # five lead-level, one per readable attribute


def test_label_and_report_instructions():
    label_def = {
        "labels": [{"name": "MI", "description": "Myocardial infarction"}, {"name": "NORM"}]
    }
    items = label_instructions("3", "raw/3", ["MI"], label_def)
    assert [i["conversations"][1]["value"] for i in items] == ["yes", "no"]
    assert "myocardial infarction" in items[0]["conversations"][0]["value"]
    assert report_instruction("3", "raw/3", "  ") is None
    assert report_instruction("3", "raw/3", "Sinus rhythm.")["conversations"][1]["value"] == (
        "Sinus rhythm."
    )


def test_every_shared_annotation_parses_or_is_reported(shared_data: Path):
    with (shared_data / "ptbxl" / "ptbxl_database.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    parsed = refused = 0
    for row in rows:
        _, problems = noise_instructions(
            row["ecg_id"], "x", {c: row[c] for c in NOISE_COLUMNS}, random.Random(0), 0
        )
        refused += len(problems)
        parsed += sum(bool(row[c].strip()) for c in NOISE_COLUMNS)
    assert parsed > 150
    assert refused <= 3  # "leicht" (slight) and a bare "1" name no lead


def test_builder_agrees_with_every_shared_ecgqa_answer(shared_data: Path):
    """ECG-QA's noise questions were built from the same columns: every answer must match."""
    with (shared_data / "ptbxl" / "ptbxl_database.csv").open(encoding="utf-8") as handle:
        rows = {int(row["ecg_id"]): row for row in csv.DictReader(handle)}
    entries = read_ecgqa(shared_data / ECGQA)
    checked, unreadable = 0, 0
    for entry in entries:
        row = rows[entry["ecg_id"][0]]
        attribute = entry["attribute"][0]
        lead = _lead_of(entry["question"])
        columns = (
            list(NOISE_COLUMNS)
            if attribute == ANY_NOISE
            else [c for c, name in NOISE_COLUMNS.items() if name == attribute]
        )
        try:
            leads = set().union(*(parse_leads(row[c]) for c in columns))
        except LeadParseError:  # the builder skips these ("leicht"); ECG-QA read them as none
            unreadable += 1
            continue
        expected = "yes" if (lead in leads if lead else bool(leads)) else "no"
        assert entry["answer"] == [expected], entry
        checked += 1
    assert unreadable <= 2
    assert checked + unreadable == len(entries) > 400
    item = ecgqa_instruction(entries[0], "raw/x", 0)
    assert item["meta"]["candidates"] == ["yes", "no", "not sure"]
    assert item["meta"]["template_id"] == entries[0]["template_id"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "not readable JSON"),
        ('{"a": 1}', "expected a list"),
        ('[{"question": "q", "answer": ["no"]}]', "entry 0 lacks ecg_id"),
        ('[{"question": " ", "answer": ["no"], "ecg_id": [1]}]', "question must be"),
        ('[{"question": "q", "answer": "no", "ecg_id": [1]}]', "answer must be"),
        ('[{"question": "q", "answer": ["no"], "ecg_id": [1, 2]}]', "exactly one record"),
    ],
)
def test_bad_ecgqa_files_name_file_and_entry(tmp_path, content, message):
    path = tmp_path / "qa.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(EcgflowError, match=message) as caught:
        read_ecgqa(path)
    assert str(path) in str(caught.value)
    json.dumps(str(caught.value))
