"""The report-pattern labeler: the default ECG-FM-17 config on hand-written English statements,
negation / uncertainty handling, and config errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecgflow.errors import EcgflowError
from ecgflow.labels.report_patterns import (
    PatternConfig,
    ReportLabeler,
    load_config,
    normalise,
    parse_config,
)

PDQ = "Poor data quality"
SR = "Sinus rhythm"
PVC = "Premature ventricular contraction"
TACHY = "Tachycardia"
VT = "Ventricular tachycardia"
SVTAB = "Supraventricular tachycardia with aberrancy"
AF = "Atrial fibrillation"
AFL = "Atrial flutter"
BRADY = "Bradycardia"
AP = "Accessory pathway conduction"
AVB = "Atrioventricular block"
AVB1 = "1st degree atrioventricular block"
BIFASC = "Bifascicular block"
RBBB = "Right bundle branch block"
LBBB = "Left bundle branch block"
MI = "Infarction"
PACE = "Electronic pacemaker"

ECG_FM_NAMES = [
    PDQ, SR, PVC, TACHY, VT, SVTAB, AF, AFL, BRADY, AP, AVB, AVB1, BIFASC, RBBB, LBBB, MI, PACE,
]  # fmt: skip


@pytest.fixture(scope="module")
def default() -> ReportLabeler:
    config, name, _ = load_config()
    return ReportLabeler(config, name)


def with_policy(policy: str) -> ReportLabeler:
    config, _, _ = load_config()
    return ReportLabeler(config.model_copy(update={"uncertain": policy}))


def test_default_config_has_the_17_ecg_fm_labels_in_order(
    shared_data: Path, default: ReportLabeler
) -> None:
    names = [
        line.split(",")[0]
        for line in (shared_data / "ecg-fm-labeler" / "label_def.csv").read_text().splitlines()[1:]
    ]
    assert default.names == names == ECG_FM_NAMES
    assert default.config.uncertain == "negative"


# Hand-written English machine statements → labels under the default config (uncertain →
# negative). Each set is complete: any other label firing fails the test.
STATEMENTS: list[tuple[str, set[str]]] = [
    ("no evidence of atrial fibrillation", set()),
    ("possible inferior infarct", set()),
    ("sinus tachycardia", {SR, TACHY}),
    ("atrial fibrillation with rapid ventricular response", {AF, TACHY}),
    ("RBBB and left anterior fascicular block", {RBBB, BIFASC}),
    ("first degree AV block", {AVB1, AVB}),
    ("ventricular paced rhythm", {PACE}),
    ("Normal sinus rhythm. Normal ECG.", {SR}),
    ("Sinus rhythm with 1st degree A-V block", {SR, AVB1, AVB}),
    ("Sinus bradycardia with occasional PVCs", {SR, BRADY, PVC}),
    ("Incomplete right bundle branch block", set()),
    ("Left bundle branch block", {LBBB}),
    ("Wolff-Parkinson-White pattern", {AP}),
    ("Ventricular tachycardia", {VT, TACHY}),
    ("Supraventricular tachycardia with aberrancy", {SVTAB, TACHY}),
    ("Supraventricular tachycardia", {TACHY}),
    ("Artifact in lead V2. Sinus rhythm", {PDQ, SR}),
    ("Baseline wander; otherwise normal sinus rhythm", {PDQ, SR}),
    ("Anteroseptal infarct, age undetermined", {MI}),
    ("Cannot rule out anterior infarct", set()),
    ("Atrial fibrillation cannot be excluded", set()),
    ("Atrial fibrillation is ruled out", set()),
    ("No pacemaker spikes seen", set()),
    ("Wandering atrial pacemaker", set()),
    ("Complete heart block", {AVB}),
    ("Second degree AV block, Mobitz type I (Wenckebach)", {AVB}),
    ("Irregularly irregular rhythm without P waves: atrial fibrillation, rate 96 bpm.", {AF}),
    ("Borderline first degree AV block", set()),
    ("Bifascicular block", {BIFASC, RBBB}),
    ("RBBB + LAFB", {RBBB, BIFASC}),
    ("Incomplete RBBB and LAFB", set()),
    ("Demand pacing; no atrial fibrillation", {PACE}),
    ("Atrial fibrillation/flutter", {AF, AFL}),
    ("Atrial flutter with variable AV conduction", {AFL}),
    ("Sinus arrhythmia", {SR}),
    ("Pseudoinfarction pattern", set()),
    ("Probable left ventricular hypertrophy", set()),
    ("Sinus rhythm, no ST elevation, no infarct", {SR}),
    ("Marked sinus bradycardia", {SR, BRADY}),
    ("Ventricular bigeminy", {PVC}),
    ("Frequent premature ventricular complexes", {PVC}),
    ("Supraventricular premature complexes", set()),
    ("AF with slow ventricular response", {AF, BRADY}),
    ("Atrial fibrillation without rapid ventricular response", {AF}),
    ("Old inferior myocardial infarction", {MI}),
    ("Acute STEMI", {MI}),
    ("Poor data quality, interpretation may be adversely affected", {PDQ}),
    ("Lead reversal suspected", set()),
    ("ATRIAL   FIBRILLATION\nRIGHT BUNDLE BRANCH BLOCK", {AF, RBBB}),
    ("Electronic ventricular pacemaker", {PACE}),
    ("AV sequential pacing", {PACE}),
    ("Short PR interval with delta waves (pre-excitation)", {AP}),
    ("Sinus rhythm. ?Atrial flutter", {SR}),
    ("Atrial flutter?", set()),
    ("Nonsustained VT", {VT, TACHY}),
    ("Torsades de pointes", {VT, TACHY}),
    ("", set()),
]


@pytest.mark.parametrize(("text", "expected"), STATEMENTS, ids=[s[:40] for s, _ in STATEMENTS])
def test_statement_labels(default: ReportLabeler, text: str, expected: set[str]) -> None:
    assert default.label(text) == expected


def test_enough_statements() -> None:
    assert len(STATEMENTS) >= 25
    covered = set().union(*(labels for _, labels in STATEMENTS))
    assert covered == set(ECG_FM_NAMES)  # every label fires somewhere


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("positive", {MI}), ("negative", set()), ("ignore", set())],
)
def test_uncertain_policy(policy: str, expected: set[str]) -> None:
    labeler = with_policy(policy)
    assert labeler.label("possible inferior infarct") == expected
    # a plain mention is positive under every policy
    assert labeler.label("inferior infarct") == {MI}
    # a hedged child label propagates its uncertainty to the parent
    hedged = labeler.label("possible first degree AV block")
    assert hedged == ({AVB1, AVB} if policy == "positive" else set())


def test_ignore_policy_reports_the_undecided_cells() -> None:
    labeler = with_policy("ignore")
    texts = ["possible inferior infarct", "inferior infarct", "no infarct", None]
    matrix, uncertain = labeler.label_texts(texts)
    mi = labeler.names.index(MI)
    assert matrix[:, mi].tolist() == [0, 1, 0, 0]
    assert uncertain[:, mi].tolist() == [True, False, False, False]
    assert uncertain.sum() == 1


def test_mention_statuses(default: ReportLabeler) -> None:
    mentions = default.mentions("Sinus rhythm. No atrial fibrillation. Possible LBBB.")
    by_label = {m.label: m.status for m in mentions}
    assert by_label == {SR: "positive", AF: "negated", LBBB: "uncertain"}
    text = "Sinus rhythm. No atrial fibrillation. Possible LBBB."
    af = next(m for m in mentions if m.label == AF)
    assert text[af.start : af.end] == af.text == "atrial fibrillation"


def test_positive_mention_wins_over_a_negated_one(default: ReportLabeler) -> None:
    assert default.statuses("No atrial fibrillation on prior. Atrial fibrillation.") == {
        AF: "positive"
    }


def test_clause_breaks_limit_negation(default: ReportLabeler) -> None:
    assert default.label("No ST elevation, sinus rhythm") == {SR}
    assert default.label("No ST elevation but sinus rhythm") == {SR}


def test_normalise() -> None:
    assert normalise("  a \t b \r\n  c  ") == "a b\nc"


# --- custom configs --------------------------------------------------------------------------

MINIMAL = {
    "name": "tiny",
    "negation": {"before": ["no"]},
    "uncertainty": {"before": ["possible"]},
    "labels": [
        {"name": "AF", "patterns": ["atrial fibrillation", "afib"]},
        {"name": "Block", "patterns": ["block"]},
        {"name": "AVB1", "patterns": ["first degree av block"], "implies": ["AVB"]},
        {"name": "AVB", "patterns": ["av block"], "implies": ["Block"]},
    ],
}


def test_custom_config_scope_and_transitive_implies(tmp_path: Path) -> None:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({**MINIMAL, "scope": {"words_before": 2}}))
    config, name, digest = load_config(path)
    labeler = ReportLabeler(config, name)
    assert name == "tiny.json" and len(digest) == 64
    assert labeler.label("first degree AV block") == {"AVB1", "AVB", "Block"}
    assert labeler.label("no atrial fibrillation") == set()
    # "no" is 3 words before the mention: outside a 2-word scope
    assert labeler.label("no signs of atrial fibrillation") == {"AF"}
    assert labeler.label("AFIB") == {"AF"}  # case-insensitive
    assert labeler.label("afibrillation") == set()  # word-bounded


def config_error(tmp_path: Path, content: str, name: str = "bad.yaml") -> str:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(EcgflowError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message  # every config error names the file
    return message


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({**MINIMAL, "colour": "red"}, "field colour"),
        ({**MINIMAL, "uncertain": "maybe"}, "field uncertain"),
        ({**MINIMAL, "labels": []}, "field labels"),
        ({**MINIMAL, "labels": [{"name": "AF"}]}, "field labels[0] (AF).patterns"),
        ({**MINIMAL, "labels": [{"name": "AF", "patterns": []}]}, "labels[0] (AF).patterns"),
        ({**MINIMAL, "labels": [{"name": "AF", "patterns": ["(unclosed"]}]}, "bad regex"),
        ({**MINIMAL, "labels": [{"name": "AF", "patterns": ["x", "a?"]}]}, "patterns[1]"),
        (
            {**MINIMAL, "labels": [{"name": "AF", "patterns": ["af"], "implies": ["AFL"]}]},
            "labels[0] (AF).implies: unknown label 'AFL'",
        ),
        ({**MINIMAL, "labels": [MINIMAL["labels"][0]] * 2}, "duplicate label name"),
        ({**MINIMAL, "negation": {"before": ["[no"]}}, "negation.before[0]"),
        ({**MINIMAL, "scope": {"words_before": -1}}, "field scope.words_before"),
        ({"labels": MINIMAL["labels"]}, "field name"),
    ],
)
def test_config_errors_name_file_and_field(tmp_path: Path, config: dict, expected: str) -> None:
    message = config_error(tmp_path, json.dumps(config), "bad.json")
    assert expected in message


def test_config_syntax_and_shape_errors(tmp_path: Path) -> None:
    assert "not valid YAML" in config_error(tmp_path, "name: [unclosed\n")
    assert "not valid JSON" in config_error(tmp_path, "{name: 1", "bad.json")
    assert "expected a mapping" in config_error(tmp_path, "- just\n- a list\n")
    missing = tmp_path / "absent.yaml"
    with pytest.raises(EcgflowError, match=r"absent\.yaml: cannot read"):
        load_config(missing)


def test_parse_config_accepts_yaml_text() -> None:
    config = parse_config("name: x\nlabels:\n  - {name: A, patterns: ['a+b']}\n", "x.yaml")
    assert isinstance(config, PatternConfig)
    assert ReportLabeler(config).label("aab") == {"A"}
