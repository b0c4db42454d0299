"""render-images: paper layout read back from pixels, signal images, determinism, bad input."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA
from PIL import Image

from ecgflow.errors import EcgflowError
from ecgflow.io.readers import read_record
from ecgflow.render.distort import DistortionParams, distort
from ecgflow.render.paper import GRID_LEADS, geometry, render_paper
from ecgflow.render.signal_images import (
    gramian_angular_field,
    markov_transition_field,
    paa,
    recurrence_plot,
    signal_image,
)
from ecgflow.signal.transform import transform_record
from ecgflow.stages.ingest import IngestParams, ingest
from ecgflow.stages.preprocess import PreprocessParams, preprocess
from ecgflow.stages.render_images import RenderParams, render_images

#: A trace pixel is black ink; grid lines and paper are pink.
INK_MAX = 90
DPI = 200.0
#: Error allowed between the printed and the true value (mV): at 200 dpi one pixel is
#: 0.013 mV, the line is 2 px wide, and pixel centres are rounded.
TOLERANCE_MV = 0.04


def _source() -> str:
    if SHARED_DATA.is_dir():
        return f"ptbxl:{SHARED_DATA / 'ptbxl'}"
    return "synthetic://?n=12&seed=5&fs=500"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(records, data): 12 records ingested, preprocessed with the default z-score."""
    root = tmp_path_factory.mktemp("render")
    ingest(IngestParams(source=_source(), limit=12, workers=1), root / "records")
    preprocess(PreprocessParams(workers=1), root / "records", None, root / "data")
    return root / "records", root / "data"


@pytest.fixture(scope="module")
def rendered(prepared: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    records, data = prepared
    out = tmp_path_factory.mktemp("render-out")
    render_images(RenderParams(dpi=DPI, workers=1), data, out, records_dir=records)
    return out


def _millivolts(records: Path, record_id: str) -> np.ndarray:
    """The record through the same filters, not normalised: the truth the paper should show."""
    rows = pd.read_parquet(records / "records.parquet").set_index("record_id")
    record = read_record(records / "raw" / rows.loc[record_id, "path"], record_id=record_id)
    signal, _ = transform_record(record, PreprocessParams(normalise="none"))
    return signal.astype(np.float64)


def _read_trace(pixels: np.ndarray, x: int, baseline: float, px_per_mv: float) -> tuple:
    """(low, centre, high) mV of the ink in pixel column ``x`` within ±1.5 mV of ``baseline``."""
    band = slice(round(baseline - 1.5 * px_per_mv), round(baseline + 1.5 * px_per_mv))
    ink = np.flatnonzero((pixels[band, x] < INK_MAX).all(axis=-1)) + band.start
    if ink.size == 0:
        return None
    to_mv = lambda y: (baseline - y) / px_per_mv  # noqa: E731
    return to_mv(ink.max()), to_mv(ink.mean()), to_mv(ink.min())


def _under(truth: np.ndarray, fs: float, t0: float, t1: float) -> np.ndarray:
    """Values of the drawn polyline (straight between samples) from ``t0`` to ``t1`` s."""
    inside = np.arange(np.ceil(t0 * fs), np.floor(t1 * fs) + 1) / fs
    times = np.concatenate([[t0, t1], inside])
    return np.interp(times * fs, np.arange(truth.size), truth)


def test_rhythm_strip_pixels_give_back_the_signal(
    prepared: tuple[Path, Path], rendered: Path
) -> None:
    records, _ = prepared
    info = json.loads((rendered / "render.json").read_text())
    geo = info["paper_geometry"]
    fs = info["fs"]
    image_row = pd.read_parquet(rendered / "images.parquet").iloc[0]
    truth = _millivolts(records, image_row["record_id"])[info["channels"].index("II")]
    pixels = np.asarray(Image.open(rendered / image_row["path"]).convert("RGB"))
    times = np.arange(0.3, 9.9, 0.01)  # after the lead label, before the edge
    errors, recovered, expected = [], [], []
    for t in times:
        x = round(geo["x0"] + t * geo["px_per_s"])
        reading = _read_trace(pixels, x, geo["baselines"][3], geo["px_per_mv"])
        assert reading is not None, f"no trace ink at t={t:.2f} s"
        low, _, high = reading
        # the true trace across this pixel column (it spans 1/px_per_s seconds)
        t0, t1 = (x - 0.5 - geo["x0"]) / geo["px_per_s"], (x + 0.5 - geo["x0"]) / geo["px_per_s"]
        under = _under(truth, fs, t0, t1)
        errors.append(max(low - under.max(), under.min() - high, 0.0))
        recovered.append((low + high) / 2)  # mid-range of the ink against that of the truth
        expected.append((under.min() + under.max()) / 2)
    # 1. everywhere, the ink in a pixel column covers the true trace across that column
    assert max(errors) <= TOLERANCE_MV, f"worst {max(errors):.3f} mV"
    # 2. away from the steep QRS flanks (where half a pixel of time is a big step in mV),
    #    the ink's centre reads the value itself: time and amplitude scale are right
    dense = np.interp(times * fs, np.arange(truth.size), truth)
    gentle = np.abs(np.gradient(dense, times)) < 5.0  # mV/s
    assert gentle.mean() > 0.8
    gap = np.abs(np.subtract(recovered, expected))[gentle]
    assert np.median(gap) <= 0.015 and np.percentile(gap, 95) <= TOLERANCE_MV
    assert np.corrcoef(np.asarray(recovered)[gentle], np.asarray(expected)[gentle])[0, 1] > 0.98


def test_each_column_shows_its_lead_and_quarter(prepared: tuple[Path, Path], rendered: Path):
    records, _ = prepared
    info = json.loads((rendered / "render.json").read_text())
    geo, fs, channels = info["paper_geometry"], info["fs"], info["channels"]
    image_row = pd.read_parquet(rendered / "images.parquet").iloc[0]
    truth = _millivolts(records, image_row["record_id"])
    pixels = np.asarray(Image.open(rendered / image_row["path"]).convert("RGB"))
    for r, names in enumerate(GRID_LEADS):
        for c, name in enumerate(names):
            times = np.arange(c * 2.5 + 0.35, (c + 1) * 2.5 - 0.05, 0.02)
            got, at = [], []
            for t in times:
                x = round(geo["x0"] + t * geo["px_per_s"])
                reading = _read_trace(pixels, x, geo["baselines"][r], geo["px_per_mv"])
                if reading is not None:
                    got.append(reading[1])
                    at.append(round(t * fs))
            assert len(got) > 0.9 * len(times), name
            # the ink matches this lead's own samples of this quarter better than any other
            # lead's (neighbouring rows' big complexes may reach in, so means, not maxima)
            error = np.abs(np.asarray(got)[None, :] - truth[:, at]).mean(axis=1)
            own = channels.index(name)
            assert error[own] < 0.05, f"{name}: {error[own]:.3f} mV"
            if truth[own, at].std() > 0.05:
                assert error.argmin() == own, f"{name} (row {r}, column {c}) looks like another"


def test_outputs_index_llava_and_geometry(prepared: tuple[Path, Path], rendered: Path):
    records, data = prepared
    images = pd.read_parquet(rendered / "images.parquet")
    assert len(images) == 12 and (images["kind"] == "paper").all()
    assert images["distortions"].isna().all()
    geo = geometry(DPI)
    assert (images["width"] == geo.width).all() and (images["height"] == geo.height).all()
    first = Image.open(rendered / images["path"].iloc[0])
    assert first.size == (geo.width, geo.height)
    assert first.info["dpi"] == pytest.approx((DPI, DPI), abs=0.1)  # prints at 25 mm/s
    llava = json.loads((rendered / "llava.json").read_text())
    assert len(llava) == 12
    entry = llava[0]
    assert set(entry) >= {"id", "image", "ecg", "signal", "conversations"}
    assert (rendered / entry["image"]).is_file()
    assert (records / entry["ecg"]).is_file()
    assert (data / entry["signal"]["shard"]).is_file()
    human, gpt = entry["conversations"]
    assert human["from"] == "human" and "<image>" in human["value"]
    assert gpt["from"] == "gpt" and gpt["value"].strip()
    manifest = json.loads((rendered / "manifest.json").read_text())
    assert manifest["stage"] == "render-images"


def test_same_bytes_twice_and_in_parallel(prepared: tuple[Path, Path], tmp_path: Path) -> None:
    _, data = prepared
    params = RenderParams(distort=True, signal_images=True, seed=3, chunk_size=4, workers=1)
    render_images(params, data, tmp_path / "a")
    render_images(params.model_copy(update={"workers": 2}), data, tmp_path / "b")

    def files(folder: Path) -> dict[str, bytes]:
        return {
            p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "manifest.json"
        }

    a, b = files(tmp_path / "a"), files(tmp_path / "b")
    assert a == b
    assert sum(k.startswith("signal/") for k in a) == 12


def test_distortions_are_seeded_and_recorded() -> None:
    from ecgflow.io.synthetic_ecg import synthesize_record

    record = synthesize_record(0, seed=1).record
    clean = render_paper(record.signal, record.fs, record.leads, dpi=80)
    params = DistortionParams(crease_p=1.0, shadow_p=1.0, greyscale_p=0.0)
    one, applied = distort(clean, np.random.default_rng(7), params)
    two, again = distort(clean, np.random.default_rng(7), params)
    other, _ = distort(clean, np.random.default_rng(8), params)
    assert one.tobytes() == two.tobytes() and applied == again
    assert one.tobytes() != other.tobytes() and one.tobytes() != clean.tobytes()
    assert {"rotation_deg", "crease", "shadow_depth", "temperature", "noise_std"} <= set(applied)
    # switching rotation off leaves every other draw of the same seed unchanged
    still, without = distort(
        clean, np.random.default_rng(7), params.model_copy(update={"rotation_deg": 0.0})
    )
    assert "rotation_deg" not in without
    assert {k: v for k, v in applied.items() if k != "rotation_deg"} == without
    grey, done = distort(clean, np.random.default_rng(7), DistortionParams(greyscale_p=1.0))
    assert done["greyscale"]
    arr = np.asarray(grey)
    assert np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 1], arr[..., 2])


def test_windows_give_one_image_per_window(prepared: tuple[Path, Path], tmp_path: Path) -> None:
    records, _ = prepared
    params = PreprocessParams(window_s=5.0, normalise="none", workers=1)
    preprocess(params, records, None, tmp_path / "win")
    render_images(RenderParams(workers=1), tmp_path / "win", tmp_path / "img")
    images = pd.read_parquet(tmp_path / "img" / "images.parquet")
    assert len(images) == 24 and images["image_id"].str.endswith(("-s000", "-s001")).all()
    assert (images["width"] == geometry(100.0, 5.0).width).all()
    assert not (tmp_path / "img" / "llava.json").exists()  # no records folder given
    note = json.loads((tmp_path / "img" / "render.json").read_text())["llava"]
    assert note["written"] is False


def test_signal_image_transforms_match_their_definitions() -> None:
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.standard_normal(60))
    size = 12
    z = paa(x, size)
    assert z.shape == (size,)
    np.testing.assert_allclose(z[0], x[:5].mean())
    scaled = 2 * (z - z.min()) / (z.max() - z.min()) - 1
    phi = np.arccos(scaled)
    np.testing.assert_allclose(
        gramian_angular_field(x, size), np.cos(phi[:, None] + phi[None, :]), atol=1e-12
    )
    rp = recurrence_plot(x, size)
    assert np.allclose(np.diag(rp), 0) and np.allclose(rp, rp.T) and rp.max() == pytest.approx(1)
    # MTF: the block average of the full n × n field, computed the slow way
    bins = 4
    edges = np.quantile(x, [0.25, 0.5, 0.75])
    q = np.searchsorted(edges, x, side="right")
    w = np.zeros((bins, bins))
    for a, b in itertools.pairwise(q):
        w[a, b] += 1
    w /= w.sum(axis=1, keepdims=True)
    full = w[q[:, None], q[None, :]]
    blocks = (np.arange(x.size) * size) // x.size
    slow = np.array(
        [[full[blocks == i][:, blocks == j].mean() for j in range(size)] for i in range(size)]
    )
    np.testing.assert_allclose(markov_transition_field(x, size, bins), slow, atol=1e-12)
    image = signal_image(x, 16)
    assert image.shape == (16, 16, 3) and image.dtype == np.uint8


def test_bad_inputs_are_named(prepared: tuple[Path, Path], tmp_path: Path) -> None:
    records, data = prepared
    with pytest.raises(EcgflowError, match=r"preprocess\.json"):
        render_images(RenderParams(), records, tmp_path / "x")
    with pytest.raises(EcgflowError, match="dpi"):
        RenderParams(dpi=0)
    with pytest.raises(EcgflowError, match=r"distortions\.noise_std"):
        RenderParams(distortions={"noise_std": -1})
    with pytest.raises(EcgflowError, match="signal_lead"):
        render_images(RenderParams(signal_images=True, signal_lead="V9"), data, tmp_path / "y")
    with pytest.raises(EcgflowError, match="splits"):
        render_images(RenderParams(splits=["test"]), data, tmp_path / "z")


def test_corrupt_row_is_listed_and_the_rest_rendered(
    prepared: tuple[Path, Path], tmp_path: Path
) -> None:
    import shutil

    _, data = prepared
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    shard_path = copy / "all" / "shard-00000.npy"
    shard = np.load(shard_path)
    shard[2, 1, 100] = np.nan
    np.save(shard_path, shard)
    result = render_images(RenderParams(workers=1), copy, tmp_path / "out")
    assert result.n_paper == 11 and len(result.rejected) == 1
    rejected = pd.read_parquet(tmp_path / "out" / "rejected.parquet")
    index = pd.read_parquet(copy / "all" / "index.parquet")
    assert rejected["record_id"].tolist() == [index["record_id"].iloc[2]]
    assert "non-finite" in rejected["reason"].iloc[0]


def test_cli_render_images(prepared: tuple[Path, Path], tmp_path: Path) -> None:
    records, data = prepared
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    base = [sys.executable, "-m", "ecgflow.cli", "render-images"]
    ok = subprocess.run(
        [
            *base,
            "--data",
            str(data),
            "--out",
            str(tmp_path / "o"),
            "--records",
            str(records),
            "--signal-images",
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "12 paper, 12 signal images, 12 llava entries; 0 rejected" in ok.stderr
    bad = subprocess.run(
        [*base, "--data", str(records), "--out", str(tmp_path / "p")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert bad.returncode == 2 and "preprocess.json" in bad.stderr
    assert "Traceback" not in bad.stderr
