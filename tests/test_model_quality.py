"""Sliding-window classifiers, random-crop fine-tuning parameters, EMA of the weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

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
