"""``synthetic://?n=N&seed=S&fs=500&seconds=10``: generated 12-lead records written as WFDB.

The generator (:mod:`ecgflow.io.synthetic_ecg`) is deterministic per seed and record index; the
records are written as format-16 WFDB files (1 µV resolution) into a staging folder and then
ingested exactly like a folder of real records.
"""

from __future__ import annotations

import logging
from pathlib import Path

import wfdb

from ecgflow.io.sources.base import Discovery, RecordRef
from ecgflow.io.sources.spec import SourceSpec, float_option, int_option
from ecgflow.io.storage import LocalStorage
from ecgflow.io.synthetic_ecg import SyntheticECG, synthesize

log = logging.getLogger(__name__)

ADC_GAIN = 1000.0  # counts per mV: 1 µV resolution, ±32 mV range in format 16


def discover(spec: SourceSpec, staging: Path) -> Discovery:
    """Generate the records into ``staging`` and return references to them."""
    n = int_option(spec, "n", 200)
    seed = int_option(spec, "seed", 0)
    fs = float_option(spec, "fs", 500.0)
    seconds = float_option(spec, "seconds", 10.0)
    assert fs is not None and seconds is not None
    staging.mkdir(parents=True, exist_ok=True)
    refs = [_write(item, staging) for item in synthesize(n, seed=seed, fs=fs, seconds=seconds)]
    log.info("generated %d synthetic records (seed %d, %g Hz, %g s)", n, seed, fs, seconds)
    return Discovery("synthetic", LocalStorage(staging), refs, [])


def _write(item: SyntheticECG, folder: Path) -> RecordRef:
    record = item.record
    wfdb.wrsamp(
        record.record_id,
        fs=record.fs,
        units=list(record.units),
        sig_name=list(record.leads),
        p_signal=record.signal.T.astype("float64"),
        fmt=["16"] * record.n_leads,
        adc_gain=[ADC_GAIN] * record.n_leads,
        baseline=[0] * record.n_leads,
        comments=[f"Label: {item.label}", f"Report: {item.report}"],
        write_dir=str(folder),
    )
    meta = record.metadata
    return RecordRef(
        key=f"{record.record_id}.hea",
        record_id=record.record_id,
        patient_id=record.patient_id,
        meta={
            "age": float(meta["age"]) if meta.get("age") is not None else None,
            "sex": meta.get("sex"),
            "report": item.report,
            "labels": [item.label],
        },
    )
