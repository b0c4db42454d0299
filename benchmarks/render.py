"""Paper-ECG rendering speed: ecgflow render-images vs a straightforward matplotlib rendering.

Both draw the same page from the same preprocessed PTB-XL records (100 Hz, 10 s, 12 leads): the
3×4 layout plus the lead II rhythm strip, 25 mm/s, 10 mm/mV, a 1 mm / 5 mm grid, calibration
pulses and lead labels, saved as PNG at 100 dpi. Prints images/s of
  (a) ecgflow render-images, 1 worker and one per core (also with distortions on),
  (b) matplotlib: one figure per record, the grid from minor/major ticks, ``ax.plot`` per lead,
      ``savefig`` (the usual way such layouts are drawn),
and the ratios (a) / (b). Falls back to synthetic records without ../shared/data.

Usage: python benchmarks/render.py [--data ../shared/data/ptbxl] [--n 100]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ecgflow.render.paper import GRID_LEADS, geometry
from ecgflow.stages.ingest import IngestParams, ingest
from ecgflow.stages.preprocess import PreprocessParams, preprocess
from ecgflow.stages.render_images import RenderParams, render_images

ROOT = Path(__file__).resolve().parents[1]
DPI = 100.0


def matplotlib_page(signal: np.ndarray, fs: float, channels: list[str], path: Path) -> None:
    """The same page drawn the straightforward matplotlib way, in millimetres."""
    geo = geometry(DPI, signal.shape[-1] / fs)
    ppm = geo.px_per_mm
    width_mm, height_mm = geo.width / ppm, geo.height / ppm
    fig = plt.figure(figsize=(width_mm / 25.4, height_mm / 25.4), dpi=DPI)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width_mm)
    ax.set_ylim(height_mm, 0)
    ax.set_facecolor((1.0, 0.965, 0.957))
    ax.set_xticks(np.arange(0, width_mm, 5))
    ax.set_yticks(np.arange(0, height_mm, 5))
    ax.set_xticks(np.arange(0, width_mm, 1), minor=True)
    ax.set_yticks(np.arange(0, height_mm, 1), minor=True)
    ax.grid(which="major", color=(0.89, 0.48, 0.45), linewidth=0.6)
    ax.grid(which="minor", color=(0.98, 0.78, 0.77), linewidth=0.3)
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    x0 = geo.x0 / ppm
    per_s = 25.0
    quarter = signal.shape[-1] // 4
    rows = [*GRID_LEADS, ("II",)]
    for r, names in enumerate(rows):
        base = geo.baselines[r] / ppm
        ax.plot(
            [x0 - 8, x0 - 6, x0 - 6, x0 - 1, x0 - 1, x0 - 0.5],
            [base, base, base - 10, base - 10, base, base],
            color="k",
            linewidth=0.8,
        )
        for c, name in enumerate(names):
            lead = channels.index(name)
            if len(names) == 1:
                start, stop = 0, signal.shape[-1]
            else:
                start, stop = c * quarter, (c + 1) * quarter
            t = np.arange(start, stop) / fs
            ax.plot(x0 + t * per_s, base - signal[lead, start:stop] * 10, color="k", linewidth=0.8)
            ax.text(x0 + c * 62.5 + 1.5, base - 10, name, fontsize=9)
    ax.text(x0, height_mm - 5, "25 mm/s   10 mm/mV", fontsize=9)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def millivolt_rows(data: Path) -> tuple[list[np.ndarray], float, list[str]]:
    info = json.loads((data / "preprocess.json").read_text())
    rows = []
    for split in info["splits"]:
        index = pd.read_parquet(data / split / "index.parquet")
        for r in index.itertuples():
            shard = np.load(data / split / f"shard-{r.shard:05d}.npy", mmap_mode="r")
            x = np.asarray(shard[r.row], dtype=np.float64)
            scale = np.asarray(r.lead_scale_mv)[:, None]
            rows.append(x * scale + np.asarray(r.lead_offset_mv)[:, None])
    return rows, float(info["fs"]), list(info["channels"])


def timed(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ptbxl")
    parser.add_argument("--n", type=int, default=100, help="records to render")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    source = f"ptbxl:{args.data}" if args.data.is_dir() else "synthetic://?n=200&seed=0&fs=100"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ingest(IngestParams(source=source, limit=args.n, workers=0), work / "records")
        preprocess(PreprocessParams(), work / "records", None, work / "data")
        rows, fs, channels = millivolt_rows(work / "data")
        n = len(rows)

        def ours(workers: int, distort: bool = False) -> float:
            params = RenderParams(dpi=DPI, workers=workers, distort=distort)
            return n / timed(lambda: render_images(params, work / "data", work / "img"))

        def baseline() -> float:
            (work / "mpl").mkdir(exist_ok=True)

            def loop() -> None:
                for i, x in enumerate(rows):
                    matplotlib_page(x, fs, channels, work / "mpl" / f"{i}.png")

            return n / timed(loop, repeats=1)

        mpl = baseline()
        one = ours(1)
        cores = os.cpu_count() or 1
        many = ours(0)
        distorted = ours(0, distort=True)
    results = {
        "source": source.split(":")[0],
        "records": n,
        "dpi": DPI,
        "cores": cores,
        "matplotlib_images_per_s": round(mpl, 2),
        "ecgflow_1_worker_images_per_s": round(one, 2),
        "ecgflow_all_cores_images_per_s": round(many, 2),
        "ecgflow_all_cores_distorted_images_per_s": round(distorted, 2),
        "ratio_1_worker": round(one / mpl, 2),
        "ratio_all_cores": round(many / mpl, 2),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "render.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
