"""GEM's model on the real SmolLM2-135M-Instruct weights: splicing, a LoRA step, scoring, I/O."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from ecgflow.errors import EcgflowError
from ecgflow.models.configs import EncoderConfig, GemConfig
from ecgflow.models.gem import GemModel
from ecgflow.models.gem_calibration import Calibration, question_skeleton
from ecgflow.models.gem_io import load_gem, read_gem_config, save_gem
from ecgflow.models.language_model import load_language_model, resolve_lm

QUESTION = "<ecg>\nDoes lead V1 show any static noise on this ECG?"
TINY = GemConfig(encoder=EncoderConfig(width=8, depth=1), lead_width=8, tower_width=32, lora_r=4)


@pytest.fixture(scope="module")
def base_lm():
    """The bundled LM and tokenizer, loaded once (each model takes a deep copy)."""
    lm, tokenizer, source = load_language_model(None)
    return lm, tokenizer, source


def _model(base_lm, config: GemConfig = TINY) -> GemModel:
    lm, tokenizer, _ = base_lm
    torch.manual_seed(0)
    return GemModel(config, copy.deepcopy(lm), tokenizer)


def _signals(n: int = 2, length: int = 1000) -> torch.Tensor:
    return torch.randn(n, 12, length, generator=torch.Generator().manual_seed(1))


def test_soft_tokens_replace_the_placeholder_each_lead_after_its_name(base_lm):
    model = _model(base_lm).eval()
    x = _signals(1)
    record, leads, image = model.encode(x)
    assert record.shape == (1, TINY.ecg_tokens, model.lm.get_input_embeddings().embedding_dim)
    assert leads.shape[1] == 12 and image is None
    prompt = model.prompt(QUESTION)
    embeds = model._embed_prompt(prompt, record[0], leads[0], None)
    before, after = prompt.split("<ecg>")
    labels = sum(len(ids) for ids in model._lead_labels)
    text = len(model._ids(before)) + len(model._ids(after))
    assert embeds.shape[0] == text + TINY.ecg_tokens + labels + 12
    # the V6 token is the last soft token, right after the " V6:" label
    start = len(model._ids(before)) + TINY.ecg_tokens + labels + 11
    assert torch.equal(embeds[start], leads[0, 11])


def test_long_evidence_is_cut_from_its_start_so_the_question_stays(base_lm):
    from ecgflow.text.evidence import with_evidence

    model = _model(base_lm).eval()
    record, leads, _ = model.encode(_signals(1))
    evidence = "Leads: " + "; ".join(f"V{i % 6 + 1} static 0.{i:02d}" for i in range(60))
    prompt = model.prompt(with_evidence(QUESTION, evidence))
    embeds = model._embed_prompt(prompt, record[0], leads[0], None)
    after = prompt.split("<ecg>")[1]
    assert len(model._ids(after)) > TINY.max_prompt_tokens
    tail = model._ids(after)[-5:]
    embed = model.lm.get_input_embeddings()
    assert torch.equal(embeds[-5:], embed(torch.tensor(tail)))  # the answer header kept


def test_lora_steps_lower_the_loss_and_leave_the_base_weights_alone(base_lm):
    model = _model(base_lm).train()
    base = model.lm.get_base_model()
    frozen = base.model.layers[0].self_attn.q_proj.base_layer.weight.detach().clone()
    lora = base.model.layers[0].self_attn.q_proj.lora_B["default"].weight.detach().clone()
    encoder = next(model.signal_tower.encoder.parameters()).detach().clone()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=2e-3)
    x = _signals(2)
    questions, answers = [QUESTION, QUESTION], ["yes", "no"]
    losses = []
    for _ in range(4):
        loss = model(x, questions, answers)
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert torch.equal(frozen, base.model.layers[0].self_attn.q_proj.base_layer.weight)
    assert not torch.equal(lora, base.model.layers[0].self_attn.q_proj.lora_B["default"].weight)
    assert torch.equal(encoder, next(model.signal_tower.encoder.parameters()))  # frozen tower
    assert not model.signal_tower.encoder.training  # frozen BN statistics stay put


def test_choose_takes_the_most_likely_candidate_and_generate_stops(base_lm):
    model = _model(base_lm).eval()
    x = _signals(2)
    candidates = [["yes", "no"], ["yes", "no", "not sure"]]
    chosen = model.choose(x, [QUESTION, QUESTION], candidates)
    for row, options in enumerate(candidates):
        sums, _ = model.answer_logprobs(
            x[row : row + 1], [QUESTION] * len(options), options, rows=[0] * len(options)
        )
        assert chosen[row] == options[int(sums.argmax())]
    texts = model.generate(x[:1], ["Describe the findings of this ECG."], max_new_tokens=5)
    assert len(texts) == 1 and len(model._ids(texts[0])) <= 5


def test_image_tower_adds_grid_tokens(base_lm):
    config = TINY.model_copy(update={"image": True, "image_grid": 2})
    model = _model(base_lm, config).eval()
    images = torch.rand(1, 1, 64, 128)
    _, _, image = model.encode(_signals(1), images)
    assert image is not None and image.shape[1] == 4
    assert "<image>" in model.prompt(QUESTION)
    with pytest.raises(ValueError, match="pass images"):
        model.encode(_signals(1))


def test_saved_folder_reloads_with_one_call_and_answers_the_same(base_lm, tmp_path):
    model = _model(base_lm).eval()
    with torch.no_grad():  # make the adapter non-trivial (LoRA B starts at zero)
        for name, param in model.lm.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.02)
    save_gem(tmp_path / "gem", model, "bundled")
    assert read_gem_config(tmp_path / "gem") == TINY
    again = load_gem(tmp_path / "gem", lm=copy.deepcopy(base_lm[0]))
    x = _signals(1)
    with torch.no_grad():
        want, _ = model.answer_logprobs(x, [QUESTION, QUESTION], ["yes", "no"], rows=[0, 0])
        got, _ = again.answer_logprobs(x, [QUESTION, QUESTION], ["yes", "no"], rows=[0, 0])
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_bad_model_folders_and_lm_paths_are_named(tmp_path):
    with pytest.raises(EcgflowError, match="does not exist"):
        read_gem_config(tmp_path / "nope")
    (tmp_path / "gem").mkdir()
    (tmp_path / "gem" / "gem.json").write_text('{"kind": "clip", "config": {}}')
    with pytest.raises(EcgflowError, match="kind 'gem'"):
        read_gem_config(tmp_path / "gem")
    (tmp_path / "gem" / "gem.json").write_text('{"kind": "gem", "config": {"lora_r": 0}}')
    with pytest.raises(EcgflowError, match="lora_r"):
        read_gem_config(tmp_path / "gem")
    with pytest.raises(EcgflowError, match=r"missing\.gguf"):
        resolve_lm(str(tmp_path / "missing.gguf"))
    with pytest.raises(EcgflowError, match=r"config\.json"):
        resolve_lm(str(tmp_path))
    assert resolve_lm(None).gguf_file is not None and Path(resolve_lm(None).folder).is_dir()


def test_choose_applies_the_saved_calibration_of_the_question_group(base_lm, tmp_path):
    model = _model(base_lm).eval()
    x = _signals(2)
    questions = [QUESTION, "<ecg>\nDoes lead aVL show any static noise on this ECG?"]
    scores = model.candidate_scores(x, questions, [["yes", "no"]] * 2)
    raw = model.choose(x, questions, [["yes", "no"]] * 2)
    assert raw == [["yes", "no"][int(s[1] > s[0])] for s in scores]
    # an offset against each raw answer flips it, found from the group or the question's text
    flipped = ["no" if a == "yes" else "yes" for a in raw]
    key = "generated|26|static noise"
    big = 1e3
    save_gem(tmp_path / "gem", model, "bundled")
    Calibration(
        offsets={key: {"yes": -big, "no": 0.0}},
        questions={question_skeleton(QUESTION): key},
    ).save(tmp_path / "gem")
    again = load_gem(tmp_path / "gem", lm=copy.deepcopy(base_lm[0]))
    assert again.calibration is not None
    assert again.choose(x, questions, [["yes", "no"]] * 2) == ["no", "no"]  # by text
    groups = [("generated", "26", "static noise"), ("ecgqa", "26", "static noise")]
    assert again.choose(x, questions, [["yes", "no"]] * 2, groups=groups)[1] == raw[1]
    again.calibration = Calibration(offsets={key: {"yes": big * (1 if raw[0] == "no" else -1)}})
    assert again.choose(x, questions[:1], [["yes", "no"]], groups=groups[:1]) == flipped[:1]


def test_candidates_share_the_prompt_cache_and_score_as_full_sequences(base_lm):
    """The cached scoring path gives each candidate the sum of a full prompt + answer pass."""
    model = _model(base_lm).eval()
    x = _signals(2)
    questions = [QUESTION, "<ecg>\nLeads: I ok; II drift 0.41\nWhat is the heart axis of this ECG?"]
    candidates = [["yes", "no", "not sure"], ["normal", "left axis deviation", "no"]]
    with torch.no_grad():
        got = model.candidate_scores(x, questions, candidates)
        pairs = enumerate(zip(questions, candidates, strict=True))
        flat = [(i, q, a) for i, (q, c) in pairs for a in c]
        want, _ = model.answer_logprobs(
            x, [q for _, q, _ in flat], [a for _, _, a in flat], rows=[i for i, _, _ in flat]
        )
    assert [len(g) for g in got] == [3, 3]
    assert [s for scores in got for s in scores] == pytest.approx(want.tolist(), abs=2e-3)
    assert got[0][0] != pytest.approx(got[0][1], abs=1e-3)  # the answers differ, not a constant
