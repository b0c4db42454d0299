"""Ingest speed: ``ecgflow ingest`` of PTB-XL vs a plain ``wfdb.rdrecord`` loop, side by side.

Both read the same records from ../shared/data/ptbxl (or a synthetic set written as WFDB when
that is absent). ecgflow does more per record (copy, sha256 of every file, validation,
records.parquet); the ratio says what that costs or saves. Run: ``make bench``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
import wfdb

from ecgflow.stages.ingest import IngestParams, ingest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ECGFLOW_SHARED_DATA", ROOT.parent / "shared" / "data"))


def dataset(rate: int, scratch: Path) -> tuple[str, list[Path]]:
    """The source string and the record paths (without suffix) the baseline reads."""
    ptbxl = SHARED / "ptbxl"
    if ptbxl.is_dir():
        table = pd.read_csv(ptbxl / "ptbxl_database.csv")
        column = "filename_lr" if rate == 100 else "filename_hr"
        paths = [ptbxl / f for f in table[column] if (ptbxl / f"{f}.hea").exists()]
        return f"ptbxl:{ptbxl}?rate={rate}", paths
    out = scratch / f"synthetic-{rate}"
    ingest(IngestParams(source=f"synthetic://?n=300&fs={rate}"), out)
    paths = sorted(p.with_suffix("") for p in (out / "raw").glob("*.hea"))
    return f"folder:{out / 'raw'}", paths


def time_baseline(paths: list[Path]) -> float:
    start = time.perf_counter()
    for path in paths:
        wfdb.rdrecord(str(path))
    return time.perf_counter() - start


def time_ingest(source: str, out: Path, workers: int) -> tuple[float, int]:
    start = time.perf_counter()
    result = ingest(IngestParams(source=source, workers=workers), out)
    return time.perf_counter() - start, result.accepted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ingest.json")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for rate in (100, 500):
            source, paths = dataset(rate, Path(scratch))
            base = [time_baseline(paths) for _ in range(args.repeats)]
            row = {
                "rate_hz": rate,
                "records": len(paths),
                "rdrecord_loop_rec_s": len(paths) / statistics.median(base),
            }
            for workers in (1, 0):
                times = []
                for i in range(args.repeats):
                    seconds, accepted = time_ingest(
                        source, Path(scratch) / f"o{rate}{workers}{i}", workers
                    )
                    assert accepted == len(paths), (accepted, len(paths))
                    times.append(seconds)
                label = "ingest_1proc" if workers == 1 else f"ingest_{os.cpu_count()}proc"
                row[f"{label}_rec_s"] = len(paths) / statistics.median(times)
                row[f"{label}_vs_rdrecord"] = row[f"{label}_rec_s"] / row["rdrecord_loop_rec_s"]
            results.append(row)
    print(
        f"{'rate':>5} {'records':>7} {'rdrecord rec/s':>15} {'ingest 1p':>10} {'ratio':>6} "
        f"{'ingest Np':>10} {'ratio':>6}"
    )
    for r in results:
        n = f"ingest_{os.cpu_count()}proc"
        print(
            f"{r['rate_hz']:>5} {r['records']:>7} {r['rdrecord_loop_rec_s']:>15.0f} "
            f"{r['ingest_1proc_rec_s']:>10.0f} {r['ingest_1proc_vs_rdrecord']:>6.2f} "
            f"{r[n + '_rec_s']:>10.0f} {r[n + '_vs_rdrecord']:>6.2f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cpus": os.cpu_count(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
