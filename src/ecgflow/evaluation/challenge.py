"""The PhysioNet/CinC Challenge 2021 scoring metric.

Semantics of the Challenge's ``evaluate_model.py``: a modified multi-label confusion matrix
``A`` where each recording adds ``1 / n`` to ``A[j, k]`` for every true class ``j`` and predicted
class ``k`` (``n`` = number of distinct classes true or predicted for it, at least 1); the score
is ``sum(W ∘ A)`` normalised so that perfect outputs score 1 and always predicting the normal
class (sinus rhythm) scores 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ecgflow.errors import EcgflowError
from ecgflow.labels.cinc import SCORED_2021

NORMAL = "426783006"
CHALLENGE_LABEL_SETS = ("cinc2021-scored", "cinc2020-scored")


def is_challenge_label_set(label_set: str) -> bool:
    """True for the label sets the Challenge metric scores."""
    return label_set in CHALLENGE_LABEL_SETS


def load_challenge_weights(path: Path) -> tuple[list[frozenset[str]], np.ndarray]:
    """The classes (each a set of equivalent SNOMED CT codes) and the reward matrix."""
    try:
        table = pd.read_csv(path, index_col=0, dtype=str)
        weights = table.to_numpy(dtype=np.float64)
    except FileNotFoundError:
        raise EcgflowError(f"{path}: not found (the Challenge's weights.csv)") from None
    except (ValueError, pd.errors.ParserError, OSError) as exc:
        raise EcgflowError(f"{path}: not a Challenge weights table ({exc})") from None
    columns = [frozenset(c.strip() for c in str(h).split("|")) for h in table.columns]
    rows = [frozenset(c.strip() for c in str(h).split("|")) for h in table.index]
    if columns != rows or weights.shape != (len(columns), len(columns)):
        raise EcgflowError(f"{path}: rows and columns must list the same classes")
    if not np.isfinite(weights).all():
        raise EcgflowError(f"{path}: non-numeric or missing weights")
    return columns, weights


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
) -> float:
    """The Challenge score of a cinc label set's 0/1 ``predictions`` (columns ``names``)."""
    classes, weights = load_challenge_weights(Path(weights_path))
    codes_of = {name: frozenset(code for code, _ in codes) for name, codes in SCORED_2021}
    index: list[int] = []
    unknown = []
    for name in names:
        codes = codes_of.get(name, frozenset())
        match = [k for k, c in enumerate(classes) if codes and codes <= c]
        if match:
            index.append(match[0])
        else:
            unknown.append(name)
    if unknown:
        raise EcgflowError(f"{weights_path}: no Challenge class for the labels {unknown}")
    normal_index = next((k for k, c in enumerate(classes) if normal in c), None)
    if normal_index is None:
        raise EcgflowError(f"{weights_path}: the normal class {normal} is not scored")
    n = len(targets)
    labels = np.zeros((n, len(classes)), dtype=bool)
    outputs = np.zeros((n, len(classes)), dtype=bool)
    labels[:, index] = np.asarray(targets, dtype=bool)
    outputs[:, index] = np.asarray(predictions, dtype=bool)
    return challenge_score(labels, outputs, weights, normal_index)
