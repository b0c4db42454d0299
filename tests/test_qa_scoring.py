"""QA scoring: answer normalisation, accuracy / balanced accuracy, the label-prior baseline."""

from __future__ import annotations

import math

import pytest

from ecgflow.evaluation.qa import AnswerPrior, normalise_answer, qa_metrics, qa_report


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Yes", "yes"),
        (" no. ", "no"),
        ('"Not  sure"', "not sure"),
        ("lead V2, lead I", "lead i, lead v2"),
        ("lead I,lead V2", "lead i, lead v2"),
    ],
)
def test_normalise_answer(raw, expected):
    assert normalise_answer(raw) == expected


def test_qa_metrics_balanced_accuracy_punishes_the_majority_answer():
    truth = ["no", "no", "no", "yes"]
    always_no = qa_metrics(truth, ["no"] * 4, [26, 26, 28, 28])
    assert always_no["qa_accuracy"] == 0.75
    assert always_no["qa_balanced_accuracy"] == 0.5
    assert always_no["qa_accuracy_by_template"] == {"26": 1.0, "28": 0.5}
    assert always_no["n_questions"] == 4
    right = qa_metrics(truth, ["No.", "no", "no", "YES"], [26, 26, 28, 28])
    assert right["qa_accuracy"] == right["qa_balanced_accuracy"] == 1.0


def test_qa_metrics_empty_and_mismatched():
    assert math.isnan(qa_metrics([], [], [])["qa_accuracy"])
    with pytest.raises(ValueError, match="same length"):
        qa_metrics(["yes"], [], [1])


def test_answer_prior_backs_off_from_key_to_template_to_overall():
    prior = AnswerPrior(
        [
            (26, "static noise", "no"),
            (26, "static noise", "no"),
            (26, "static noise", "yes"),
            (26, "burst noise", "yes"),
            (27, "static noise", "yes"),
            (27, "burst noise", "yes"),
        ]
    )
    assert prior.predict(26, "static noise") == "no"
    assert prior.predict(26, "burst noise") == "yes"
    assert prior.predict(26, "baseline drift") == "no"  # template 26: 2 no / 2 yes → tie → "no"
    assert prior.predict(27, "anything") == "yes"
    assert prior.predict(99, None) == "yes"  # overall: 4 yes / 2 no
    again = AnswerPrior.from_json(prior.to_json())
    assert again.predict(26, "static noise") == "no"
    assert again.to_json() == prior.to_json()
    assert AnswerPrior([]).predict(26, "x") == ""


def test_qa_report_keeps_sources_apart_and_never_counts_not_sure_as_true():
    truth = ["yes", "no", "no", "no", "yes", "yes"]
    predicted = ["yes", "not sure", "no", "no", "no", "yes"]
    groups = [("ecgqa", "26", "static noise")] * 3 + [("generated", "26", "static noise")] * 3
    p_yes = [0.9, 0.5, 0.2, 0.1, 0.4, 0.8]
    report = qa_report(truth, predicted, groups, p_yes)
    ecgqa, generated = report["by_source"]["ecgqa"], report["by_source"]["generated"]
    # template 26 of each source is scored on its own questions only (3 each, not 6)
    assert ecgqa["by_template"]["26"]["n"] == generated["by_template"]["26"]["n"] == 3
    assert ecgqa["accuracy"] == pytest.approx(2 / 3)
    # balanced over the true answers yes and no; the "not sure" answer is simply wrong
    assert ecgqa["balanced_accuracy"] == pytest.approx((1.0 + 0.5) / 2)
    assert generated["balanced_accuracy"] == pytest.approx((0.5 + 1.0) / 2)
    assert ecgqa["auroc"] == 1.0 and generated["auroc"] == 1.0
    assert report["overall"]["n"] == 6
    assert generated["by_family"]["26|static noise"]["n"] == 3
    only_no = qa_report(["no", "no"], ["no", "no"], [("ecgqa", "26", "x")] * 2, [0.1, 0.2])
    assert only_no["overall"]["auroc"] is None  # one class: no AUROC
