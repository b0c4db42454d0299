"""The PhysioNet/CinC Challenge scoring metric (2021 definition; 2020 tables accepted).

Semantics of the Challenge's ``evaluate_model.py``: a modified multi-label confusion matrix
``A`` where each recording adds ``1 / n`` to ``A[j, k]`` for every true class ``j`` and predicted
class ``k`` (``n`` = number of distinct classes true or predicted for it, at least 1); the score
is ``sum(W ∘ A)`` normalised so that perfect outputs score 1 and always predicting the normal
class (sinus rhythm) scores 0. evaluation-2020's ``evaluate_12ECG_score.py`` computes the same
score; it also rewrote labels and outputs first (sinus rhythm off when another class is on, on
when none is), which is not done here. Either year's weights.csv is accepted, its equivalent
codes merged as the official scoring does (:mod:`ecgflow.labels.cinc_tables`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ecgflow.errors import EcgflowError
from ecgflow.labels.cinc import SCORED_2021
from ecgflow.labels.cinc_tables import read_weights

NORMAL = "426783006"
CHALLENGE_LABEL_SETS = ("cinc2021-scored", "cinc2020-scored")


def is_challenge_label_set(label_set: str) -> bool:
    """True for the label sets the Challenge metric scores."""
    return label_set in CHALLENGE_LABEL_SETS


def load_challenge_weights(path: Path) -> tuple[list[frozenset[str]], np.ndarray]:
    """The classes (each a set of equivalent SNOMED CT codes) and the reward matrix.

    Either year's weights.csv; equivalent codes are merged as the official scoring does
    (see :mod:`ecgflow.labels.cinc_tables`).
    """
    classes, weights = read_weights(Path(path))
    return [frozenset(codes) for codes in classes], weights


def _modified_confusion(labels: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    union = np.maximum(1, (labels | outputs).sum(axis=1)).astype(np.float64)
    return (labels.astype(np.float64) / union[:, None]).T @ outputs.astype(np.float64)


def challenge_score(
    labels: np.ndarray, outputs: np.ndarray, weights: np.ndarray, normal_index: int
) -> float:
    """Normalised Challenge score of boolean ``outputs`` [N, K] against ``labels`` [N, K]."""
    labels, outputs = labels.astype(bool), outputs.astype(bool)
    observed = float((weights * _modified_confusion(labels, outputs)).sum())
    correct = float((weights * _modified_confusion(labels, labels)).sum())
    normal = np.zeros_like(labels)
    normal[:, normal_index] = True
    inactive = float((weights * _modified_confusion(labels, normal)).sum())
    if correct == inactive:
        return 0.0  # as the official code does when every recording is normal
    return (observed - inactive) / (correct - inactive)


def challenge_metric(
    targets: np.ndarray,
    predictions: np.ndarray,
    names: list[str],
    weights_path: Path,
    normal: str = NORMAL,
    codes: Mapping[str, Sequence[str]] | None = None,
) -> float:
    """The Challenge score of a cinc label set's 0/1 ``predictions`` (columns ``names``).

    ``codes``: the SNOMED CT codes of each label (label_def.json's ``info.codes``; default: the
    2021 classes). A label is scored as the weights class holding all its codes; labels of one
    class are merged (positive if any is), so an equivalent pair counts once.
    """
    classes, weights = load_challenge_weights(Path(weights_path))
    if codes is None:
        codes = {name: [code for code, _ in pairs] for name, pairs in SCORED_2021}
    index: list[int] = []
    unknown = []
    for name in names:
        wanted = frozenset(codes.get(name, ()))
        match = [k for k, c in enumerate(classes) if wanted and wanted <= c]
        if match:
            index.append(match[0])
        else:
            unknown.append(name)
    if unknown:
        raise EcgflowError(
            f"{weights_path}: no Challenge class for the labels {unknown} (its classes do not "
            "cover the label set; is it the label set's Challenge year?)"
        )
    normal_index = next((k for k, c in enumerate(classes) if normal in c), None)
    if normal_index is None:
        raise EcgflowError(f"{weights_path}: the normal class {normal} is not scored")
    n = len(targets)
    labels = np.zeros((n, len(classes)), dtype=bool)
    outputs = np.zeros((n, len(classes)), dtype=bool)
    targets, predictions = np.asarray(targets, dtype=bool), np.asarray(predictions, dtype=bool)
    for j, k in enumerate(index):
        labels[:, k] |= targets[:, j]
        outputs[:, k] |= predictions[:, j]
    return challenge_score(labels, outputs, weights, normal_index)
