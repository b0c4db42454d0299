"""The shared training core's pieces: sampler, schedule, retrieval and classification metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from ecgflow.errors import EcgflowError
from ecgflow.evaluation.classification import f1_thresholds, macro_auroc
from ecgflow.evaluation.retrieval import retrieval_metrics
from ecgflow.training.data import EpochSampler, inverse_prevalence_weights
from ecgflow.training.loop import TrainConfig
from ecgflow.training.schedule import warmup_cosine


def test_epoch_sampler_splits_an_epoch_between_ranks() -> None:
    shares = [list(EpochSampler(10, rank, 3, seed=1)) for rank in range(3)]
    assert all(len(s) == 4 for s in shares)  # padded to a multiple of the world size
    union = [i for s in shares for i in s]
    assert set(union) == set(range(10)) and len(union) == 12
    again = EpochSampler(10, 1, 3, seed=1)
    assert list(again) == shares[1]  # the order depends only on (seed, epoch)
    again.set_epoch(1)
    assert list(again) != shares[1]
    assert list(EpochSampler(5, shuffle=False)) == [0, 1, 2, 3, 4]


def test_weighted_sampling_favours_rare_labels() -> None:
    targets = np.zeros((100, 2), dtype=np.float32)
    targets[:90, 0] = 1
    targets[90:, 1] = 1
    weights = inverse_prevalence_weights(targets)
    assert weights[95] == pytest.approx(9 * weights[0])
    drawn = np.array(list(EpochSampler(100, seed=0, weights=weights)))
    assert 0.35 < (drawn >= 90).mean() < 0.65  # about half, not 10 %


def test_warmup_then_cosine_with_restarts() -> None:
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    schedule = warmup_cosine(optimizer, total_steps=110, warmup_steps=10, restarts=1)
    rates = []
    for _ in range(110):
        rates.append(schedule.get_last_lr()[0])
        optimizer.step()
        schedule.step()
    assert rates[0] < rates[5] < rates[9] <= 1.0  # warm-up rises
    assert rates[10] == pytest.approx(1.0)  # peak after warm-up
    assert rates[59] < 0.01  # end of the first cosine cycle
    assert rates[60] == pytest.approx(1.0)  # restart
    assert rates[-1] < 0.01


def test_a_late_group_waits_at_zero_then_gets_its_own_warmup_and_cosine() -> None:
    early, late = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([{"params": [early], "lr": 1.0}, {"params": [late], "lr": 0.1}])
    schedule = warmup_cosine(optimizer, total_steps=100, warmup_steps=10, starts=[0, 40])
    rates = []
    for _ in range(100):
        rates.append(schedule.get_last_lr())
        optimizer.step()
        schedule.step()
    first, second = [r[0] for r in rates], [r[1] for r in rates]
    assert first[10] == pytest.approx(1.0) and first[-1] < 0.01  # the first group as before
    assert second[:40] == [0.0] * 40  # stage 1: the late group does not move
    assert 0 < second[40] < second[45] < second[49] < 0.1  # its own warm-up from step 40
    assert second[50] == pytest.approx(0.1) and second[-1] < 0.001  # its peak, then cosine
    with pytest.raises(ValueError, match="starts"):
        warmup_cosine(optimizer, total_steps=100, warmup_steps=10, starts=[0])


def test_train_config_errors_name_the_field() -> None:
    with pytest.raises(EcgflowError, match=r"train.*batch_size"):
        TrainConfig(batch_size=1)
    with pytest.raises(EcgflowError, match="lr"):
        TrainConfig(lr=0)


def test_retrieval_metrics_by_hand() -> None:
    # 3 ECGs, 2 distinct texts; ECG 0 and 1 carry text 0, ECG 2 carries text 1
    text = np.eye(2)
    ecg = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    own = np.array([0, 0, 1])
    m = retrieval_metrics(ecg, text, own, ks=(1,))
    assert m["ecg_to_text_top1"] == pytest.approx(2 / 3)  # ECG 1 looks like text 1
    # text 0: the best ECG is 0 (tie with nothing) → hit; text 1: best ECG is 1 (stable
    # order among the tie 1, 2) which carries text 0 → miss
    assert m["text_to_ecg_top1"] == pytest.approx(0.5)
    assert m["mean_recall"] == pytest.approx((2 / 3 + 0.5) / 2)
    # chance: 1/2 for ECG→text; text 0 has 2 of 3 ECGs, text 1 has 1 of 3
    assert m["chance_mean_recall"] == pytest.approx((0.5 + (2 / 3 + 1 / 3) / 2) / 2)


def test_random_embeddings_score_near_chance() -> None:
    rng = np.random.default_rng(0)
    ecg = rng.standard_normal((400, 16))
    text = rng.standard_normal((20, 16))
    own = rng.integers(0, 20, 400)
    m = retrieval_metrics(ecg, text, own)
    assert abs(m["mean_recall"] - m["chance_mean_recall"]) < 0.08


def test_macro_auroc_and_thresholds_against_sklearn() -> None:
    rng = np.random.default_rng(1)
    targets = (rng.uniform(size=(200, 3)) < [0.5, 0.2, 0.0]).astype(float)
    scores = np.clip(targets * 0.3 + rng.uniform(size=(200, 3)) * 0.7, 0, 1)
    names = ["a", "b", "never"]
    expected = np.mean([roc_auc_score(targets[:, j], scores[:, j]) for j in range(2)])
    assert macro_auroc(targets, scores, names) == pytest.approx(expected)
    thresholds = f1_thresholds(targets, scores, names)
    assert thresholds["never"] == 0.5
    best = max(
        (
            2
            * ((scores[:, 0] >= t) & (targets[:, 0] == 1)).sum()
            / ((scores[:, 0] >= t).sum() + targets[:, 0].sum())
        )
        for t in np.unique(scores[:, 0])
    )
    chosen = scores[:, 0] >= thresholds["a"]
    f1 = 2 * (chosen & (targets[:, 0] == 1)).sum() / (chosen.sum() + targets[:, 0].sum())
    assert f1 == pytest.approx(best)


def test_checkpoints_leave_frozen_parameters_out_and_refuse_a_mismatch(tmp_path) -> None:
    from torch import nn

    from ecgflow.errors import EcgflowError
    from ecgflow.training.loop import _checkpoint_state, _load_checkpoint_state

    def model() -> nn.Module:
        net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
        net[0].requires_grad_(False)  # a frozen tower
        return net

    trained = model()
    state = _checkpoint_state(trained)
    assert "0.weight" not in state and "2.weight" in state and "1.running_mean" in state
    fresh = model()
    fresh[0].load_state_dict(trained[0].state_dict())  # frozen parts come from the same source
    _load_checkpoint_state(fresh, state, tmp_path / "last.pt")
    for a, b in zip(trained.state_dict().values(), fresh.state_dict().values(), strict=True):
        assert a.equal(b)
    del state["2.weight"]
    with pytest.raises(EcgflowError, match=r"last\.pt.*2\.weight"):
        _load_checkpoint_state(model(), state, tmp_path / "last.pt")


def test_rng_states_round_trip_through_a_weights_only_file(tmp_path) -> None:
    import random

    from ecgflow.training.loop import _atomic_save, _numpy_state, _safe_load, _set_numpy_state

    np.random.seed(7)
    random.seed(7)
    path = tmp_path / "rng.pt"
    _atomic_save({"python": random.getstate(), "numpy": _numpy_state()}, path)
    expected = (np.random.rand(3), random.random())
    np.random.seed(0)
    random.seed(0)
    rng = _safe_load(path, "cpu")  # weights_only=True: no pickled code, no ndarray
    random.setstate(rng["python"])
    _set_numpy_state(rng["numpy"])
    assert np.array_equal(np.random.rand(3), expected[0]) and random.random() == expected[1]


def test_a_corrupt_or_code_carrying_checkpoint_is_refused_with_its_path(tmp_path) -> None:
    from ecgflow.training.loop import _safe_load

    corrupt = tmp_path / "last.pt"
    corrupt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(EcgflowError, match=r"last\.pt \(sha256 [0-9a-f]{16}…\): not a readable"):
        _safe_load(corrupt, "cpu")
    # a pickle that would run code on load (weights_only refuses arbitrary globals)
    evil = tmp_path / "evil.pt"
    torch.save({"x": EcgflowError("boom")}, evil)
    with pytest.raises(EcgflowError, match=r"evil\.pt"):
        _safe_load(evil, "cpu")


def test_every_torch_load_in_the_project_is_weights_only() -> None:
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    unsafe = []
    for path in [*(root / "src").rglob("*.py"), *(root / "benchmarks").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "load"
                and ast.unparse(node.func.value) == "torch"
            ):
                flags = {k.arg: ast.unparse(k.value) for k in node.keywords}
                if flags.get("weights_only") != "True":
                    unsafe.append(f"{path.relative_to(root)}:{node.lineno}")
    assert unsafe == []
