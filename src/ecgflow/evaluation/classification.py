"""Multi-label classification metrics used for model selection and thresholds."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_auc_score


def per_label_auroc(targets: np.ndarray, scores: np.ndarray, names: list[str]) -> dict[str, float]:
    """AUROC per label; labels without both classes in ``targets`` are left out."""
    out: dict[str, float] = {}
    for j, name in enumerate(names):
        column = targets[:, j]
        if 0 < column.sum() < len(column):
            out[name] = float(roc_auc_score(column, scores[:, j]))
    return out


def macro_auroc(targets: np.ndarray, scores: np.ndarray, names: list[str]) -> float:
    """Mean AUROC over the labels that have both classes (NaN when none has)."""
    values = list(per_label_auroc(targets, scores, names).values())
    return float(np.mean(values)) if values else float("nan")


def f1_thresholds(targets: np.ndarray, scores: np.ndarray, names: list[str]) -> dict[str, float]:
    """Per label, the score threshold that maximises F1 (0.5 for a label without positives)."""
    out: dict[str, float] = {}
    for j, name in enumerate(names):
        column = targets[:, j]
        if column.sum() == 0:
            out[name] = 0.5
            continue
        precision, recall, thresholds = precision_recall_curve(column, scores[:, j])
        f1 = 2 * precision[:-1] * recall[:-1] / np.clip(precision[:-1] + recall[:-1], 1e-12, None)
        out[name] = float(thresholds[int(np.argmax(f1))])
    return out
