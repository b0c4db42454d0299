"""inception1d and xresnet1d; the quality benchmark's variants (issue 31.2): seed and fold
ensembles and their paired comparisons, test-time augmentation, the auxiliary statement head."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ecgflow.evaluation.classification import macro_auroc
from ecgflow.models import Classifier, ClassifierConfig, load_model
from ecgflow.models.configs import EncoderConfig
from ecgflow.models.encoders import XRESNET_LAYERS, Inception1d, XResNet1d, build_encoder
from ecgflow.params import FinetuneParams
from ecgflow.training.distributed import DistEnv
from ecgflow.training.loop import fit


def _quality():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "quality.py"
    spec = importlib.util.spec_from_file_location("quality_variants_benchmark", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# --- inception1d -------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [12, 1])
@pytest.mark.parametrize("length", [250, 1000, 37])
def test_inception_shapes(channels: int, length: int) -> None:
    torch.manual_seed(0)
    config = EncoderConfig(
        kind="inception1d", width=8, depth=6, kernel_size=39, in_channels=channels
    )
    encoder = build_encoder(config)
    assert isinstance(encoder, Inception1d)
    assert encoder.out_dim == 2 * 4 * 8  # concat pooling of four branches of 8 filters
    assert len(encoder.shortcuts) == 2  # one per three blocks
    assert [c.kernel_size[0] for c in encoder.blocks[0].convs] == [39, 19, 9]
    out = encoder(torch.randn(3, channels, length))
    assert out.shape == (3, encoder.out_dim) and torch.isfinite(out).all()


def test_inception_learns_through_the_shortcuts_and_rejects_even_kernels() -> None:
    torch.manual_seed(0)
    model = Classifier(
        ClassifierConfig(
            encoder=EncoderConfig(kind="inception1d", width=4, depth=3, kernel_size=9),
            labels=["a"],
        )
    )
    model(torch.randn(2, 12, 100)).sum().backward()
    assert model.encoder.shortcuts[0][0].weight.grad.abs().sum() > 0
    assert model.encoder.blocks[0].bottleneck.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="odd"):
        EncoderConfig(kind="inception1d", kernel_size=40)


@pytest.mark.parametrize("depth", [50, 101])
def test_xresnet_shapes_and_depths(depth: int) -> None:
    torch.manual_seed(0)
    config = EncoderConfig(kind="xresnet1d", width=8, depth=depth, kernel_size=5)
    encoder = build_encoder(config)
    assert isinstance(encoder, XResNet1d)
    assert len(encoder.stages) == sum(XRESNET_LAYERS[depth])
    assert encoder.out_dim == 2 * 8 * 8 * 4  # concat pooling of the last stage (8 × 8 × 4)
    for length in (250, 37):
        out = encoder(torch.randn(2, 12, length))
        assert out.shape == (2, encoder.out_dim) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="50 or 101"):
        EncoderConfig(kind="xresnet1d", depth=34)


# --- ensembles, comparisons, test-time augmentation --------------------------------------------


def _targets(rng: np.random.Generator) -> np.ndarray:
    targets = (rng.random((80, 3)) < 0.3).astype(np.float32)
    targets[:2] = [[1, 1, 1], [0, 0, 0]]
    return targets


def test_ensemble_is_the_mean_and_helps_noisy_members() -> None:
    quality = _quality()
    rng = np.random.default_rng(0)
    targets = _targets(rng)
    members = [targets + rng.normal(scale=1.0, size=targets.shape) for _ in range(5)]
    (mean,) = quality.ensemble(members)
    np.testing.assert_allclose(mean, np.mean(members, axis=0))
    names = ["a", "b", "c"]
    single = np.mean([macro_auroc(targets, m, names) for m in members])
    assert macro_auroc(targets, mean, names) > single  # independent noise averages out


def test_comparisons_pair_variants_with_the_reference_and_tta_with_its_models() -> None:
    quality = _quality()
    rng = np.random.default_rng(1)
    targets = _targets(rng)
    good = [targets + rng.normal(scale=0.5, size=targets.shape) for _ in range(2)]
    weak = [targets + rng.normal(scale=3.0, size=targets.shape) for _ in range(2)]
    held = {"per_run": {"aux": [{"test_scores": g.tolist(), "tta_scores": {"scale": g.tolist()}}
                                for g in good]}}  # fmt: skip
    reference = {"per_run": {"baseline": [{"test_scores": w.tolist()} for w in weak],
                             "default": [{"test_scores": w.tolist()} for w in weak]}}  # fmt: skip
    own = quality.score_sets(held)
    assert sorted(own) == ["aux", "aux+tta:scale"]
    sets = own | quality.score_sets(reference, prefix="ref:")
    pairs = quality.comparison_pairs(own, reference=True)
    assert ("aux+tta:scale", "aux") in pairs and ("aux", "ref:baseline") in pairs
    assert ("aux", "ref:default") in pairs
    out = quality.compare(sets, pairs, targets, [f"p{i}" for i in range(80)], 200, 0)
    assert set(out) == {"single", "ensemble", "ensemble_vs_single"}
    gain = out["ensemble_vs_single"]["aux ensemble − aux"]  # the mean of two noisy runs
    assert gain["diff"] == pytest.approx(
        gain["a_macro_auroc"] - np.mean([macro_auroc(targets, g, ["a", "b", "c"]) for g in good])
    )
    assert "aux ensemble − ref:baseline" in out["ensemble_vs_single"]
    assert out["single"]["aux − ref:baseline"]["diff_ci95"][0] > 0
    same = out["single"]["aux+tta:scale − aux"]  # identical scores: no difference at all
    assert same["diff"] == 0 and same["diff_ci95"] == [0.0, 0.0]
    # without a reference: variants against this run's baseline and default, never reversed
    local = quality.comparison_pairs({"default": good, "baseline": weak}, reference=False)
    assert local == [("default", "baseline")]


def test_tta_scores_keep_the_window_and_average_scalings() -> None:
    quality = _quality()
    torch.manual_seed(0)
    encoder = EncoderConfig(width=8, depth=2)
    model = Classifier(ClassifierConfig(encoder=encoder, labels=["a", "b"], window=100)).eval()
    x = torch.randn(4, 12, 400)
    out = quality.tta_scores(model, x)
    assert set(out) == {"scale", "dense", "dense+scale"}
    assert model.config.window_stride is None  # restored
    expected = np.mean([quality.predict(model, x * f) for f in quality.TTA_SCALES], axis=0)
    np.testing.assert_allclose(out["scale"], expected, rtol=1e-5)
    assert not np.allclose(out["dense"], quality.predict(model, x))  # more windows
    short = quality.tta_scores(model, torch.randn(2, 12, 80))  # no windows: scaling only
    assert set(short) == {"scale"}


# --- auxiliary SCP-statement head --------------------------------------------------------------


def _synthetic_outputs(root: Path, n: int = 24) -> tuple[Path, Path, Path]:
    """A preprocess output (train/val), a main label output (2 labels) and an aux one (3)."""
    rng = np.random.default_rng(0)
    ids = [f"r{i}" for i in range(n)]
    data, labels, aux = root / "data", root / "labels", root / "aux"
    (data).mkdir()
    (data / "preprocess.json").write_text(json.dumps({"n_channels": 12, "fs": 100.0}))
    for split, part in (("train", ids[: n - 8]), ("val", ids[n - 8 :])):
        (data / split).mkdir()
        np.save(
            data / split / "shard-00000.npy", rng.normal(size=(len(part), 12, 200)).astype("f4")
        )
        index = pd.DataFrame({"record_id": part, "shard": 0, "row": range(len(part))})
        index.to_parquet(data / split / "index.parquet")
    for folder, names in ((labels, ["A", "B"]), (aux, ["X", "Y", "Z"])):
        folder.mkdir()
        table = pd.DataFrame({"record_id": ids})
        for name in names:
            table[name] = (rng.random(n) < 0.5).astype("uint8")
        table.iloc[0, 1:] = 1
        table.iloc[1, 1:] = 0
        table.to_parquet(folder / "labels.parquet")
        entries = [{"name": name, "pos_weight": 1.0} for name in names]
        (folder / "label_def.json").write_text(json.dumps({"labels": entries}))
    return data, labels, aux


def test_aux_task_trains_both_heads_and_saves_an_ordinary_classifier(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    quality = _quality()
    torch.manual_seed(0)
    data, labels, aux = _synthetic_outputs(tmp_path)
    params = FinetuneParams.model_validate(
        {"encoder": {"width": 8, "depth": 2}, "crop_s": 1.0,
         "train": {"epochs": 1, "batch_size": 8, "device": "cpu", "ema_decay": None}}
    )  # fmt: skip
    task = quality.AuxTask(params, data, labels, aux, weight=1.0)
    x, y = task.collate([task.train_dataset[i] for i in range(4)])
    assert y.shape == (4, 2 + 3) and x.shape == (4, 12, 100)
    assert task.model(x).shape == (4, 5)
    with torch.no_grad():  # the statements' loss is added to the main one
        main = torch.nn.functional.binary_cross_entropy_with_logits(
            task.model(x)[:, :2], y[:, :2], pos_weight=task.pos_weight
        )
        assert float(task.loss(task.model, (x, y), torch.device("cpu"))) > float(main)
    # soft targets: a present statement's likelihood / 100, 0 (non-diagnostic) as certain
    ids = [task.train_dataset.main.rows.record_ids[i] for i in task.train_dataset.main.keep]
    likelihoods = {r: {"X": 50.0, "Y": 0.0, "Z": 80.0} for r in ids}
    soft = quality.AuxTask(params, data, labels, aux, 1.0, likelihoods).train_dataset.aux
    hard = task.train_dataset.aux
    torch.testing.assert_close(soft, hard * torch.tensor([0.5, 1.0, 0.8]))
    env = DistEnv(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    result = fit(task, params.train, tmp_path / "out", env, resume=False)
    assert "macro_auroc" in result.best
    saved, config = load_model(tmp_path / "out" / "model")
    assert config.labels == ["A", "B"]
    with torch.no_grad():  # one epoch: the saved model is the trained one, its main outputs
        torch.testing.assert_close(saved.eval()(x), task.model.eval()(x)[:, :2])
    thresholds = json.loads((tmp_path / "out" / "model" / "thresholds.json").read_text())
    assert thresholds["labels"] == ["A", "B"]
