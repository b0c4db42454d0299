"""Measured features (ecgflow.signal.rhythm): R peaks against LUDB's annotations, rates against
the synthetic generator's truth, regularity, the axis, and what too little signal gives."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ecgflow.io.synthetic_ecg import synthesize_record
from ecgflow.signal.rhythm import axis_category, measure_rhythm, r_peaks
from ecgflow.text.instructions import feature_instructions


def test_r_peaks_match_ludb_qrs_annotations(shared_data):
    wfdb = pytest.importorskip("wfdb")
    record = wfdb.rdrecord(str(shared_data / "ludb" / "1"))
    annotation = wfdb.rdann(str(shared_data / "ludb" / "1"), "ii")
    qrs = annotation.sample[np.array(annotation.symbol) == "N"]
    peaks = r_peaks(record.p_signal.T, record.fs)
    tolerance = 0.05 * record.fs  # 50 ms
    for beat in qrs:
        assert np.min(np.abs(peaks - beat)) <= tolerance, beat
    inside = peaks[(peaks >= qrs.min() - tolerance) & (peaks <= qrs.max() + tolerance)]
    assert len(inside) == len(qrs)  # no extra beats where LUDB annotates
    rhythm = measure_rhythm(record.p_signal.T, record.fs, record.sig_name)
    assert any("bradycardia" in c.lower() for c in record.comments)
    assert rhythm.heart_rate_bpm < 60 and rhythm.rr_cv < 0.1


def test_rates_match_the_synthetic_truth_and_af_is_irregular():
    for index in range(12):
        synthetic = synthesize_record(index, seed=7)
        record = synthetic.record
        rhythm = measure_rhythm(record.signal, record.fs, record.leads)
        assert rhythm.heart_rate_bpm == pytest.approx(record.metadata["heart_rate"], abs=3)
        if synthetic.label == "atrial_fibrillation":
            assert rhythm.rr_cv > 0.1
        elif "sinus" in synthetic.label:
            assert rhythm.rr_cv < 0.1


def test_axis_from_leads_i_and_avf():
    fs, seconds = 100.0, 10
    t = np.arange(int(fs * seconds)) / fs
    beat = np.exp(-(((t % 1.0) - 0.5) ** 2) / (2 * 0.015**2))  # one narrow spike per second
    leads = ["I", "II", "aVF"]
    left = np.stack([beat, 0.2 * beat, -beat])  # up in I, down in aVF: about -45 degrees
    rhythm = measure_rhythm(left, fs, leads)
    assert rhythm.heart_rate_bpm == pytest.approx(60, abs=1)
    assert -60 < rhythm.axis_deg < -30 and axis_category(rhythm.axis_deg) == "left axis deviation"
    normal = np.stack([beat, beat, beat])
    assert axis_category(measure_rhythm(normal, fs, leads).axis_deg) == "normal"
    assert math.isnan(measure_rhythm(normal, fs, ["V1", "V2", "V3"]).axis_deg)


def test_too_little_signal_gives_no_beats_and_no_questions():
    flat = np.zeros((12, 1000))
    rhythm = measure_rhythm(flat, 100.0, ["I"] * 12)
    assert rhythm.n_beats == 0 and math.isnan(rhythm.heart_rate_bpm)
    assert feature_instructions("1", "raw/1", rhythm) == []
    assert len(r_peaks(np.ones((12, 50)), 100.0)) == 0
    synthetic = synthesize_record(0, seed=7).record
    items = feature_instructions(
        "1", "raw/1", measure_rhythm(synthetic.signal, 100.0, synthetic.leads)
    )
    assert {i["meta"]["attribute"] for i in items} >= {"heart rate", "tachycardia", "bradycardia"}
    assert all(i["record_id"] == "1" and i["meta"]["kind"] == "feature" for i in items)
