import json
import math
import re

import pytest
import torch
from torch.nn import functional

from ecgflow.errors import EcgflowError
from ecgflow.models import (
    Classifier,
    ClassifierConfig,
    ClipConfig,
    ClipModel,
    EncoderConfig,
    ResNet1d,
    TextEncoder,
    TextEncoderConfig,
    ViT1d,
    build_encoder,
    clip_loss,
    load_ecg_encoder_state,
    load_model,
    save_model,
)
from ecgflow.models.text_encoder import find_layers

SMALL_RESNET = {"kind": "resnet1d", "width": 8, "depth": 3, "kernel_size": 5}
SMALL_VIT = {"kind": "vit1d", "width": 16, "depth": 2, "heads": 2, "patch_size": 25}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def text_encoder() -> TextEncoder:
    return TextEncoder(TextEncoderConfig()).eval()


@pytest.mark.parametrize("params", [SMALL_RESNET, SMALL_VIT], ids=["resnet1d", "vit1d"])
@pytest.mark.parametrize("channels", [12, 1])
@pytest.mark.parametrize("length", [1000, 500])
def test_encoder_output_shape(params: dict, channels: int, length: int) -> None:
    encoder = build_encoder(EncoderConfig(**params, in_channels=channels))
    out = encoder(torch.randn(3, channels, length))
    assert out.shape == (3, encoder.out_dim)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_encoder_kinds_and_out_dim() -> None:
    resnet = build_encoder(EncoderConfig(**SMALL_RESNET))
    vit = build_encoder(EncoderConfig(**SMALL_VIT))
    assert isinstance(resnet, ResNet1d)
    assert resnet.out_dim == 2 * 8 * 4  # concat pooling of the last stage (8 * 2**2 channels)
    assert isinstance(vit, ViT1d)
    assert vit.out_dim == 16


def test_default_resnet_caps_channels_and_handles_short_input() -> None:
    encoder = build_encoder(EncoderConfig(width=4, depth=6, kernel_size=3)).eval()
    assert encoder.out_dim == 2 * 4 * 8
    with torch.no_grad():
        assert encoder(torch.randn(2, 12, 500)).shape == (2, 64)


def test_vit_crops_to_patch_multiple() -> None:
    encoder = build_encoder(EncoderConfig(**SMALL_VIT)).eval()
    x = torch.randn(2, 12, 510)
    with torch.no_grad():
        torch.testing.assert_close(encoder(x), encoder(x[..., :500]))


def test_vit_rejects_too_long_input() -> None:
    encoder = build_encoder(EncoderConfig(**SMALL_VIT, max_patches=10))
    encoder(torch.randn(1, 12, 250))  # exactly 10 patches
    with pytest.raises(ValueError, match="275"):
        encoder(torch.randn(1, 12, 275))
    with pytest.raises(ValueError, match="shorter than one patch"):
        encoder(torch.randn(1, 12, 10))


def test_encoder_config_validation() -> None:
    with pytest.raises(ValueError, match="extra"):
        EncoderConfig(bogus=1)
    with pytest.raises(ValueError):
        EncoderConfig(width=0)
    with pytest.raises(ValueError, match="odd"):
        EncoderConfig(kernel_size=4)
    with pytest.raises(ValueError, match="divisible"):
        EncoderConfig(kind="vit1d", width=30, heads=4)


def test_text_encoder_shape_and_similarity(text_encoder: TextEncoder) -> None:
    assert text_encoder.out_dim == 384
    texts = [
        "sinus rhythm",
        "normal sinus rhythm",
        "left bundle branch block",
        "complete left bundle branch block",
    ]
    batch = text_encoder.tokenize(texts)
    assert set(batch) == {"input_ids", "attention_mask"}
    with torch.no_grad():
        emb = functional.normalize(text_encoder(**batch), dim=-1)
    assert emb.shape == (4, 384)
    sim = emb @ emb.T
    assert sim[0, 1] > sim[0, 2] + 0.3
    assert sim[2, 3] > sim[1, 3] + 0.3


def test_text_encoder_padding_does_not_change_embedding(text_encoder: TextEncoder) -> None:
    with torch.no_grad():
        alone = text_encoder(**text_encoder.tokenize(["sinus rhythm"]))
        padded = text_encoder(**text_encoder.tokenize(["sinus rhythm", "a much longer text " * 5]))
    torch.testing.assert_close(alone[0], padded[0], atol=1e-5, rtol=1e-4)


def test_text_encoder_truncates() -> None:
    encoder = TextEncoder(TextEncoderConfig(max_length=8))
    batch = encoder.tokenize(["word " * 50, "short"])
    assert batch["input_ids"].shape == (2, 8)


def _frozen_names(encoder: TextEncoder) -> set[str]:
    return {name for name, p in encoder.model.named_parameters() if not p.requires_grad}


def test_text_encoder_freezing(text_encoder: TextEncoder) -> None:
    names = [name for name, _ in text_encoder.model.named_parameters()]
    assert len(find_layers(text_encoder.model)) == 6
    expected = {
        n
        for n in names
        if n.startswith(("embeddings.", "pooler."))
        or any(n.startswith(f"encoder.layer.{i}.") for i in range(4))
    }
    assert _frozen_names(text_encoder) == expected
    params = dict(text_encoder.model.named_parameters())
    frozen = sum(params[n].numel() for n in expected)
    assert sum(p.numel() for p in text_encoder.parameters() if not p.requires_grad) == frozen
    assert any(p.requires_grad for p in text_encoder.parameters())


def test_text_encoder_freeze_all_and_none() -> None:
    everything = TextEncoder(TextEncoderConfig(freeze_layers=6))
    assert not any(p.requires_grad for p in everything.parameters())
    nothing = TextEncoder(TextEncoderConfig(freeze_layers=0))
    assert _frozen_names(nothing) == {
        n for n, _ in nothing.model.named_parameters() if n.startswith("pooler.")
    }


def test_text_encoder_missing_path(tmp_path) -> None:
    with pytest.raises(EcgflowError, match="nowhere"):
        TextEncoder(TextEncoderConfig(path=str(tmp_path / "nowhere")))
    with pytest.raises(EcgflowError, match=re.escape(str(tmp_path))):
        TextEncoder(TextEncoderConfig(path=str(tmp_path)))


def test_clip_loss_matched_lower_than_shuffled() -> None:
    emb = functional.normalize(torch.randn(8, 16), dim=-1)
    noisy = functional.normalize(emb + 0.1 * torch.randn(8, 16), dim=-1)
    scale = torch.tensor(10.0)
    matched = clip_loss(emb, noisy, scale)
    shuffled = clip_loss(emb, noisy[torch.roll(torch.arange(8), 1)], scale)
    assert matched < shuffled


def test_clip_loss_hand_computation() -> None:
    ecg = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    text = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    scale = torch.tensor(2.0)
    logits = [[2.0, 1.2], [0.0, 1.6]]  # scale * ecg @ text.T

    def ce(row: list[float], target: int) -> float:
        return -row[target] + math.log(sum(math.exp(v) for v in row))

    rows = ce(logits[0], 0) + ce(logits[1], 1)
    columns = ce([logits[0][0], logits[1][0]], 0) + ce([logits[0][1], logits[1][1]], 1)
    expected = (rows / 2 + columns / 2) / 2
    assert clip_loss(ecg, text, scale).item() == pytest.approx(expected, rel=1e-6)


def _clip_config(**kwargs) -> ClipConfig:
    return ClipConfig(encoder=EncoderConfig(**SMALL_RESNET), embed_dim=32, **kwargs)


def test_clip_model_forward_and_scale() -> None:
    model = ClipModel(_clip_config(init_temperature=0.07, max_logit_scale=50.0)).eval()
    assert model.scale().item() == pytest.approx(1 / 0.07, rel=1e-5)
    batch = model.text_encoder.tokenize(["sinus rhythm", "atrial fibrillation"])
    with torch.no_grad():
        ecg, text, scale = model(torch.randn(2, 12, 500), **batch)
    assert ecg.shape == text.shape == (2, 32)
    torch.testing.assert_close(ecg.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(text.norm(dim=-1), torch.ones(2))
    with torch.no_grad():
        model.logit_scale.fill_(math.log(1000.0))
    assert model.scale().item() == pytest.approx(50.0, rel=1e-5)
    model.scale().backward()
    assert model.logit_scale.grad is not None
    assert model.logit_scale.grad.item() == 0.0  # clamped: no gradient pushes it further


def _assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_clip_round_trip(tmp_path) -> None:
    config = _clip_config()
    model = ClipModel(config).eval()
    save_model(tmp_path / "clip", model, config, "clip")
    document = json.loads((tmp_path / "clip" / "config.json").read_text())
    assert document["kind"] == "clip"
    assert set(document) == {"kind", "config", "ecgflow_version"}

    loaded, loaded_config = load_model(tmp_path / "clip")
    assert isinstance(loaded, ClipModel)
    assert loaded_config == config
    assert not loaded.training
    _assert_same_state(model, loaded)
    x = torch.randn(2, 12, 1000)
    batch = model.text_encoder.tokenize(["sinus rhythm", "left bundle branch block"])
    with torch.no_grad():
        for expected, actual in zip(model(x, **batch), loaded(x, **batch), strict=True):
            assert torch.equal(expected, actual)

    state, encoder_config = load_ecg_encoder_state(tmp_path / "clip")
    assert encoder_config == config.encoder
    assert not any(key.startswith("ecg_encoder.") for key in state)
    encoder = build_encoder(encoder_config)
    encoder.load_state_dict(state, strict=True)
    encoder.eval()
    with torch.no_grad():
        assert torch.equal(encoder(x), model.ecg_encoder(x))

    classifier = Classifier(ClassifierConfig(encoder=encoder_config, labels=["NORM", "AF"]))
    classifier.encoder.load_state_dict(state, strict=True)


@pytest.mark.parametrize("params", [SMALL_RESNET, SMALL_VIT], ids=["resnet1d", "vit1d"])
def test_classifier_round_trip(tmp_path, params: dict) -> None:
    config = ClassifierConfig(encoder=EncoderConfig(**params), labels=["NORM", "AF", "LBBB"])
    model = Classifier(config)
    x = torch.randn(4, 12, 1000)
    model(x).sum().backward()  # a training step changes BN running stats
    model.eval()
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (4, 3)
    save_model(tmp_path / "clf", model, config, "classifier")
    loaded, loaded_config = load_model(tmp_path / "clf")
    assert isinstance(loaded, Classifier)
    assert loaded_config == config
    _assert_same_state(model, loaded)
    with torch.no_grad():
        assert torch.equal(loaded(x), logits)
    with pytest.raises(EcgflowError, match="expected a clip model"):
        load_ecg_encoder_state(tmp_path / "clf")


def test_classifier_config_validation() -> None:
    with pytest.raises(ValueError):
        ClassifierConfig(labels=[])
    with pytest.raises(ValueError, match="duplicate"):
        ClassifierConfig(labels=["AF", "AF"])


def test_load_errors(tmp_path) -> None:
    with pytest.raises(EcgflowError, match="missing"):
        load_model(tmp_path / "missing")
    with pytest.raises(EcgflowError, match="missing"):
        load_ecg_encoder_state(tmp_path / "missing")
    folder = tmp_path / "empty"
    folder.mkdir()
    with pytest.raises(EcgflowError, match=r"config\.json"):
        load_model(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(EcgflowError, match=r"config\.json"):
        load_model(folder)
    (folder / "config.json").write_text(json.dumps({"kind": "gan", "config": {}}))
    with pytest.raises(EcgflowError, match="unknown kind"):
        load_model(folder)
    (folder / "config.json").write_text(
        json.dumps({"kind": "classifier", "config": {"labels": ["AF"]}})
    )
    with pytest.raises(EcgflowError, match=r"model\.safetensors"):
        load_model(folder)
    (folder / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(EcgflowError, match=r"model\.safetensors"):
        load_model(folder)
    (folder / "config.json").write_text(
        json.dumps({"kind": "classifier", "config": {"labels": []}})
    )
    with pytest.raises(EcgflowError, match="labels"):
        load_model(folder)


def test_load_rejects_mismatched_weights(tmp_path) -> None:
    config = ClassifierConfig(encoder=EncoderConfig(**SMALL_RESNET), labels=["AF"])
    save_model(tmp_path, Classifier(config), config, "classifier")
    other = config.model_copy(update={"labels": ["AF", "NORM"]})
    document = json.loads((tmp_path / "config.json").read_text())
    document["config"] = other.model_dump(mode="json")
    (tmp_path / "config.json").write_text(json.dumps(document))
    with pytest.raises(EcgflowError, match=r"model\.safetensors"):
        load_model(tmp_path)
