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
from matplotlib.colors import LinearSegmentedColormap
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

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


def _at_threshold(column: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """Sensitivity, false-positive rate and precision when ``scores >= threshold``."""
    t, p = column.astype(bool), scores >= threshold
    tp, fp = float((t & p).sum()), float((~t & p).sum())
    return {
        "tpr": tp / max(t.sum(), 1),
        "fpr": fp / max((~t).sum(), 1),
        "precision": tp / (tp + fp) if tp + fp else 1.0,
    }


def roc_curves(
    targets: np.ndarray,
    scores: np.ndarray,
    names: list[str],
    path: Path,
    thresholds: dict[str, float] | None = None,
) -> Path:
    """ROC curve per label: AUC and n in the legend, the chosen threshold marked."""
    fig, axes = _grid(len(names), "ROC")
    for j, (ax, name) in enumerate(zip(axes, names, strict=True)):
        ax.set_title(name, fontsize=9)
        positives = int(targets[:, j].sum())
        if _usable(targets, j):
            fpr, tpr, _ = roc_curve(targets[:, j], scores[:, j])
            auc = roc_auc_score(targets[:, j], scores[:, j])
            ax.plot(fpr, tpr, label=f"AUC {auc:.3f}\nn={len(targets)} ({positives} pos)")
            if thresholds and name in thresholds:
                at = _at_threshold(targets[:, j], scores[:, j], thresholds[name])
                ax.plot(at["fpr"], at["tpr"], "o", color="C3", markersize=6,
                        label=f"threshold {thresholds[name]:.2f}")  # fmt: skip
            ax.legend(loc="lower right", fontsize=7)
        else:
            ax.text(0.5, 0.5, f"one class only\nn={len(targets)}", ha="center")
        ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
        ax.set_xlabel("1 - specificity", fontsize=8)
        ax.set_ylabel("sensitivity", fontsize=8)
    return _save(fig, path)


def pr_curves(
    targets: np.ndarray,
    scores: np.ndarray,
    names: list[str],
    path: Path,
    thresholds: dict[str, float] | None = None,
) -> Path:
    """Precision-recall per label: AP and n in the legend, prevalence line, threshold marked."""
    fig, axes = _grid(len(names), "Precision-recall")
    for j, (ax, name) in enumerate(zip(axes, names, strict=True)):
        ax.set_title(name, fontsize=9)
        positives = int(targets[:, j].sum())
        if positives > 0:
            precision, recall, _ = precision_recall_curve(targets[:, j], scores[:, j])
            ap = average_precision_score(targets[:, j], scores[:, j])
            ax.plot(recall, precision, label=f"AP {ap:.3f}\nn={len(targets)} ({positives} pos)")
            ax.axhline(targets[:, j].mean(), linestyle=":", color="grey", label="prevalence")
            if thresholds and name in thresholds:
                at = _at_threshold(targets[:, j], scores[:, j], thresholds[name])
                ax.plot(at["tpr"], at["precision"], "o", color="C3", markersize=6,
                        label=f"threshold {thresholds[name]:.2f}")  # fmt: skip
            ax.legend(loc="lower left", fontsize=7)
        else:
            ax.text(0.5, 0.5, f"no positives\nn={len(targets)}", ha="center")
        ax.set_xlabel("recall", fontsize=8)
        ax.set_ylabel("precision", fontsize=8)
    return _save(fig, path)


#: light blues only, so black numbers stay readable on every cell
LIGHT_BLUES = LinearSegmentedColormap.from_list("light_blues", ["#f7fbff", "#9ecae1"])


def confusion_matrices(
    targets: np.ndarray, predicted: np.ndarray, names: list[str], path: Path
) -> Path:
    """2×2 confusion matrix per label at the chosen thresholds: counts and row shares."""
    fig, axes = _grid(len(names), "Confusion matrices at the chosen thresholds")
    for j, (ax, name) in enumerate(zip(axes, names, strict=True)):
        t, p = targets[:, j].astype(bool), predicted[:, j].astype(bool)
        matrix = np.array([[(~t & ~p).sum(), (~t & p).sum()], [(t & ~p).sum(), (t & p).sum()]])
        share = matrix / np.clip(matrix.sum(axis=1, keepdims=True), 1, None)
        ax.imshow(share, cmap=LIGHT_BLUES, vmin=0.0, vmax=1.0)
        for (r, c), value in np.ndenumerate(matrix):
            ax.text(c, r, f"{value}\n{share[r, c]:.0%}", ha="center", va="center",
                    color="black", fontsize=9)  # fmt: skip
        ax.set_xticks([0, 1], ["neg", "pos"])
        ax.set_yticks([0, 1], ["neg", "pos"])
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("true", fontsize=8)
        ax.set_title(name, fontsize=9)
    return _save(fig, path)


def calibration_bins(column: np.ndarray, scores: np.ndarray, n_bins: int = 10) -> list[dict]:
    """Quantile bins of ``scores``: mean predicted, observed rate and count in each."""
    edges = np.unique(np.quantile(scores, np.linspace(0, 1, n_bins + 1)))
    which = np.clip(np.searchsorted(edges, scores, side="right") - 1, 0, max(len(edges) - 2, 0))
    out = []
    for b in range(max(len(edges) - 1, 1)):
        inside = which == b
        if inside.any():
            out.append(
                {
                    "predicted": float(scores[inside].mean()),
                    "observed": float(column[inside].mean()),
                    "count": int(inside.sum()),
                }
            )
    return out


def calibration(targets: np.ndarray, scores: np.ndarray, names: list[str], path: Path) -> Path:
    """Reliability diagram per label (10 quantile bins), each point labelled with its count."""
    fig, axes = _grid(len(names), "Calibration (points: quantile bins, with record counts)")
    for j, (ax, name) in enumerate(zip(axes, names, strict=True)):
        ax.set_title(name, fontsize=9)
        if _usable(targets, j):
            bins = calibration_bins(targets[:, j], scores[:, j])
            x = [b["predicted"] for b in bins]
            y = [b["observed"] for b in bins]
            brier = float(np.mean((scores[:, j] - targets[:, j]) ** 2))
            ax.plot(x, y, marker="o", markersize=3, label=f"Brier {brier:.3f}, n={len(targets)}")
            for b in bins:
                where = (b["predicted"], b["observed"])
                ax.annotate(str(b["count"]), where, fontsize=6, color="dimgrey",
                            textcoords="offset points", xytext=(3, -8))  # fmt: skip
            ax.legend(loc="upper left", fontsize=7)
        ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.05, 1.05)
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
