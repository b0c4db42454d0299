"""GEM's closed-set calibration and the evidence-only baseline, on constructed data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ecgflow.errors import EcgflowError
from ecgflow.models.gem_baseline import (
    fit_evidence_baseline,
    load_evidence_baseline,
    question_features,
)
from ecgflow.models.gem_calibration import (
    Calibration,
    FitItem,
    decide,
    fit_calibration,
    load_calibration,
    question_group,
    question_skeleton,
)
from ecgflow.stages.finetune_gem import record_evidence

LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
NOISE = ("generated", "26", "static noise")
ECGQA_NOISE = ("ecgqa", "26", "static noise")


def _items(group, n_yes: int, n_no: int, margin: float = 0.3, question: str = "") -> list[FitItem]:
    """Questions a yes-leaning model scores alike: log p(yes) − log p(no) = ``margin`` each."""
    truths = ["yes"] * n_yes + ["no"] * n_no
    return [
        FitItem(group, ("yes", "no"), (-1.0 + margin, -1.0), t, question.format(lead=lead))
        for t, lead in zip(truths, LEADS * 10, strict=False)
    ]


def test_the_fitted_bias_flips_a_yes_leaning_model_toward_the_majority():
    items = _items(NOISE, 4, 16, question="<ecg>\nDoes lead {lead} show any static noise?")
    raw = [decide(i.options, i.scores)[0] for i in items]
    assert set(raw) == {"yes"}  # uncalibrated: always yes, accuracy 0.2
    calibration = fit_calibration(items, min_questions=10)
    offsets = calibration.offsets_for(NOISE)
    assert offsets["yes"] - offsets["no"] < -0.3  # log p(yes) − log p(no) is pushed down
    decided = [decide(i.options, i.scores, offsets)[0] for i in items]
    assert set(decided) == {"no"}
    # the probability after calibration is near the group's rate of yes (max. likelihood)
    _, p = decide(("yes", "no"), items[0].scores, offsets)
    assert p[0] == pytest.approx(4 / 20, abs=0.06)
    # a served question without metadata finds its group by its text (another lead)
    served = calibration.offsets_for_question("<ecg>\nDoes lead aVF show any static noise?")
    assert served == offsets


def test_sources_keep_their_own_priors_and_small_groups_fall_back():
    generated = _items(NOISE, 2, 28)
    ecgqa = _items(ECGQA_NOISE, 25, 5)
    small = _items(("generated", "26", "burst noise"), 1, 3)  # 4 questions: not fitted alone
    calibration = fit_calibration(generated + ecgqa + small, min_questions=10)
    g, e = calibration.offsets_for(NOISE), calibration.offsets_for(ECGQA_NOISE)
    assert g["yes"] - g["no"] < 0 < e["yes"] - e["no"]
    assert "generated|26|burst noise" not in calibration.offsets
    assert (
        calibration.offsets_for(("generated", "26", "burst noise"))
        == (calibration.offsets["generated|26"])
    )
    assert calibration.offsets_for(("other", "1", "x")) == {}


def test_kept_raw_groups_are_not_fitted_and_take_no_coarser_offsets():
    label = ("generated", "label", "MI")
    items = _items(NOISE, 2, 28) + _items(label, 3, 27)
    calibration = fit_calibration(items, min_questions=10, keep_raw=[("generated", "label")])
    assert calibration.offsets_for(label) == {}  # not the "generated" source's offsets
    assert calibration.offsets["generated"]["no"] > 0  # fitted on the noise questions only
    assert calibration.counts["generated"] == 30
    decided = [decide(i.options, i.scores, calibration.offsets_for(label))[0] for i in items[30:]]
    assert set(decided) == {"yes"}  # as the raw scores say
    again = Calibration.from_json(calibration.to_json())
    assert again.offsets_for(label) == {}


def test_an_option_never_true_gets_a_strongly_negative_offset():
    items = [
        FitItem(ECGQA_NOISE, ("yes", "no", "not sure"), (-1.0, -1.2, -0.5), t)
        for t in ["no"] * 12 + ["yes"] * 8
    ]
    assert {decide(i.options, i.scores)[0] for i in items} == {"not sure"}
    offsets = fit_calibration(items).offsets_for(ECGQA_NOISE)
    assert offsets["not sure"] < min(offsets["yes"], offsets["no"]) - 1.0
    assert {decide(i.options, i.scores, offsets)[0] for i in items} == {"no"}


def test_calibration_json_round_trips_and_bad_files_are_named(tmp_path):
    calibration = fit_calibration(_items(NOISE, 3, 17, question="Is lead {lead} noisy?"))
    calibration.save(tmp_path)
    again = load_calibration(tmp_path)
    assert again is not None and again.offsets == calibration.offsets
    assert again.questions == calibration.questions
    assert load_calibration(tmp_path / "nothing") is None
    (tmp_path / "calibration.json").write_text('{"kind": "other"}')
    with pytest.raises(EcgflowError, match=r"calibration\.json"):
        load_calibration(tmp_path)
    assert isinstance(Calibration().offsets_for(NOISE), dict)


def test_question_groups_and_skeletons():
    assert question_group("ecgqa", 26, "static noise") == ECGQA_NOISE
    assert question_group("noise", 26, "static noise") == NOISE
    assert question_group("feature", None, "tachycardia") == ("generated", "feature", "tachycardia")
    assert question_skeleton("<ecg>\nIs  there noise in lead aVL?") == (
        "is there noise in lead {lead}?"
    )


def _record(noisy_lead: int | None, seed: int, fs: float = 100.0) -> np.ndarray:
    """A 10 s synthetic 12-lead ECG at 75 bpm; ``noisy_lead`` gets strong white noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(10 * fs)) / fs
    beats = np.exp(-(((t % 0.8) - 0.4) ** 2) / (2 * 0.01**2))
    x = np.stack([beats * (0.5 + 0.1 * k) for k in range(12)]) + 0.01 * rng.standard_normal(
        (12, t.size)
    )
    if noisy_lead is not None:
        x[noisy_lead] += 0.3 * rng.standard_normal(t.size)
    return x


def test_the_evidence_baseline_reads_the_asked_lead(tmp_path):
    groups, features, answers = [], [], []
    for seed in range(30):
        noisy = seed % 12
        evidence = record_evidence(_record(noisy, seed), 100.0, LEADS)
        assert math.isclose(evidence.heart_rate_bpm, 75.0, rel_tol=0.05)
        for lead in (LEADS[noisy], LEADS[(noisy + 5) % 12]):
            question = f"Does lead {lead} show any static noise on this ECG?"
            groups.append(NOISE)
            features.append(question_features(evidence, question, LEADS))
            answers.append("yes" if lead == LEADS[noisy] else "no")
    baseline = fit_evidence_baseline(groups, np.stack(features), answers, min_questions=20)
    baseline.save(tmp_path)
    baseline = load_evidence_baseline(tmp_path)
    assert baseline is not None
    test = record_evidence(_record(3, 99), 100.0, LEADS)
    for lead, expected in (("aVR", "yes"), ("V4", "no")):
        f = question_features(test, f"Is there any static noise in lead {lead}?", LEADS)
        answer, p_yes = baseline.predict(NOISE, f, ["yes", "no"])
        assert answer == expected
        assert (p_yes > 0.5) == (expected == "yes")
    # a family never seen falls back to the source's model; a single-answer family answers it
    f = question_features(test, "Is there any static noise in lead aVR?", LEADS)
    assert baseline.predict(("generated", "27", "static noise"), f, ["yes", "no"])[0] == "yes"


def test_noise_questions_read_the_lead_quality_of_their_kind_and_others_do_not():
    quality = np.zeros((12, 4))
    quality[6, 0] = 0.9  # V1: static noise
    quality[2, 2] = 0.4  # III: baseline drift
    evidence = record_evidence(_record(3, 1), 100.0, LEADS, quality)
    static = question_features(
        evidence, "Is there any static noise in lead V1?", LEADS, "static noise"
    )
    assert static[-3:].tolist() == pytest.approx([0.9, 0.9, 0.9 / 12])
    drift = question_features(
        evidence, "Is there any baseline drift in lead V1?", LEADS, "baseline drift"
    )
    assert drift[-3:].tolist() == pytest.approx([0.0, 0.4, 0.4 / 12])
    any_noise = question_features(
        evidence, "Does lead III on this ECG have any noises?", LEADS, "any kind of noises"
    )
    assert any_noise[-3] == pytest.approx(0.4) and any_noise[-2] == pytest.approx(0.9)
    label = question_features(evidence, "Does this ECG show MI?", LEADS, "MI")
    assert label[-3:].tolist() == [0.0, 0.0, 0.0]  # only noise families read the quality
    without = record_evidence(_record(3, 1), 100.0, LEADS)
    assert question_features(without, "lead V1", LEADS, "static noise")[-3:].tolist() == [0, 0, 0]


def test_the_stated_classifier_is_scored_at_its_own_thresholds(tmp_path):
    """eval-gem's classifier_macro_f1 reads the evidence's probabilities and thresholds."""
    import json

    import torch
    from datasets import tiny_onnx_export

    from ecgflow.models.gem_evidence import EvidenceReader, EvidenceSource
    from ecgflow.stages.eval_gem import _classifier_decisions
    from ecgflow.text.evidence import RecordEvidence

    folder = tiny_onnx_export(
        tmp_path / "classifier",
        ["MI", "NORM"],
        {"MI": 0.3, "NORM": 0.6},
        {"fs": 100.0, "length_s": 1.0},
    )
    assert json.loads((folder / "thresholds.json").read_text())["thresholds"]["MI"] == 0.3

    def stated(mi: float, norm: float) -> RecordEvidence:
        return RecordEvidence(10, 70.0, 0.02, 30.0, classifier={"MI": mi, "NORM": norm})

    class Signals:  # the stored evidence is used: no signal is read
        def get(self, record_id: str) -> torch.Tensor:
            raise AssertionError(f"record {record_id}'s signal was read")

    stored = {"1": stated(0.35, 0.5), "2": stated(0.1, 0.9)}
    source = EvidenceSource(stored, EvidenceReader(None, folder), 100.0, ["I"], 1.0)
    decided = _classifier_decisions(source, ["1", "2"], ["MI", "NORM"], Signals())
    assert decided is not None and decided.tolist() == [[1, 0], [0, 1]]
    without = EvidenceSource(stored, EvidenceReader(None, None), 100.0, ["I"], 1.0)
    assert _classifier_decisions(without, ["1"], ["MI", "NORM"], Signals()) is None
    missing = _classifier_decisions(source, ["1"], ["MI", "CD"], Signals())
    assert missing is None  # a label the classifier does not state: no comparison
