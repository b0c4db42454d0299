"""The CinC Challenge 2021 metric: hand-computed cases and the real weights table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ecgflow.errors import EcgflowError
from ecgflow.evaluation.challenge import challenge_metric, challenge_score, load_challenge_weights

# classes: 0 = normal, 1 = A, 2 = B (A and B half-rewarded when confused)
W = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.5], [0.0, 0.5, 1.0]])


def test_hand_computed_score() -> None:
    labels = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 1]], dtype=bool)
    outputs = np.array([[1, 0, 0], [0, 0, 1], [0, 1, 0]], dtype=bool)
    # observed: rec 0 → A[0,0] += 1; rec 1 (n=2) → A[1,2] += 1/2; rec 2 (n=2) → A[1,1], A[2,1]
    # += 1/2 each. sum(W∘A) = 1 + 0.5·0.5 + 1·0.5 + 0.5·0.5 = 2.0
    # correct: rec 0 → 1; rec 1 → 1; rec 2 (n=2) → A[1,1], A[1,2], A[2,1], A[2,2] += 1/2,
    #          weighted 0.5 + 0.25 + 0.25 + 0.5 = 1.5; total 3.5
    # inactive (always normal): rec 0 → 1; rec 1 (n=2) → A[1,0] += 1/2 (w 0); rec 2 (n=3) → 0
    #          = 1.0
    assert challenge_score(labels, outputs, W, 0) == pytest.approx((2.0 - 1.0) / (3.5 - 1.0))
    assert challenge_score(labels, labels, W, 0) == pytest.approx(1.0)
    normal = np.zeros_like(labels)
    normal[:, 0] = True
    assert challenge_score(labels, normal, W, 0) == pytest.approx(0.0)
    wrong = np.array([[0, 1, 0], [1, 0, 0], [1, 0, 0]], dtype=bool)
    assert challenge_score(labels, wrong, W, 0) < 0


def test_real_weights_table_and_label_columns(shared_data: Path, tmp_path: Path) -> None:
    path = shared_data / "cinc2021" / "weights.csv"
    classes, weights = load_challenge_weights(path)
    assert len(classes) == 26 and np.allclose(weights, weights.T)
    assert np.allclose(np.diag(weights), 1.0)
    names = ["AF", "RBBB", "NSR"]
    targets = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]])
    assert challenge_metric(targets, targets, names, path) == pytest.approx(1.0)
    always_normal = np.tile([0, 0, 1], (4, 1))
    assert challenge_metric(targets, always_normal, names, path) == pytest.approx(0.0)
    with pytest.raises(EcgflowError, match="no Challenge class"):
        challenge_metric(targets, targets, ["AF", "RBBB", "NOPE"], path)
    bad = tmp_path / "weights.csv"
    bad.write_text(",a,b\na,1,x\n")
    with pytest.raises(EcgflowError, match=r"weights\.csv"):
        load_challenge_weights(bad)
    with pytest.raises(EcgflowError, match="not found"):
        load_challenge_weights(tmp_path / "missing.csv")
