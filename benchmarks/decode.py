"""WFDB decoding speed: ecgflow's own decoder vs wfdb's, side by side on the same records.

Three comparisons per data set, each the median of ``--repeats`` loops over all its records:

- decode only (header already parsed): :func:`ecgflow.io.wfdb_reader.read_digital` vs wfdb's
  private ``wfdb.io._signal._rd_segment``, which the reader called before it had a decoder;
- digital samples from a path: :func:`read_wfdb_digital` vs ``wfdb.rdrecord(physical=False)``;
- a record in mV: :func:`read_wfdb` (what ingest and preprocess call) vs ``wfdb.rdrecord``.

Then whole-file loads of growing format 16 files, read vs memory-mapped, which sets
``wfdb_decode.MMAP_MIN_BYTES``. Data: ../shared/data (PTB-XL 100 and 500 Hz, CinC 2021 ``.mat``,
MIT-BIH 100 in format 212), or synthetic records written with ``wfdb.wrsamp`` when it is absent.
Run: ``python benchmarks/decode.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import wfdb
from wfdb.io import _signal  # the previous decoding path, measured here only

from ecgflow.io import wfdb_decode
from ecgflow.io.wfdb_reader import (
    _check_signal_files,
    read_digital,
    read_header,
    read_wfdb,
    read_wfdb_digital,
)

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ECGFLOW_SHARED_DATA", ROOT.parent / "shared" / "data"))


def datasets(scratch: Path) -> dict[str, list[Path]]:
    """Data set name → header paths."""
    if SHARED.is_dir():
        return {
            "PTB-XL 100 Hz (16)": sorted((SHARED / "ptbxl/records100").rglob("*.hea")),
            "PTB-XL 500 Hz (16)": sorted((SHARED / "ptbxl/records500").rglob("*.hea")),
            "CinC 2021 .mat (16+24)": sorted((SHARED / "cinc2021").glob("*.hea")),
            "MIT-BIH 100 (212, 30 min)": [SHARED / "wfdb-formats/100.hea"] * 10,
        }
    rng = np.random.default_rng(0)
    sets: dict[str, list[Path]] = {}
    for name, n, fmt in [
        ("synthetic 100 Hz (16)", 1000, "16"),
        ("synthetic 500 Hz (16)", 5000, "16"),
    ]:
        folder = scratch / name.split()[1]
        folder.mkdir()
        for i in range(100):
            wfdb.wrsamp(
                f"r{i}", fs=100, units=["mV"] * 12, sig_name=[f"s{j}" for j in range(12)],
                d_signal=rng.integers(-3000, 3000, (n, 12)), fmt=[fmt] * 12,
                adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(folder),
            )  # fmt: skip
        sets[name] = sorted(folder.glob("*.hea"))
    return sets


def median_ms(
    functions: dict[str, Callable[[Path], object]], paths: list[Path], repeats: int
) -> dict[str, float]:
    """Median ms per record of each function: one warm-up round, then ``repeats`` rounds,
    each timing every function in turn (so that allocator and cache warm-up hit all alike)."""
    times: dict[str, list[float]] = {name: [] for name in functions}
    for round_ in range(repeats + 1):
        for name, function in functions.items():
            start = time.perf_counter()
            for path in paths:
                function(path)
            if round_:
                times[name].append((time.perf_counter() - start) / len(paths) * 1e3)
    return {name: statistics.median(t) for name, t in times.items()}


def decoders(paths: list[Path]) -> tuple[Callable[[Path], object], Callable[[Path], object]]:
    """The new and the old decode step, given headers parsed beforehand."""
    parsed = {}
    for path in paths:
        header = read_header(path)
        parsed[path] = header, _check_signal_files(path, header)

    def new(path: Path) -> object:
        header, sig_len = parsed[path]
        return read_digital(path, header, sig_len, range(header.n_sig))

    def old(path: Path) -> object:
        header, sig_len = parsed[path]
        specs = header.signals
        return _signal._rd_segment(
            file_name=[s.file_name for s in specs], dir_name=str(path.parent), pn_dir=None,
            fmt=[s.fmt for s in specs], n_sig=len(specs), sig_len=sig_len,
            byte_offset=[s.byte_offset for s in specs],
            samps_per_frame=[s.samps_per_frame for s in specs], skew=[s.skew for s in specs],
            init_value=[s.init_value for s in specs], sampfrom=0, sampto=sig_len,
            channels=list(range(len(specs))), ignore_skew=False,
        )  # fmt: skip

    return new, old


def load_sizes(scratch: Path, repeats: int) -> list[dict[str, float]]:
    """Decode + float64 conversion of 12-signal format 16 files: read vs memory-mapped."""
    rows = []
    for size in (24_000, 120_000, 480_000, 960_000, 8_000_000, 64_000_000):
        path = scratch / f"load{size}.dat"
        path.write_bytes(np.random.default_rng(1).bytes(size))
        n = size // 24
        row: dict[str, float] = {"bytes": size}
        for label, threshold in (("read", 1 << 62), ("mmap", 0)):
            wfdb_decode.MMAP_MIN_BYTES = threshold
            loops = max(3, int(5e7 // size))
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                for _ in range(loops):
                    signals = wfdb_decode.decode_file(
                        path, "16", n, 0, [1] * 12, [0] * 12, [0] * 12
                    )
                    [s.astype(np.float64) for s in signals]
                times.append((time.perf_counter() - start) / loops * 1e3)
            row[f"{label}_ms"] = statistics.median(times)
        path.unlink()
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "decode.json")
    args = parser.parse_args()
    default_threshold = wfdb_decode.MMAP_MIN_BYTES
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for name, paths in datasets(Path(scratch)).items():
            new, old = decoders(paths)
            functions = {
                "decode_new_ms": new,
                "decode_old_ms": old,
                "digital_new_ms": read_wfdb_digital,
                "digital_rdrecord_ms": lambda p: wfdb.rdrecord(
                    str(p.with_suffix("")), physical=False
                ),
                "mv_new_ms": read_wfdb,
                "mv_rdrecord_ms": lambda p: wfdb.rdrecord(str(p.with_suffix(""))),
            }
            row = {"data": name, "records": len(paths)}
            row |= median_ms(functions, paths, args.repeats)
            results.append(row)
        loads = load_sizes(Path(scratch), args.repeats)
    wfdb_decode.MMAP_MIN_BYTES = default_threshold
    print(
        f"{'data':<27} {'n':>4} {'decode new':>10} {'old':>7} {'x':>5} | {'digital':>7} "
        f"{'rdrec':>7} {'x':>5} | {'mV':>7} {'rdrec':>7} {'x':>5}   (ms/record)"
    )
    for r in results:
        print(
            f"{r['data']:<27} {r['records']:>4} {r['decode_new_ms']:>10.3f} "
            f"{r['decode_old_ms']:>7.3f} {r['decode_old_ms'] / r['decode_new_ms']:>5.1f} | "
            f"{r['digital_new_ms']:>7.3f} {r['digital_rdrecord_ms']:>7.3f} "
            f"{r['digital_rdrecord_ms'] / r['digital_new_ms']:>5.1f} | {r['mv_new_ms']:>7.3f} "
            f"{r['mv_rdrecord_ms']:>7.3f} {r['mv_rdrecord_ms'] / r['mv_new_ms']:>5.1f}"
        )
    print(f"\n{'file bytes':>11} {'read ms':>9} {'mmap ms':>9} {'read/mmap':>9}")
    for r in loads:
        print(
            f"{r['bytes']:>11} {r['read_ms']:>9.3f} {r['mmap_ms']:>9.3f} "
            f"{r['read_ms'] / r['mmap_ms']:>9.2f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"cpus": os.cpu_count(), "results": results, "loads": loads}, indent=2)
    )


if __name__ == "__main__":
    main()
