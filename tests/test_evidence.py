"""Evidence text for one record: a real PTB-XL record when present, a synthetic one always."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from conftest import SHARED_DATA

from ecgflow.io.synthetic_ecg import synthesize_record
from ecgflow.models.lead_quality import fit_lead_quality, lead_features
from ecgflow.signal.rhythm import Rhythm
from ecgflow.text.evidence import (
    RecordEvidence,
    asked_lead_line,
    evidence_from,
    measure_evidence,
    named_lead,
    split_turn,
    with_evidence,
)
from ecgflow.text.instructions import LEADS


def _model_flagging_static_noise() -> object:
    """A lead-quality model fitted on synthetic records with static noise in 4 leads each."""
    features, targets = [], []
    for i in range(24):
        record = synthesize_record(i, seed=5, fs=100.0).record
        x = record.signal.astype(np.float64).copy()
        target = np.zeros((12, 4))
        for lead in (i % 12, (i + 3) % 12, (i + 6) % 12, (i + 9) % 12):
            x[lead] += 0.15 * np.random.default_rng([i, lead]).standard_normal(x.shape[1])
            target[lead, 0] = 1.0
        features.append(lead_features(x, 100.0, record.leads))
        targets.append(target)
    return fit_lead_quality(np.stack(features), np.stack(targets), 100.0)


def test_synthetic_record_evidence_names_the_noisy_lead_and_the_rate() -> None:
    record = synthesize_record(20, seed=5, fs=100.0).record
    x = record.signal.astype(np.float64).copy()
    x[6] += 0.15 * np.random.default_rng(0).standard_normal(x.shape[1])
    evidence = measure_evidence(x, 100.0, record.leads, _model_flagging_static_noise())
    text = evidence.text()
    lines = text.splitlines()
    assert lines[0].startswith("Leads: I ")
    words = dict(part.split(" ", 1) for part in lines[0].removeprefix("Leads: ").split("; "))
    assert list(words) == list(LEADS)
    assert words["V1"].startswith("static 0.")
    assert words["II"] == "ok"
    rate = record.metadata["heart_rate"]
    assert f"Heart rate {round(evidence.heart_rate_bpm or 0)} bpm" in lines[1]
    assert abs((evidence.heart_rate_bpm or 0) - rate) < 5
    assert text == measure_evidence(x, 100.0, record.leads, _model_flagging_static_noise()).text()
    assert len(text) < 400  # compact: it shares the prompt's token budget with the question


def test_classifier_line_keeps_the_likeliest_labels_and_json_round_trips() -> None:
    evidence = RecordEvidence(
        n_beats=10,
        heart_rate_bpm=72.4,
        rr_cv=0.041,
        axis_deg=45.2,
        classifier={"NORM": 0.91, "MI": 0.04, "STTC": 0.03, "CD": 0.02, "HYP": 0.01, "X": 0.0},
    )
    assert evidence.text().splitlines() == [
        "Heart rate 72 bpm (normal rate, 60 to 100 beats per minute); RR variability 4 % "
        "(regular); QRS axis 45° (normal)",
        "Classifier: NORM 0.91, MI 0.04, STTC 0.03, CD 0.02, HYP 0.01",
    ]
    again = RecordEvidence.from_json(evidence.to_json())
    assert again.text() == evidence.text()
    none = RecordEvidence(n_beats=1, heart_rate_bpm=None, rr_cv=None, axis_deg=None)
    assert none.text() == "Heart rate not measured (fewer than 3 beats found)"


@pytest.mark.parametrize(
    ("rate", "rr_cv", "word", "fast", "slow", "regular"),
    [
        (101.0, 0.05, "tachycardia", "yes", "no", "yes"),
        (100.0, 0.12, "normal rate", "no", "no", "no"),
        (59.6, 0.02, "bradycardia", "no", "yes", "yes"),
    ],
)
def test_rhythm_words_give_the_feature_questions_answers(
    rate: float, rr_cv: float, word: str, fast: str, slow: str, regular: str
) -> None:
    """The evidence names the category the feature questions' answers are measured from."""
    from ecgflow.signal.rhythm import Rhythm
    from ecgflow.text.instructions import feature_instructions

    rhythm = Rhythm(n_beats=10, heart_rate_bpm=rate, rr_cv=rr_cv, axis_deg=30.0)
    line = evidence_from(rhythm).text()
    assert f"({word}, " in line
    assert ("(regular)" if regular == "yes" else "(irregular)") in line
    items = feature_instructions("r1", "raw/r1", rhythm)
    answers = {item["meta"]["attribute"]: item["conversations"][1]["value"] for item in items}
    assert (answers["tachycardia"], answers["bradycardia"]) == (fast, slow)
    assert answers["rhythm regularity"] == regular
    for item in items:  # a rate question's range is in the evidence exactly when it is "yes"
        if item["meta"]["attribute"] in ("tachycardia", "bradycardia"):
            asked = item["conversations"][0]["value"].split(" ECG ")[-1].rstrip("?")
            assert (asked in line) == (item["conversations"][1]["value"] == "yes"), asked


def test_classifier_key_names_labels_as_the_label_questions_and_calls_them() -> None:
    """With the key, each label reads as its question names it, likely at its threshold."""
    from ecgflow.text.evidence import classifier_key
    from ecgflow.text.instructions import label_instructions

    label_def = {
        "labels": [
            {"name": "NORM", "description": "normal ECG"},
            {"name": "STTC", "description": "ST/T change"},
            {"name": "MI", "description": "Myocardial infarction"},
        ]
    }
    descriptions = {e["name"]: e["description"] for e in label_def["labels"]}
    classifier = SimpleNamespace(
        labels=["NORM", "STTC", "MI"], descriptions=descriptions, thresholds=[0.5, 0.7, 0.3]
    )
    key = classifier_key(classifier)
    rhythm = Rhythm(n_beats=10, heart_rate_bpm=70.0, rr_cv=0.02, axis_deg=30.0)
    evidence = evidence_from(rhythm, None, {"NORM": 0.6, "STTC": 0.65, "MI": 0.3}, key)
    line = evidence.text().splitlines()[-1]
    assert line == (
        "Classifier: ST/T change unlikely 0.65; normal ECG likely 0.60; "
        "myocardial infarction likely 0.30"
    )
    for item in label_instructions("r1", "raw/r1", ["NORM"], label_def):
        phrase = item["conversations"][0]["value"].removeprefix("<ecg>\nDoes this ECG show ")
        assert phrase.rstrip("?") in line
    assert RecordEvidence.from_json(evidence.to_json()).text() == evidence.text()


def test_with_evidence_puts_the_lines_between_ecg_and_the_question() -> None:
    assert with_evidence("<ecg>\nIs it noisy?", "Leads: I ok") == "<ecg>\nLeads: I ok\nIs it noisy?"
    assert with_evidence("Is it noisy?", None) == "<ecg>\nIs it noisy?"


def test_asked_lead_line_repeats_the_named_leads_words_before_the_question() -> None:
    record = synthesize_record(20, seed=5, fs=100.0).record
    x = record.signal.astype(np.float64).copy()
    x[6] += 0.15 * np.random.default_rng(0).standard_normal(x.shape[1])
    evidence = measure_evidence(x, 100.0, record.leads, _model_flagging_static_noise()).text()
    static = asked_lead_line("Is there static noise in lead V1?", evidence)
    assert static is not None and static.startswith("Asked lead V1: static 0.")
    assert asked_lead_line("Does LEAD avl show burst noise?", evidence) == "Asked lead aVL: ok"
    assert asked_lead_line("Is this ECG normal?", evidence) is None
    assert asked_lead_line("Is there static noise in lead V1?", "Heart rate 70 bpm") is None
    turn = with_evidence("<ecg>\nIs there static noise in lead V1?", evidence)
    assert turn.splitlines()[-2:] == [static, "Is there static noise in lead V1?"]
    assert split_turn(turn, evidence) == "<ecg>\nIs there static noise in lead V1?"
    # a turn written before the asked lead's line existed reads the same
    old = f"<ecg>\n{evidence}\nIs there static noise in lead V1?"
    assert split_turn(old, evidence) == "<ecg>\nIs there static noise in lead V1?"
    with pytest.raises(ValueError, match="evidence"):
        split_turn("<ecg>\nLeads: I ok\nIs it noisy?", evidence)


@pytest.mark.parametrize(
    ("question", "lead"),
    [("lead III", "III"), ("lead ii?", "II"), ("in lead aVF", "aVF"), ("lead v6.", "V6"),
     ("leads", None), ("lead V7", None), ("no lead named", None)],
)  # fmt: skip
def test_named_lead(question: str, lead: str | None) -> None:
    assert named_lead(question) == lead


def test_real_ptbxl_record_evidence() -> None:
    from ecgflow.io.readers import read_record

    header = SHARED_DATA / "ptbxl" / "records100" / "00000" / "00001_lr.hea"
    if not header.is_file():
        pytest.skip(f"{header} not found")
    record = read_record(header)
    evidence = measure_evidence(record.signal, record.fs, record.leads)
    lines = evidence.text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Heart rate ")
    # record 1 is sinus rhythm at about 63 bpm (its report: "sinusrhythmus")
    assert evidence.heart_rate_bpm is not None and 50 < evidence.heart_rate_bpm < 80
    assert evidence.rr_cv is not None and evidence.rr_cv < 0.15
