"""Evaluation plots people can read, and the self-contained report.html."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_rgb

from ecgflow.evaluation import plots
from ecgflow.evaluation.classification import label_report, macro
from ecgflow.evaluation.report import summary_markdown, write_report

NAMES = ["NORM", "MI", "STTC & CD <x>"]  # the last one needs escaping in HTML


@pytest.fixture(scope="module")
def scored() -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    rng = np.random.default_rng(3)
    targets = (rng.random((120, 3)) < [0.4, 0.2, 0.3]).astype(float)
    scores = np.clip(0.35 * targets + 0.65 * rng.random((120, 3)), 0, 1)
    return targets, scores, {"NORM": 0.5, "MI": 0.4, "STTC & CD <x>": 0.45}


def _luminance(colour: tuple[float, float, float]) -> float:
    r, g, b = colour
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_confusion_cells_stay_light_under_black_numbers() -> None:
    """Every cell colour, up to the darkest, keeps black text readable (not black on navy)."""
    darkest = plots.LIGHT_BLUES(1.0)[:3]
    contrast = (_luminance(darkest) + 0.05) / (_luminance(to_rgb("black")) + 0.05)
    assert contrast >= 7.0  # WCAG AAA for normal text


def test_threshold_point_and_calibration_counts(scored) -> None:
    targets, scores, thresholds = scored
    at = plots._at_threshold(targets[:, 0], scores[:, 0], thresholds["NORM"])
    positive, decided = targets[:, 0] > 0, scores[:, 0] >= thresholds["NORM"]
    assert at["tpr"] == pytest.approx((positive & decided).sum() / positive.sum())
    assert at["fpr"] == pytest.approx((~positive & decided).sum() / (~positive).sum())
    bins = plots.calibration_bins(targets[:, 1], scores[:, 1])
    assert sum(b["count"] for b in bins) == len(targets) and len(bins) == 10
    assert all(0 <= b["observed"] <= 1 for b in bins)


def test_report_is_one_self_contained_page(scored, tmp_path: Path) -> None:
    targets, scores, thresholds = scored
    predicted = scores >= np.array([thresholds[n] for n in NAMES])
    files = [
        plots.roc_curves(targets, scores, NAMES, tmp_path / "roc.png", thresholds),
        plots.pr_curves(targets, scores, NAMES, tmp_path / "pr.png", thresholds),
        plots.confusion_matrices(targets, predicted, NAMES, tmp_path / "confusion.png"),
        plots.calibration(targets, scores, NAMES, tmp_path / "calibration.png"),
    ]
    report = label_report(targets, scores, thresholds, NAMES)
    metrics = {"kind": "classifier", "split": "test", "n_records": 120, "n_patients": 90,
               "macro_auroc": macro(report, "auroc"), "ci95": {"macro_auroc": [0.6, 0.7]},
               "ci_unit": "patient", "bootstrap": 200, "per_label": report,
               "data_hash": "f" * 64}  # fmt: skip
    page = write_report(tmp_path, metrics, files).read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    # no external assets: every src is inline data, no links, stylesheets or scripts
    sources = re.findall(r'\bsrc="([^"]*)"', page)
    assert len(sources) == 4 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"\bhref=|<script|<link|url\(|@import", page)
    for name in NAMES:
        assert f"<td>{name.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')}" in page
    assert "95 % CI 0.600–0.700" in page and "bootstrap over patients" in page
    summary = (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert summary == summary_markdown(metrics) and all(f"| {n} |" in summary for n in NAMES)
