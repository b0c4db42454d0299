"""The per-lead quality model: real PTB-XL annotations when present, injected noise otherwise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA

from ecgflow.errors import EcgflowError
from ecgflow.io.synthetic_ecg import synthesize_record
from ecgflow.models.lead_quality import (
    FEATURES,
    KINDS,
    LeadQuality,
    aligned_features,
    cross_fitted,
    fit_lead_quality,
    lead_auroc,
    lead_targets,
    load_lead_quality,
)
from ecgflow.text.instructions import LEADS


def test_targets_parse_the_annotations_and_leave_unreadable_ones_out() -> None:
    targets = lead_targets({"static_noise": "V1-V3", "burst_noise": "", "baseline_drift": "leicht"})
    assert targets.shape == (12, 4)
    assert [LEADS[i] for i in np.flatnonzero(targets[:, 0])] == ["V1", "V2", "V3"]
    assert targets[:, 1].sum() == 0 and targets[:, 3].sum() == 0
    assert np.isnan(targets[:, 2]).all()  # "leicht" names no lead: unknown, not "no"


def _ptbxl(limit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from ecgflow.io.readers import read_record

    root = SHARED_DATA / "ptbxl"
    table = pd.read_csv(root / "ptbxl_database.csv", dtype=str, keep_default_na=False)
    features, targets, folds = [], [], []
    for row in table.head(limit).to_dict(orient="records"):
        record = read_record(root / f"{row['filename_lr']}.hea")
        features.append(aligned_features(record.signal, record.fs, record.leads, 100.0))
        targets.append(lead_targets(row))
        folds.append(int(row["strat_fold"]))
    return np.stack(features), np.stack(targets), np.array(folds)


def _synthetic(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic records with drift or static noise injected into random leads."""
    rng = np.random.default_rng(seed)
    features, targets = [], []
    fs = 100.0
    t = np.arange(1000) / fs
    for i in range(n):
        record = synthesize_record(i, seed=seed, fs=fs).record
        x = record.signal.astype(np.float64).copy()
        target = np.zeros((12, 4))
        for lead in rng.choice(12, size=3, replace=False):
            if rng.random() < 0.5:
                x[lead] += 0.05 * rng.standard_normal(x.shape[1])  # static noise
                target[lead, 0] = 1.0
            else:
                x[lead] += 0.8 * np.sin(2 * np.pi * rng.uniform(0.1, 0.4) * t)  # drift
                target[lead, 2] = 1.0
        features.append(aligned_features(x, fs, record.leads, fs))
        targets.append(target)
    return np.stack(features), np.stack(targets)


def test_annotated_leads_score_higher_on_held_out_records() -> None:
    """Real PTB-XL: fit on strat folds 1-8, AUROC > 0.6 on folds 9-10; else injected noise."""
    if (SHARED_DATA / "ptbxl" / "ptbxl_database.csv").is_file():
        x, y, folds = _ptbxl(500)
        train, test = folds <= 8, folds >= 9
        model = fit_lead_quality(x[train], y[train], 100.0)
        scores = lead_auroc(model.probabilities(x[test]), y[test])
    else:
        x, y = _synthetic(40)
        model = fit_lead_quality(x[:30], y[:30], 100.0)
        scores = lead_auroc(model.probabilities(x[30:]), y[30:])
    for kind in ("static_noise", "baseline_drift"):
        assert scores[kind]["positives"] > 0
        assert scores[kind]["auroc"] > 0.6, (kind, scores[kind])


def test_injected_noise_raises_that_leads_probability() -> None:
    """Synthetic: a model fitted on injected noise scores new injected leads above clean ones."""
    x, y = _synthetic(40, seed=3)
    model = fit_lead_quality(x[:30], y[:30], 100.0)
    p = model.probabilities(x[30:])
    for k in (0, 2):
        hit = y[30:, :, k] == 1
        assert p[..., k][hit].mean() > p[..., k][~hit].mean() + 0.2


def test_saved_model_predicts_the_same_and_resamples_other_rates(tmp_path: Path) -> None:
    x, y = _synthetic(16, seed=1)
    model = fit_lead_quality(x, y, 100.0)
    model.metrics = {"val": {"static_noise": {"auroc": 0.9}}}
    model.save(tmp_path / "lead_quality.json")
    loaded = load_lead_quality(tmp_path / "lead_quality.json")
    assert loaded is not None and loaded.metrics == model.metrics
    record = synthesize_record(99, seed=1, fs=500.0).record
    out = loaded.predict(record.signal, 500.0, record.leads)  # 500 Hz → the model's 100 Hz
    assert set(out) == set(KINDS) and set(out["static_noise"]) == set(LEADS)
    again = model.predict(record.signal, 500.0, record.leads)
    assert all(abs(out[k][lead] - again[k][lead]) < 1e-9 for k in KINDS for lead in LEADS)
    assert load_lead_quality(tmp_path / "absent.json") is None
    (tmp_path / "bad.json").write_text('{"kind": "other"}')
    with pytest.raises(EcgflowError, match="not a lead-quality model"):
        load_lead_quality(tmp_path / "bad.json")


def test_cross_fitted_scores_each_record_without_itself() -> None:
    x, y = _synthetic(10, seed=2)
    out = cross_fitted(x, y, 100.0, folds=5)
    assert out.shape == (10, 12, 4) and np.isfinite(out).all()
    whole = fit_lead_quality(x, y, 100.0).probabilities(x)
    assert not np.allclose(out, whole)  # each fold's model differs from the model on all


def test_a_kind_without_positives_is_a_constant() -> None:
    x, y = _synthetic(6, seed=4)
    model = fit_lead_quality(x, y, 100.0)
    assert model.positives["electrodes_problems"] == 0
    p = model.probabilities(x)[..., 3]
    assert np.allclose(p, p.flat[0]) and p.flat[0] < 0.05
    assert isinstance(model, LeadQuality) and model.coef.shape == (4, len(FEATURES))
