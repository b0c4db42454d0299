"""Evaluation plots as PNG: ROC and PR per label, confusion matrices, calibration, training curves.

One figure per kind with a panel per label, drawn with matplotlib's non-interactive backend.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_recall_curve, roc_curve

DPI = 100


def _grid(n: int, title: str) -> tuple[plt.Figure, list[plt.Axes]]:
    cols = min(4, max(1, n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    fig.suptitle(title)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.axis("off")
    return fig, flat[:n]


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, metadata={"Software": None})  # no version stamp: same bytes
    plt.close(fig)
    return path


def _usable(targets: np.ndarray, j: int) -> bool:
    return 0 < targets[:, j].sum() < len(targets)


def roc_curves(targets: np.ndarray, scores: np.ndarray, names: list[str], path: Path) -> Path:
    """ROC curve per label (labels without both classes say so)."""
    fig, axes = _grid(len(names), "ROC")
    for j, (ax, name) in enumerate(zip(axes, names, strict=True)):
        ax.set_title(name, fontsize=9)
        if _usable(targets, j):
            fpr, tpr, _ = roc_curve(targets[:, j], scores[:, j])
            ax.plot(fpr, tpr)
        else:
            ax.text(0.5, 0.5, "one class only", ha="center")
        ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
        ax.set_xlabel("1 - specificity", fontsize=8)
        ax.set_ylabel("sensitivity", fontsize=8)
    return _save(fig, path)


def pr_curves(targets: np.ndarray, scores: np.ndarray, names: list[str], path: Path) -> Path:
    """Precision-recall curve per label, with the prevalence as the chance line."""
    fig, axes = _grid(len(names), "Precision-recall")
    for j, (ax, name) in enumerate(zip(axes, names, strict=True)):
        ax.set_title(name, fontsize=9)
        if targets[:, j].sum() > 0:
            precision, recall, _ = precision_recall_curve(targets[:, j], scores[:, j])
            ax.plot(recall, precision)
            ax.axhline(targets[:, j].mean(), linestyle=":", color="grey")
        else:
            ax.text(0.5, 0.5, "no positives", ha="center")
        ax.set_xlabel("recall", fontsize=8)
        ax.set_ylabel("precision", fontsize=8)
    return _save(fig, path)


def confusion_matrices(
    targets: np.ndarray, predicted: np.ndarray, names: list[str], path: Path
) -> Path:
    """2×2 confusion matrix per label at the chosen thresholds."""
    fig, axes = _grid(len(names), "Confusion matrices (rows: true, columns: predicted)")
    for j, (ax, name) in enumerate(zip(axes, names, strict=True)):
        t, p = targets[:, j].astype(bool), predicted[:, j].astype(bool)
        matrix = np.array([[(~t & ~p).sum(), (~t & p).sum()], [(t & ~p).sum(), (t & p).sum()]])
        ax.imshow(matrix, cmap="Blues")
        for (r, c), value in np.ndenumerate(matrix):
            ax.text(c, r, str(value), ha="center", va="center")
        ax.set_xticks([0, 1], ["neg", "pos"])
        ax.set_yticks([0, 1], ["neg", "pos"])
        ax.set_title(name, fontsize=9)
    return _save(fig, path)


def calibration(targets: np.ndarray, scores: np.ndarray, names: list[str], path: Path) -> Path:
    """Reliability diagram per label (10 quantile bins)."""
    fig, axes = _grid(len(names), "Calibration")
    for j, (ax, name) in enumerate(zip(axes, names, strict=True)):
        ax.set_title(name, fontsize=9)
        if _usable(targets, j):
            observed, predicted = calibration_curve(
                targets[:, j], scores[:, j], n_bins=10, strategy="quantile"
            )
            ax.plot(predicted, observed, marker="o", markersize=3)
        ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("observed", fontsize=8)
    return _save(fig, path)


def training_curves(history: dict[str, list[tuple[int, float]]], path: Path) -> Path:
    """One panel per metric: value by epoch."""
    names = sorted(history)
    fig, axes = _grid(len(names), "Training")
    for ax, name in zip(axes, names, strict=True):
        steps, values = zip(*history[name], strict=True) if history[name] else ((), ())
        ax.plot(steps, values, marker="o", markersize=3)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
    return _save(fig, path)


def qa_by_template(model: dict[str, float], prior: dict[str, float], path: Path) -> Path:
    """Bars of QA accuracy per template: the model beside the label-prior baseline."""
    templates = sorted(set(model) | set(prior), key=str)
    x = np.arange(len(templates))
    fig, ax = plt.subplots(figsize=(max(3.5, 1.1 * len(templates) + 1.5), 3.2))
    ax.bar(x - 0.2, [model.get(t, np.nan) for t in templates], 0.4, label="model")
    ax.bar(x + 0.2, [prior.get(t, np.nan) for t in templates], 0.4, label="label prior")
    ax.set_xticks(x, [f"template {t}" for t in templates])
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.legend(loc="lower right")
    return _save(fig, path)
