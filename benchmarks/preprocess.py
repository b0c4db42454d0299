"""Preprocess speed and memory on the shared PTB-XL records (100 Hz and 500 Hz).

Prints records/s of
  (a) ecgflow preprocess (default params, workers = CPU count),
  (b) a seed-style per-record loop: wfdb.rdrecord → scipy.signal.resample → per-lead filtfilt
      → z-score → np.savez per record,
  (c) the bare read floor: wfdb.rdrecord alone,
and the peak RSS of preprocess for 500 vs 5,000 records, each run in a fresh subprocess
(resource.getrusage ru_maxrss of the process itself and of its largest worker).

Replication: the shared subset holds 500 records at 100 Hz and fewer at 500 Hz. A replicated
ingest folder has ``raw/`` as a symlink to one real ingest and ``records.parquet`` repeated
k times with ``#k`` appended to record_id / patient_id, so 5,000 rows read 500 distinct files
10 times each (every row is read and transformed as its own record).

Usage: python benchmarks/preprocess.py [--data ../shared/data/ptbxl]
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import wfdb
from scipy import signal as sps

from ecgflow.stages.ingest import IngestParams, ingest
from ecgflow.stages.preprocess import PreprocessParams, preprocess

ROOT = Path(__file__).resolve().parents[1]


def replicate(base: Path, out: Path, n: int) -> Path:
    """An ingest folder of ``n`` rows cycling through ``base``'s records (raw/ symlinked)."""
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "raw").exists():
        (out / "raw").symlink_to((base / "raw").resolve())
    table = pq.read_table(base / "records.parquet")
    reps = -(-n // table.num_rows)
    parts = []
    for k in range(reps):
        part = table.set_column(
            0, "record_id", pa.array([f"{r}#{k}" for r in table["record_id"].to_pylist()])
        )
        pid = part.schema.get_field_index("patient_id")
        part = part.set_column(
            pid, "patient_id", pa.array([f"{p}#{k}" for p in part["patient_id"].to_pylist()])
        )
        parts.append(part)
    pq.write_table(pa.concat_tables(parts).slice(0, n), out / "records.parquet")
    return out


def headers(records: Path) -> list[Path]:
    paths = pq.read_table(records / "records.parquet", columns=["path"])["path"].to_pylist()
    return [records / "raw" / p for p in paths]


def seed_loop(paths: list[Path], out: Path) -> float:
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for i, hea in enumerate(paths):
        rec = wfdb.rdrecord(str(hea.with_suffix("")))
        sig = sps.resample(rec.p_signal, 1000, axis=0)
        b, a = sps.butter(4, [0.5, 40.0], btype="bandpass", fs=100.0)
        sig = np.stack([sps.filtfilt(b, a, sig[:, j]) for j in range(sig.shape[1])], axis=1)
        sig = (sig - sig.mean(axis=0)) / (sig.std(axis=0) + 1e-8)
        np.savez(out / f"{i}.npz", x=sig.astype(np.float32))
    return len(paths) / (time.perf_counter() - t0)


def read_floor(paths: list[Path]) -> float:
    t0 = time.perf_counter()
    for hea in paths:
        wfdb.rdrecord(str(hea.with_suffix("")))
    return len(paths) / (time.perf_counter() - t0)


def ecgflow_rate(records: Path, out: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    result = preprocess(PreprocessParams(), records, None, out)
    n = sum(result.n_records.values())
    return n / (time.perf_counter() - t0), n


_RSS_CHILD = """
import json, resource, sys
from pathlib import Path
from ecgflow.stages.preprocess import PreprocessParams, preprocess
preprocess(PreprocessParams(), Path(sys.argv[1]), None, Path(sys.argv[2]))
self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"self_mib": self_kb / 1024, "worker_mib": child_kb / 1024}))
"""


def peak_rss(records: Path, out: Path) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-c", _RSS_CHILD, str(records), str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ptbxl")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="ecgflow-bench-pp-") as tmp_name:
        tmp = Path(tmp_name)
        for rate in (100, 500):
            base = tmp / f"ingest{rate}"
            ingest(IngestParams(source=f"ptbxl:{args.data}?rate={rate}"), base)
            unique = headers(base)
            rows = replicate(base, tmp / f"rep{rate}-500", 500)
            read_floor(unique[:20])  # warm the page cache and imports
            a, n = ecgflow_rate(rows, tmp / f"out{rate}")
            b = seed_loop(headers(rows), tmp / f"seed{rate}")
            c = read_floor(headers(rows))
            print(
                f"{rate} Hz ({len(unique)} distinct records, {n} rows): "
                f"(a) ecgflow {a:7.1f} rec/s | (b) seed loop {b:7.1f} rec/s | "
                f"(c) rdrecord floor {c:7.1f} rec/s | a/b = {a / b:.2f}x (goal >= 3) | "
                f"a/c = {a / c:.2f}x (goal >= 0.67)"
            )
        base = tmp / "ingest100"
        small = peak_rss(replicate(base, tmp / "rss500", 500), tmp / "rss-out500")
        large = peak_rss(replicate(base, tmp / "rss5000", 5000), tmp / "rss-out5000")
        print(
            f"peak RSS 100 Hz: 500 records main {small['self_mib']:.0f} MiB / worker "
            f"{small['worker_mib']:.0f} MiB; 5000 records main {large['self_mib']:.0f} MiB / "
            f"worker {large['worker_mib']:.0f} MiB; "
            f"ratio main {large['self_mib'] / small['self_mib']:.2f}"
        )


if __name__ == "__main__":
    main()
