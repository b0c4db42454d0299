"""The preprocess stage and the shared transform_record, on real PTB-XL and synthetic data."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import signal as sps

from ecgflow.errors import EcgflowError
from ecgflow.io.readers import read_record
from ecgflow.io.record import STANDARD_LEADS, ECGRecord
from ecgflow.signal import quality
from ecgflow.signal.resample import ratio, resample
from ecgflow.signal.transform import transform_record
from ecgflow.stages import preprocess as preprocess_stage
from ecgflow.stages.ingest import IngestParams, ingest
from ecgflow.stages.label import LabelParams, label
from ecgflow.stages.preprocess import PreprocessParams, preprocess
from ecgflow.stages.split import SplitParams, split


@dataclass
class Inputs:
    records: Path
    split: Path


def _inputs(root: Path, source: str, label_set: str, limit: int | None = None) -> Inputs:
    ingest(IngestParams(source=source, limit=limit, workers=1), root / "records")
    label(LabelParams(label_set=label_set), root / "records", root / "labels")
    split(SplitParams(), root / "records", root / "labels", root / "split")
    return Inputs(root / "records", root / "split")


@pytest.fixture(scope="module")
def ptbxl(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    root = tmp_path_factory.mktemp("pp-ptbxl")
    return _inputs(root, f"ptbxl:{shared_data / 'ptbxl'}", "ptbxl-superdiagnostic", limit=60)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    root = tmp_path_factory.mktemp("pp-synth")
    return _inputs(root, "synthetic://?n=30&seed=3&fs=500&seconds=10", "synthetic")


@pytest.fixture(scope="module")
def ptbxl_out(ptbxl: Inputs, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pp-out")
    preprocess(PreprocessParams(workers=1), ptbxl.records, ptbxl.split, out)
    return out


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _row(out: Path, record_id: str) -> tuple[pd.Series, np.ndarray]:
    for split_dir in sorted(p for p in out.iterdir() if p.is_dir()):
        index = pd.read_parquet(split_dir / "index.parquet")
        hits = index[index["record_id"] == record_id]
        if len(hits):
            first = hits.iloc[0]
            shard = np.load(split_dir / f"shard-{first['shard']:05d}.npy", mmap_mode="r")
            return first, np.asarray(shard[hits["row"].to_numpy()])
    raise AssertionError(f"{record_id} not in {out}")


def test_shapes_dtype_and_index(ptbxl: Inputs, ptbxl_out: Path) -> None:
    info = json.loads((ptbxl_out / "preprocess.json").read_text())
    assert info["fs"] == 100.0 and info["n_channels"] == 12 and info["n_times"] == 1000
    assert info["channels"] == list(STANDARD_LEADS)
    total = 0
    for name in info["splits"]:
        index = pd.read_parquet(ptbxl_out / name / "index.parquet")
        shards = sorted((ptbxl_out / name).glob("shard-*.npy"))
        arrays = [np.load(s, mmap_mode="r") for s in shards]
        assert all(a.dtype == np.float32 and a.flags.c_contiguous for a in arrays)
        assert all(a.shape[1:] == (12, 1000) for a in arrays)
        assert sum(len(a) for a in arrays) == len(index) == info["n_samples"][name]
        assert (index["split"] == name).all() and (index["segment"] == 0).all()
        assert np.isfinite(np.concatenate(arrays)).all()
        total += len(index)
    rejected = pd.read_parquet(ptbxl_out / "rejected.parquet")
    assert total + len(rejected) == len(pd.read_parquet(ptbxl.records / "records.parquet"))
    assert "manifest.json" in {p.name for p in ptbxl_out.iterdir()}


def test_deterministic_and_parallel_same_bytes(ptbxl: Inputs, ptbxl_out: Path, tmp_path: Path):
    preprocess(PreprocessParams(workers=1), ptbxl.records, ptbxl.split, tmp_path / "again")
    assert _files(tmp_path / "again") == _files(ptbxl_out)
    params = PreprocessParams(workers=2, chunk_size=16)
    preprocess(params, ptbxl.records, ptbxl.split, tmp_path / "par")
    preprocess(params, ptbxl.records, ptbxl.split, tmp_path / "par2")
    assert _files(tmp_path / "par") == _files(tmp_path / "par2")
    for name in ("train", "val", "test"):
        a = np.concatenate([np.load(p) for p in sorted((tmp_path / "par" / name).glob("s*.npy"))])
        b = np.concatenate([np.load(p) for p in sorted((ptbxl_out / name).glob("s*.npy"))])
        np.testing.assert_array_equal(a, b)


def test_transform_record_equals_stage(ptbxl: Inputs, ptbxl_out: Path, tmp_path: Path) -> None:
    records = pd.read_parquet(ptbxl.records / "records.parquet")
    params = PreprocessParams(window_s=5.0, stride_s=2.5, workers=1)
    preprocess(params, ptbxl.records, ptbxl.split, tmp_path / "win")
    for rec in records.head(3).itertuples():
        record = read_record(ptbxl.records / "raw" / rec.path, record_id=rec.record_id)
        expected, info = transform_record(record, PreprocessParams())
        index_row, stage = _row(ptbxl_out, rec.record_id)
        np.testing.assert_allclose(stage[0], expected, atol=1e-5)
        assert index_row["n_repaired"] == info["n_repaired"]
        windows, _ = transform_record(record, params)
        _, stage_windows = _row(tmp_path / "win", rec.record_id)
        np.testing.assert_allclose(stage_windows, windows, atol=1e-5)


@pytest.mark.parametrize("mode", ["zscore", "scale"])
def test_index_undoes_normalisation_to_millivolts(ptbxl: Inputs, tmp_path: Path, mode: str):
    records = pd.read_parquet(ptbxl.records / "records.parquet")
    rec = records.iloc[0]
    record = read_record(ptbxl.records / "raw" / rec.path, record_id=rec.record_id)
    millivolts, _ = transform_record(record, PreprocessParams(normalise="none"))
    params = PreprocessParams(normalise=mode, scale=2.5, workers=1)
    preprocess(params, ptbxl.records, None, tmp_path)
    row, stage = _row(tmp_path, rec.record_id)
    scale = np.asarray(row["lead_scale_mv"])[:, None]
    offset = np.asarray(row["lead_offset_mv"])[:, None]
    assert not np.allclose(stage[0], millivolts, atol=1e-2)
    np.testing.assert_allclose(stage[0] * scale + offset, millivolts, atol=1e-4)


def test_windows_and_index(synthetic: Inputs, tmp_path: Path) -> None:
    params = PreprocessParams(fs=100, window_s=5, stride_s=2.5, workers=1)
    result = preprocess(params, synthetic.records, synthetic.split, tmp_path)
    index = pd.concat(pd.read_parquet(p) for p in sorted(tmp_path.glob("*/index.parquet")))
    per_record = index.groupby("record_id")
    assert (per_record.size() == 3).all()  # 10 s, 5 s windows every 2.5 s
    assert sorted(per_record.get_group(index["record_id"].iloc[0])["start_sample"]) == [
        0,
        250,
        500,
    ]
    assert sum(result.n_samples.values()) == len(index) == 3 * index["record_id"].nunique()
    shard = np.load(next(tmp_path.glob("train/shard-*.npy")))
    assert shard.shape[1:] == (12, 500)
    with pytest.raises(EcgflowError, match="length_s"):
        PreprocessParams(window_s=5, length_s=10)


def test_lead_modes(synthetic: Inputs, tmp_path: Path) -> None:
    outs = {}
    for mode in ("12lead", "lead1-dup", "leads:I,II,V1"):
        out = tmp_path / mode.replace(":", "_")
        preprocess(PreprocessParams(leads=mode, workers=1), synthetic.records, synthetic.split, out)
        outs[mode] = np.load(out / "train" / "shard-00000.npy")
    assert outs["12lead"].shape[1] == 12 and outs["lead1-dup"].shape[1] == 12
    assert outs["leads:I,II,V1"].shape[1] == 3
    dup = outs["lead1-dup"]
    assert all(np.array_equal(dup[:, 0], dup[:, i]) for i in range(12))
    np.testing.assert_allclose(dup[:, 0], outs["12lead"][:, 0], atol=1e-6)
    np.testing.assert_allclose(outs["leads:I,II,V1"], outs["12lead"][:, [0, 1, 6]], atol=1e-6)


def _record(leads: list[str], fs: float = 500.0, seconds: float = 10.0) -> ECGRecord:
    t = np.arange(int(fs * seconds)) / fs
    rng = np.random.default_rng(0)
    rows = [
        np.sin(2 * np.pi * (1 + i / 7) * t) + 0.01 * rng.standard_normal(t.size)
        for i in range(len(leads))
    ]
    return ECGRecord(np.array(rows), fs, leads, ["mV"] * len(leads), "r1")


def test_missing_lead_mask_and_quality_flags() -> None:
    record = _record(["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"])
    record.signal[0, 100:160] = np.nan  # repaired
    record.signal[1] = 0.3  # flat
    record.signal[2, 2000:2200] = record.signal[2].max()  # saturated run
    record.signal[3] += 0.5 * np.sin(2 * np.pi * 45 * np.arange(5000) / 500)  # high-frequency
    out, info = transform_record(record, PreprocessParams())
    assert out.shape == (12, 1000) and out.dtype == np.float32
    assert info["n_repaired"] == 60 and info["flag_repaired"]
    assert info["lead_mask"] == [True] + [False] * 5 + [True] * 6
    assert info["n_missing_leads"] == 4 and info["flag_missing_lead"]
    assert info["flag_flat"] and info["n_flat_leads"] == 1
    assert info["flag_saturation"] and info["n_saturated_leads"] == 1
    assert info["flag_noise"] and info["n_noisy_leads"] == 1
    assert not out[[1, 2, 3, 4, 5]].any() and np.isfinite(out).all()
    sub, sub_info = transform_record(record, PreprocessParams(leads="leads:I,aVF"))
    assert sub_info["lead_mask"] == [True, False] and not sub[1].any()
    with pytest.raises(EcgflowError, match="lead I"):
        transform_record(_record(["II", "V1"]), PreprocessParams(leads="lead1-dup"))


def test_corrupted_copy_repair_flags_and_rejects(ptbxl: Inputs, tmp_path: Path) -> None:
    copy = tmp_path / "records"
    shutil.copytree(ptbxl.records, copy)
    records = pd.read_parquet(copy / "records.parquet")
    bad, gone = records.iloc[0], records.iloc[1]
    dat = copy / "raw" / bad.path.replace(".hea", ".dat")
    data = np.fromfile(dat, dtype="<i2").reshape(-1, 12)
    data[100:150, 0] = -32768  # WFDB's invalid sample value → NaN
    data[:, 3] = 0  # a flat lead
    data.tofile(dat)
    (copy / "raw" / gone.path.replace(".hea", ".dat")).unlink()
    preprocess(PreprocessParams(workers=1), copy, ptbxl.split, tmp_path / "out")
    row, values = _row(tmp_path / "out", bad.record_id)
    assert row["n_repaired"] == 50 and row["flag_repaired"] and row["flag_flat"]
    assert list(row["lead_mask"]) == [True] * 3 + [False] + [True] * 8
    assert not values[0, 3].any() and np.isfinite(values).all()
    rejected = pd.read_parquet(tmp_path / "out" / "rejected.parquet")
    assert rejected["record_id"].tolist() == [gone.record_id]
    assert "missing" in rejected["reason"].iloc[0] or "not found" in rejected["reason"].iloc[0]


def test_like_reproduces_parameters(synthetic: Inputs, tmp_path: Path) -> None:
    params = PreprocessParams(fs=50, bandpass=(1.0, 20.0), length_s=8, notch=50, workers=1)
    preprocess(params, synthetic.records, synthetic.split, tmp_path / "train")
    result = preprocess(
        PreprocessParams(), synthetic.records, None, tmp_path / "ext", like=tmp_path / "train"
    )
    first = json.loads((tmp_path / "train" / "preprocess.json").read_text())
    second = json.loads((tmp_path / "ext" / "preprocess.json").read_text())
    drop = {"workers"}
    assert {k: v for k, v in first["params"].items() if k not in drop} == {
        k: v for k, v in second["params"].items() if k not in drop
    }
    assert second["splits"] == ["all"] and result.n_samples["all"] == 30
    index = pd.read_parquet(tmp_path / "ext" / "all" / "index.parquet")
    rid = index["record_id"].iloc[5]
    _, ext = _row(tmp_path / "ext", rid)
    _, orig = _row(tmp_path / "train", rid)
    assert ext.shape == (1, 12, 400)
    np.testing.assert_array_equal(ext, orig)
    with pytest.raises(EcgflowError, match=r"preprocess\.json"):
        preprocess(
            PreprocessParams(), synthetic.records, None, tmp_path / "x", like=synthetic.records
        )


@pytest.mark.parametrize(
    ("fs_in", "fs_out"),
    [(500, 100), (250, 100), (1000, 100), (360, 100), (257, 100), (50, 100), (100, 500), (200, 50)],
)
def test_resample_is_scipy_resample_poly(fs_in: int, fs_out: int) -> None:
    rng = np.random.default_rng(fs_in)
    up, down = ratio(fs_in, fs_out)
    for n in (1, 7, 49, 50, 51, 999, 2500, 5000, 5003):
        x = rng.standard_normal((3, 2, n))
        expected = sps.resample_poly(x, up, down, axis=-1)
        got = resample(x, fs_in, fs_out)
        assert got.shape == expected.shape and got.dtype == np.float64
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    # a record's numbers do not depend on the batch it is in (bit for bit)
    batch = rng.standard_normal((5, 12, 5000))
    whole = resample(batch, fs_in, fs_out)
    assert np.array_equal(resample(batch[2], fs_in, fs_out), whole[2])
    assert np.array_equal(resample(batch[1:4, 3:4], fs_in, fs_out), whole[1:4, 3:4])


def test_noise_ratio_is_the_high_band_power_share() -> None:
    fs, t = 500.0, np.arange(5000) / 500.0
    clean = np.sin(2 * np.pi * 10 * t) + 0.3 * np.sin(2 * np.pi * 25 * t)
    x = np.stack(
        [clean, clean + np.sin(2 * np.pi * 45 * t), clean + 0.4 * np.sin(2 * np.pi * 120 * t)]
    )
    power = np.abs(np.fft.rfft(x, axis=-1)) ** 2  # float64 reference of the module docstring
    freqs = np.fft.rfftfreq(x.shape[-1], 1 / fs)
    expected = power[:, freqs > 40].sum(-1) / power[:, freqs > 0.5].sum(-1)
    got = quality.noise_ratio(x, fs)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert got[0] < 1e-6 and got[1] == pytest.approx(1 / 2.09, abs=1e-4)
    # the 120 Hz lead: 0.4² / (1.09 + 0.4²) = 0.13, below NOISE_RATIO
    assert quality.noisy_leads(x, fs).tolist() == [False, True, False]
    flat, saturated, noisy = quality.lead_flags(x, fs)
    assert noisy.tolist() == [False, True, False] and not flat.any() and not saturated.any()
    low = x[:, ::5]  # 100 Hz: no band above 40 Hz; the first-difference proxy flags the 45 Hz
    assert quality.noisy_leads(low, 100.0).tolist() == [False, True, False]


def test_lead_flags_match_the_single_flags() -> None:
    rng = np.random.default_rng(5)
    x = np.round(rng.standard_normal((4, 6, 3000)), 2)
    x[0, 1] = 0.2  # flat
    x[1, 2, 100:200] = x[1, 2].max()  # saturated at the maximum
    x[2, 3, 50:120] = x[2, 3].min()  # ... and at the minimum
    x[3, 4] += 2 * np.sin(2 * np.pi * 60 * np.arange(3000) / 250)  # high-frequency
    flat, saturated, noisy = quality.lead_flags(x, 250.0)
    assert np.array_equal(flat, quality.flat_leads(x))
    assert np.array_equal(saturated, quality.saturated_leads(x, 250.0))
    assert np.array_equal(noisy, quality.noisy_leads(x, 250.0))
    assert flat[0, 1] and saturated[1, 2] and saturated[2, 3] and not saturated[0, 1]
    assert flat.sum() == 1 and saturated.sum() == 2


def test_batches_within_a_chunk_give_the_same_bytes(
    synthetic: Inputs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = PreprocessParams(workers=1)  # 500 Hz records: resampled to 100 Hz
    preprocess(params, synthetic.records, synthetic.split, tmp_path / "default")
    monkeypatch.setattr(preprocess_stage, "BATCH_SAMPLES", 12 * 5000 * 3)  # 3 records a batch
    preprocess(params, synthetic.records, synthetic.split, tmp_path / "small")
    assert _files(tmp_path / "small") == _files(tmp_path / "default")
    index = pd.read_parquet(tmp_path / "default" / "train" / "index.parquet")
    rid = index["record_id"].iloc[4]
    path = pd.read_parquet(synthetic.records / "records.parquet").set_index("record_id").loc[rid]
    record = read_record(synthetic.records / "raw" / path["path"], record_id=rid)
    expected, _ = transform_record(record, params)
    _, stage = _row(tmp_path / "default", rid)
    np.testing.assert_allclose(stage[0], expected, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"fs": 0}, "fs"),
        ({"bandpass": (0.5, 60.0)}, "bandpass"),
        ({"bandpass": (5.0, 1.0)}, "bandpass"),
        ({"normalise": "minmax"}, "normalise"),
        ({"leads": "8lead"}, "leads"),
        ({"leads": "leads:I,I"}, "leads"),
        ({"scale": -1}, "scale"),
        ({"length_s": None}, "length_s"),
        ({"stride_s": 1.0}, "stride_s"),
        ({"workers": -1}, "workers"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_params(kwargs: dict, field: str) -> None:
    with pytest.raises(EcgflowError, match=field):
        PreprocessParams(**kwargs)


def test_missing_inputs(tmp_path: Path, synthetic: Inputs) -> None:
    with pytest.raises(EcgflowError, match=r"records\.parquet"):
        preprocess(PreprocessParams(), tmp_path / "none", None, tmp_path / "out")
    with pytest.raises(EcgflowError, match=r"split\.parquet"):
        preprocess(PreprocessParams(), synthetic.records, tmp_path / "none", tmp_path / "out")
