"""Multi-label classification metrics used for model selection and thresholds."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    precision_recall_curve,
    roc_auc_score,
)


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


def label_report(
    targets: np.ndarray, scores: np.ndarray, thresholds: dict[str, float], names: list[str]
) -> dict[str, dict[str, float | int | None]]:
    """Per label: AUROC, AUPRC, F1 / sensitivity / specificity at its threshold, support.

    AUROC and AUPRC are None for a label whose targets hold one class only.
    """
    out: dict[str, dict[str, float | int | None]] = {}
    for j, name in enumerate(names):
        t = targets[:, j].astype(bool)
        p = scores[:, j] >= thresholds[name]
        both = 0 < t.sum() < len(t)
        tp, fp, fn, tn = (t & p).sum(), (~t & p).sum(), (t & ~p).sum(), (~t & ~p).sum()
        out[name] = {
            "auroc": float(roc_auc_score(t, scores[:, j])) if both else None,
            "auprc": float(average_precision_score(t, scores[:, j])) if both else None,
            "f1": float(f1_score(t, p, zero_division=0.0)),
            "threshold": float(thresholds[name]),
            "sensitivity": float(tp / (tp + fn)) if tp + fn else None,
            "specificity": float(tn / (tn + fp)) if tn + fp else None,
            "support": int(t.sum()),
        }
    return out


def macro(report: dict[str, dict[str, float | int | None]], key: str) -> float:
    """Mean of ``key`` over the labels where it is defined (NaN when none)."""
    values = [row[key] for row in report.values() if row[key] is not None]
    return float(np.mean(values)) if values else float("nan")


def fmax(targets: np.ndarray, scores: np.ndarray, steps: int = 100) -> float:
    """Sample-centric maximum F1 over one global threshold (as in CAFA and ECG benchmarks).

    For threshold t: precision is averaged over samples with at least one score ≥ t, recall over
    samples with at least one positive label; F = 2PR / (P + R); the maximum over t in (0, 1).
    """
    best = 0.0
    has_label = targets.sum(axis=1) > 0
    if not has_label.any():
        return float("nan")
    for t in np.linspace(0.0, 1.0, steps + 1)[1:-1]:
        predicted = scores >= t
        hit = (predicted & (targets > 0)).sum(axis=1)
        n_predicted = predicted.sum(axis=1)
        covered = n_predicted > 0
        if not covered.any():
            continue
        precision = float(np.mean(hit[covered] / n_predicted[covered]))
        recall = float(np.mean(hit[has_label] / targets[has_label].sum(axis=1)))
        if precision + recall > 0:
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def bootstrap_ci(
    targets: np.ndarray,
    scores: np.ndarray,
    thresholds: dict[str, float],
    names: list[str],
    n: int,
    seed: int,
    groups: np.ndarray | list | None = None,
) -> dict[str, list[float]]:
    """Seeded percentile-bootstrap 95 % intervals of macro AUROC, AUPRC and F1.

    ``groups`` (one id per record, e.g. the patient): each draw resamples whole groups with
    replacement and takes all their records, so records of one patient, which are not
    independent, stay together (a cluster bootstrap). Without it, records are resampled.
    """
    if groups is None:
        members = [np.array([i]) for i in range(len(targets))]
    else:
        codes = np.unique(np.asarray(groups, dtype=str), return_inverse=True)[1]
        order = np.argsort(codes, kind="stable")
        members = np.split(order, np.flatnonzero(np.diff(codes[order])) + 1)
    if n <= 0 or len(members) < 2:
        return {}
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {"macro_auroc": [], "macro_auprc": [], "macro_f1": []}
    for _ in range(n):
        chosen = rng.integers(0, len(members), len(members))
        pick = np.concatenate([members[g] for g in chosen])
        report = label_report(targets[pick], scores[pick], thresholds, names)
        for key in draws:
            value = macro(report, key.removeprefix("macro_"))
            if np.isfinite(value):
                draws[key].append(value)
    return {
        key: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))]
        for key, v in draws.items()
        if v
    }
