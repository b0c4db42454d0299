"""Preprocess speed and memory as whole processes, on the shared PTB-XL records (100 and 500 Hz).

Each figure is one fresh process, timed from launch to exit (start-up included), run side by
side and interleaved ``--repeats`` times:

  (a) ``ecgflow preprocess --records R --split S --out O`` (default parameters, one worker per
      core), and its peak RSS (the largest process: the stage or one of its workers);
  (b) the seed-style per-record loop in its own process: wfdb.rdrecord → scipy.signal.resample →
      per-lead filtfilt → z-score → np.savez per record;
  (c) the read floor: a process doing only ``wfdb.rdrecord`` per record.

Sizes: 500 and 5,000 records at 100 Hz, 500 rows at 500 Hz (100 distinct records × 5), and
50,000 records at 100 Hz for ecgflow alone (memory must stay flat; the seed loop would take
minutes). A replicated folder has ``raw/`` as a symlink to one real ingest and
``records.parquet`` / ``split.parquet`` repeated k times with ``#k`` appended to the record and
patient ids, so every row is read and transformed as its own record.

Usage: python benchmarks/preprocess.py [--data ../shared/data/ptbxl] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

SEED_LOOP = """
import sys
from pathlib import Path
import numpy as np, pyarrow.parquet as pq, wfdb
from scipy import signal as sps
records, out, fs = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
out.mkdir(parents=True, exist_ok=True)
paths = pq.read_table(records / "records.parquet", columns=["path"])["path"].to_pylist()
for i, rel in enumerate(paths):
    rec = wfdb.rdrecord(str((records / "raw" / rel).with_suffix("")))
    sig = sps.resample(rec.p_signal, 1000, axis=0)
    b, a = sps.butter(4, [0.5, 40.0], btype="bandpass", fs=100.0)
    sig = np.stack([sps.filtfilt(b, a, sig[:, j]) for j in range(sig.shape[1])], axis=1)
    sig = (sig - sig.mean(axis=0)) / (sig.std(axis=0) + 1e-8)
    np.savez(out / f"{i}.npz", x=sig.astype(np.float32))
"""

READ_FLOOR = """
import sys
from pathlib import Path
import pyarrow.parquet as pq, wfdb
records = Path(sys.argv[1])
for rel in pq.read_table(records / "records.parquet", columns=["path"])["path"].to_pylist():
    wfdb.rdrecord(str((records / "raw" / rel).with_suffix("")))
"""


def _suffixed(table: pa.Table, columns: list[str], k: int) -> pa.Table:
    for name in columns:
        i = table.schema.get_field_index(name)
        values = [None if v is None else f"{v}#{k}" for v in table[name].to_pylist()]
        table = table.set_column(i, name, pa.array(values, pa.string()))
    return table


def replicate(ingest_dir: Path, split_dir: Path, out: Path, n: int) -> tuple[Path, Path]:
    """An ingest folder and a split folder of ``n`` rows cycling through the given ones."""
    records_out, split_out = out / "records", out / "split"
    records_out.mkdir(parents=True, exist_ok=True)
    split_out.mkdir(parents=True, exist_ok=True)
    if not (records_out / "raw").exists():
        (records_out / "raw").symlink_to((ingest_dir / "raw").resolve())
    records = pq.read_table(ingest_dir / "records.parquet")
    split = pq.read_table(split_dir / "split.parquet")
    reps = -(-n // records.num_rows)
    pq.write_table(
        pa.concat_tables(
            _suffixed(records, ["record_id", "patient_id"], k) for k in range(reps)
        ).slice(0, n),
        records_out / "records.parquet",
    )
    pq.write_table(
        pa.concat_tables(_suffixed(split, ["record_id"], k) for k in range(reps)),
        split_out / "split.parquet",
    )
    return records_out, split_out


_RSS_WRAPPER = """
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
wall = time.perf_counter() - t0
print(json.dumps({"wall_s": wall,
                  "peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def run_process(command: list[str]) -> dict[str, float]:
    """Wall seconds and peak RSS (MiB) of ``command``, measured by a fresh wrapper process."""
    out = subprocess.run(
        [sys.executable, "-c", _RSS_WRAPPER, *command], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def ecgflow_command(records: Path, split: Path, out: Path) -> list[str]:
    shutil.rmtree(out, ignore_errors=True)
    exe = Path(sys.executable).with_name("ecgflow")
    return [
        str(exe),
        "preprocess",
        "--records",
        str(records),
        "--split",
        str(split),
        "--out",
        str(out),
    ]


def prepare(data: Path, rate: int, tmp: Path) -> tuple[Path, Path, int]:
    """Ingest, label and split the shared records at ``rate`` Hz (in-process, not timed)."""
    from ecgflow.stages.ingest import IngestParams, ingest
    from ecgflow.stages.label import LabelParams, label
    from ecgflow.stages.split import SplitParams, split

    ingested, labelled, splits = tmp / f"ingest{rate}", tmp / f"label{rate}", tmp / f"split{rate}"
    ingest(IngestParams(source=f"ptbxl:{data}?rate={rate}"), ingested)
    label(LabelParams(label_set="ptbxl-superdiagnostic"), ingested, labelled)
    split(SplitParams(), ingested, labelled, splits)
    n = pq.read_metadata(ingested / "records.parquet").num_rows
    return ingested, splits, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ptbxl")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--large", type=int, default=50_000, help="rows of the memory-only run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="ecgflow-bench-pp-") as tmp_name:
        tmp = Path(tmp_name)
        cases: list[tuple[str, Path, Path, bool]] = []
        for rate in (100, 500):
            ingested, splits, n_unique = prepare(args.data, rate, tmp)
            sizes = [500, 5000] if rate == 100 else [500]
            for n in sizes:
                recs, spl = replicate(ingested, splits, tmp / f"rep{rate}-{n}", n)
                cases.append((f"{rate} Hz, {n} rows ({n_unique} distinct)", recs, spl, True))
            if rate == 100 and args.large:
                recs, spl = replicate(ingested, splits, tmp / f"rep{rate}-{args.large}", args.large)
                cases.append((f"{rate} Hz, {args.large} rows (memory)", recs, spl, False))
        for name, recs, spl, with_seed in cases:
            runs: dict[str, list[dict[str, float]]] = {"ecgflow": [], "seed": [], "floor": []}
            for _ in range(args.repeats if with_seed else 1):
                runs["ecgflow"].append(run_process(ecgflow_command(recs, spl, tmp / "out")))
                if with_seed:
                    shutil.rmtree(tmp / "seed", ignore_errors=True)
                    seed = [sys.executable, "-c", SEED_LOOP, str(recs), str(tmp / "seed"), "100"]
                    runs["seed"].append(run_process(seed))
                    runs["floor"].append(run_process([sys.executable, "-c", READ_FLOOR, str(recs)]))
            row = _summary(runs)
            results[name] = {"runs": runs, **row}
            print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in row.items()), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "repeats": args.repeats}
    (RESULTS / "preprocess.json").write_text(json.dumps({"meta": meta, "cases": results}, indent=2))
    print(f"results in {RESULTS / 'preprocess.json'}")


def _summary(runs: dict[str, list[dict[str, float]]]) -> dict[str, str]:
    """Each side's wall times, the ratios (per interleaved repeat), ecgflow's peak RSS."""
    out = {"ecgflow_s": " / ".join(f"{r['wall_s']:.2f}" for r in runs["ecgflow"])}
    out["ecgflow_peak_mib"] = f"{max(r['peak_mib'] for r in runs['ecgflow']):.0f}"
    if runs["seed"]:
        out["seed_s"] = " / ".join(f"{r['wall_s']:.2f}" for r in runs["seed"])
        out["floor_s"] = " / ".join(f"{r['wall_s']:.2f}" for r in runs["floor"])
        ratios = [
            s["wall_s"] / e["wall_s"] for s, e in zip(runs["seed"], runs["ecgflow"], strict=True)
        ]
        floor = [
            f["wall_s"] / e["wall_s"] for f, e in zip(runs["floor"], runs["ecgflow"], strict=True)
        ]
        out["seed_over_ecgflow"] = " / ".join(f"{r:.1f}x" for r in ratios)
        out["floor_over_ecgflow"] = " / ".join(f"{r:.1f}x" for r in floor)
        out["median_ratio"] = f"{statistics.median(ratios):.1f}x"
    return out


if __name__ == "__main__":
    main()
