"""Sliding-window classifiers, random-crop fine-tuning parameters, EMA of the weights; the
quality benchmark's untouched folds and its paired patient bootstrap."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from ecgflow.evaluation.classification import macro_auroc
from ecgflow.models import Classifier, ClassifierConfig
from ecgflow.models.configs import EncoderConfig
from ecgflow.params import FinetuneParams, TrainConfig
from ecgflow.training.distributed import DistEnv
from ecgflow.training.loop import WeightAverage, fit

SMALL = EncoderConfig(width=8, depth=2)


def test_classifier_windows_average_window_logits() -> None:
    torch.manual_seed(2)
    config = ClassifierConfig(encoder=SMALL, labels=["a", "b"], window=100, window_stride=50)
    model = Classifier(config).eval()
    x = torch.randn(3, 12, 260)
    with torch.no_grad():
        out = model(x)
        starts = [0, 50, 100, 150, 160]  # the last window ends at the input's end
        expected = torch.stack([model.head(model.encoder(x[..., s : s + 100])) for s in starts])
    assert out.shape == (3, 2)
    torch.testing.assert_close(out, expected.mean(dim=0))


def test_classifier_window_leaves_short_inputs_alone() -> None:
    torch.manual_seed(3)
    model = Classifier(ClassifierConfig(encoder=SMALL, labels=["a"], window=100)).eval()
    x = torch.randn(2, 12, 100)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.head(model.encoder(x)))


def test_default_stride_is_half_a_window() -> None:
    model = Classifier(ClassifierConfig(encoder=SMALL, labels=["a"], window=40)).eval()
    calls: list[int] = []
    model.encoder.register_forward_hook(lambda _m, inputs, _o: calls.append(inputs[0].shape[0]))
    with torch.no_grad():
        model(torch.randn(1, 12, 100))
    assert calls == [4]  # starts 0, 20, 40, 60


def test_params_validate_new_fields() -> None:
    assert FinetuneParams().crop_s == 2.5 and FinetuneParams().augment  # the tuned recipe
    assert FinetuneParams.model_validate({"crop_s": None}).crop_s is None
    with pytest.raises(Exception, match="crop_s"):
        FinetuneParams.model_validate({"crop_s": 0})


class _Regression:
    """A toy Task: a linear model fitting y = x · w."""

    name = "toy"
    selection_metric = "score"
    sample_weights = None
    epoch_samples = None

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(64, 4, generator=generator)
        self.train_dataset = TensorDataset(x, x @ torch.tensor([1.0, -2.0, 0.5, 3.0]))
        torch.manual_seed(0)
        self.model = nn.Linear(4, 1)
        self.saved: dict[str, torch.Tensor] = {}

    def collate(self, batch: list) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.stack([b[0] for b in batch]), torch.stack([b[1] for b in batch])

    def loss(self, model: nn.Module, batch: tuple, device: torch.device) -> torch.Tensor:
        x, y = batch
        return ((model(x).squeeze(-1) - y) ** 2).mean()

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        x, y = self.train_dataset.tensors
        return {"score": -float(((model(x).squeeze(-1) - y) ** 2).mean())}

    def save_best(self, model: nn.Module, folder) -> None:
        self.saved = {k: v.clone() for k, v in model.state_dict().items()}

    def params(self) -> dict:
        return {}


def test_weight_average_moves_towards_the_weights() -> None:
    model = nn.Linear(2, 1)
    average = WeightAverage(model, decay=0.75)
    before = average.model.weight.clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    average.update()
    torch.testing.assert_close(average.model.weight, before + 0.25)
    assert not any(p.requires_grad for p in average.model.parameters())


def test_fit_with_ema_selects_the_average_and_resumes_exactly(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    env = DistEnv(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    train = {"epochs": 4, "batch_size": 8, "lr": 0.05, "patience": 0, "ema_decay": 0.9}
    straight = _Regression()
    result = fit(straight, TrainConfig(**train), tmp_path / "a", env, resume=False)
    raw = straight.model.state_dict()
    assert result.best_epoch >= 0
    assert not torch.equal(straight.saved["weight"], raw["weight"])  # the average, not raw

    interrupted = _Regression()
    calls = {"n": 0}
    evaluate = interrupted.evaluate

    def failing(model: nn.Module, device: torch.device) -> dict[str, float]:
        calls["n"] += 1
        if calls["n"] == 3:  # a kill during epoch 2: the checkpoint holds epoch 1
            raise KeyboardInterrupt
        return evaluate(model, device)

    interrupted.evaluate = failing  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        fit(interrupted, TrainConfig(**train), tmp_path / "b", env, resume=False)
    resumed = _Regression()
    again = fit(resumed, TrainConfig(**train), tmp_path / "b", env, resume=True)
    assert [row["score"] for row in again.history] == [row["score"] for row in result.history]
    torch.testing.assert_close(resumed.saved["weight"], straight.saved["weight"])


# --- benchmarks/quality.py: untouched folds, paired bootstrap over patients --------------------


def _quality():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "quality.py"
    spec = importlib.util.spec_from_file_location("quality_benchmark", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_quality_choices_never_see_the_untouched_folds() -> None:
    quality = _quality()
    cv_folds = list(range(1, 9))
    splits = quality.cv_splits(cv_folds, 4, 2, 1)
    assert sorted(f for s in splits for f in s["test"]) == cv_folds  # each CV fold tested once
    for s in splits:
        assert sorted(s["train"] + s["select"] + s["test"]) == cv_folds
    held = quality.untouched_split(cv_folds, [8])
    assert held == {"train": [1, 2, 3, 4, 5, 6, 7], "select": [8], "test": [9, 10]}


def _scores(rng: np.random.Generator, targets: np.ndarray, signal: float) -> np.ndarray:
    return np.round(signal * targets + rng.normal(size=targets.shape), 1)  # rounding: ties


def test_paired_bootstrap_matches_macro_auroc_and_keeps_patients_together() -> None:
    quality = _quality()
    rng = np.random.default_rng(0)
    targets = (rng.random((60, 3)) < 0.3).astype(np.float32)
    targets[:2] = [[1, 1, 1], [0, 0, 0]]  # every label has both classes
    good = [_scores(rng, targets, 2.0) for _ in range(3)]
    weak = [_scores(rng, targets, 0.3) for _ in range(3)]
    names = ["a", "b", "c"]
    patients = [f"p{i}" for i in range(60)]
    out = quality.paired_bootstrap(targets, good, weak, patients, n=300, seed=1)
    expected = np.mean([macro_auroc(targets, s, names) for s in good]) - np.mean(
        [macro_auroc(targets, s, names) for s in weak]
    )
    assert out["diff"] == pytest.approx(expected)  # rank AUROC with ties = sklearn's
    assert out["diff_ci95"][0] > 0.02 and out["clears_margin"]
    same = quality.paired_bootstrap(targets, good, good, patients, n=50, seed=1)
    assert same["diff_ci95"] == [0.0, 0.0] and not same["clears_margin"]
    low, high = same["diff_ci95_seeds_and_patients"]  # drawing seeds too: other seeds differ
    assert low < 0 < high

    # each patient's record four times: drawing whole patients gives the intervals of the
    # de-duplicated records; treating the copies as patients would make them narrower
    copies = np.repeat(np.arange(60), 4)
    args = (targets[copies], [s[copies] for s in good], [s[copies] for s in weak])
    grouped = quality.paired_bootstrap(*args, [patients[i] for i in copies], n=300, seed=1)
    assert grouped["diff_ci95"] == pytest.approx(out["diff_ci95"])
    assert grouped["n_patients"] == 60 and grouped["n_records"] == 240
    loose = quality.paired_bootstrap(*args, [str(i) for i in range(240)], n=300, seed=1)
    width = np.diff(out["diff_ci95"])[0]
    assert np.diff(loose["diff_ci95"])[0] < 0.8 * width
