"""GEM's data plumbing: instruction files, answer balancing, parameters (no model needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ecgflow.errors import EcgflowError
from ecgflow.params import FinetuneGemParams
from ecgflow.stages.finetune_gem import answer_balancing_weights, with_kind_shares
from ecgflow.training.gem_data import GemExample, read_instructions


def test_invalid_gem_parameters_name_the_field():
    with pytest.raises(EcgflowError, match="eval_questions"):
        FinetuneGemParams.model_validate({"eval_questions": 0})
    with pytest.raises(EcgflowError, match="kinds"):
        FinetuneGemParams.model_validate({"kinds": ["poetry"]})


def test_answer_balancing_gives_yes_and_no_equal_draws_within_a_group():
    def example(answer: str, attribute: str) -> GemExample:
        return GemExample("i", "1", "q", answer, "noise", 26, attribute, ("yes", "no"))

    examples = [example("no", "a")] * 9 + [example("yes", "a")] + [example("no", "b")] * 2
    weights = answer_balancing_weights(examples)
    yes = weights[9]
    no_a = weights[:9].sum()
    assert yes == pytest.approx(no_a)  # within group a: yes drawn as often as no
    assert weights[:10].sum() == pytest.approx(10)  # group a keeps its share
    assert weights[10:].sum() == pytest.approx(2)


def test_kind_shares_set_each_kinds_draws_and_keep_the_balance_within():
    def example(kind: str, answer: str) -> GemExample:
        return GemExample("i", "1", "q", answer, kind, None, kind, ("yes", "no"))

    examples = [example("noise", "no")] * 8 + [example("noise", "yes")] * 2
    examples += [example("label", "no"), example("label", "yes")]
    weights = with_kind_shares(
        answer_balancing_weights(examples), examples, {"noise": 0.3, "label": 0.6, "report": 1.0}
    )
    assert weights.sum() == pytest.approx(1.0)
    assert weights[:10].sum() == pytest.approx(1 / 3)  # 0.3 of the 0.9 given to present kinds
    assert weights[:8].sum() == pytest.approx(weights[8:10].sum())  # yes as often as no
    with pytest.raises(EcgflowError, match="kind_shares"):
        with_kind_shares(np.ones(len(examples)), examples, {"report": 1.0})
    assert FinetuneGemParams().kind_shares.label > FinetuneGemParams().kind_shares.noise / 2
    with pytest.raises(EcgflowError, match="kind_shares"):
        FinetuneGemParams.model_validate({"kind_shares": {"poetry": 1.0}})


def test_read_instructions_keeps_wanted_kinds_and_lists_malformed_entries(tmp_path):
    good = {
        "id": "1-noise-0",
        "record_id": "1",
        "ecg": "raw/1",
        "image": None,
        "conversations": [{"from": "human", "value": "<ecg>\nq"}, {"from": "gpt", "value": "no"}],
        "meta": {"kind": "noise", "template_id": 26, "attribute": "static noise",
                 "candidates": ["yes", "no"]},
    }  # fmt: skip
    report = {**good, "id": "1-report", "meta": {"kind": "report", "candidates": None}}
    broken = {**good, "conversations": [{"from": "human", "value": "q"}]}
    path = tmp_path / "train.json"
    path.write_text(json.dumps([good, report, broken]))
    examples, skipped = read_instructions(path, {"noise"})
    assert [e.id for e in examples] == ["1-noise-0"]
    assert examples[0].candidates == ("yes", "no") and examples[0].template_id == 26
    assert len(skipped) == 1 and "entry 2" in skipped[0]["reason"]
    with pytest.raises(EcgflowError, match="build-instructions"):
        read_instructions(tmp_path / "missing.json", {"noise"})
    path.write_text("{}")
    with pytest.raises(EcgflowError, match="JSON list"):
        read_instructions(path, {"noise"})


def test_answer_prior_keys_untemplated_questions_by_kind():
    from ecgflow.stages.finetune_gem import answer_prior

    def example(kind: str, template, attribute: str, answer: str) -> GemExample:
        return GemExample("i", "1", "q", answer, kind, template, attribute, None)

    prior = answer_prior(
        [example("feature", None, "heart axis", "normal")] * 3
        + [example("feature", None, "heart axis", "left axis deviation")]
        + [example("label", None, "NORM", "yes")] * 2
        + [example("noise", 26, "static noise", "no")] * 5
    )
    assert prior.predict("feature", "heart axis") == "normal"
    assert prior.predict("label", "NORM") == "yes"
    assert prior.predict(26, "static noise") == "no"


def test_model_selection_sees_every_family_and_averages_their_balanced_accuracy():
    from ecgflow.stages.finetune_gem import _eval_subset, family_balanced_accuracy

    def example(i: int, kind: str, answer: str) -> GemExample:
        return GemExample(f"{kind}{i}", str(i), "q", answer, kind, None, kind, ("yes", "no"))

    ecgqa = [example(i, "ecgqa", "no") for i in range(50)]
    noise = [example(i, "noise", "yes" if i % 5 == 0 else "no") for i in range(50)]
    label = [example(i, "label", "yes" if i % 2 else "no") for i in range(4)]
    chosen = _eval_subset([*ecgqa, *noise, *label], limit=12)
    kinds = [e.kind for e in chosen]
    # 50 ECG-QA questions do not crowd out the 4 label ones: the families take turns
    assert len(chosen) == 12 and kinds.count("label") == 4 and kinds.count("ecgqa") == 4
    assert [e.id for e in chosen if e.kind == "ecgqa"] == ["ecgqa0", "ecgqa1", "ecgqa2", "ecgqa3"]
    # always "no": ECG-QA (all no) is perfect, noise and label get 0.5 (yes never recalled)
    scores = family_balanced_accuracy(chosen, ["no"] * len(chosen))
    assert scores["ecgqa"] == 1.0
    assert scores["label"] == 0.5
    assert abs(sum(scores.values()) / 3 - (1.0 + scores["noise"] + 0.5) / 3) < 1e-12


def test_projector_share_must_leave_lora_a_stage():
    assert 0 < FinetuneGemParams().projector_share < 1
    with pytest.raises(EcgflowError, match="projector_share"):
        FinetuneGemParams.model_validate({"projector_share": 1.0})
    with pytest.raises(EcgflowError, match="tower_lr"):
        FinetuneGemParams.model_validate({"tower_lr": 0})
