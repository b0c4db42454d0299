"""The ingest stage on real data (PTB-XL, CinC 2021, CODE-15%, WFDB edge cases) and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb
from datasets import ptbxl_copy

from ecgflow.errors import EcgflowError
from ecgflow.manifest import sha256_file
from ecgflow.stages.ingest import IngestParams, ingest


def run(source: str, out: Path, **kwargs) -> tuple:
    result = ingest(IngestParams(source=source, **kwargs), out)
    records = pd.read_parquet(out / "records.parquet")
    rejected = pd.read_parquet(out / "rejected.parquet")
    return result, records, rejected


# --- PTB-XL -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ptbxl_ingested(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("ptbxl") / "out"
    return (*run(f"ptbxl:{shared_data / 'ptbxl'}", out, workers=2), out)


def test_ptbxl_all_records_accepted_with_metadata(shared_data: Path, ptbxl_ingested) -> None:
    result, records, rejected, out = ptbxl_ingested
    database = pd.read_csv(shared_data / "ptbxl" / "ptbxl_database.csv")
    assert (result.accepted, len(rejected), result.seen) == (500, 0, 500)
    assert records["record_id"].tolist() == [str(i) for i in database["ecg_id"]]
    expected_patients = [str(int(p)) for p in database["patient_id"]]
    assert records["patient_id"].tolist() == expected_patients
    assert records["strat_fold"].tolist() == database["strat_fold"].tolist()
    assert set(records["fs"]) == {100.0}
    assert set(records["n_samples"]) == {1000}
    first = records.iloc[0]
    assert (first["record_id"], first["patient_id"], first["strat_fold"]) == ("1", "15709", 3)
    assert first["sex"] == "female" and first["age"] == 56.0
    assert json.loads(first["scp_codes"]) == {"NORM": 100.0, "LVOLT": 0.0, "SR": 0.0}
    assert list(first["labels"]) == ["LVOLT", "NORM", "SR"]
    assert first["report"] == "sinusrhythmus periphere niederspannung"
    assert list(first["leads"]) == ["I", "II", "III", "aVR", "aVL", "aVF"] + [
        f"V{i}" for i in range(1, 7)
    ]


def test_ptbxl_raw_files_and_manifest(shared_data: Path, ptbxl_ingested) -> None:
    result, records, _, out = ptbxl_ingested
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"seen": 500, "accepted": 500, "rejected": 0}
    assert manifest["dataset"] == "ptbxl"
    assert (out / "raw" / "scp_statements.csv").is_file()
    row = records.iloc[10]
    for rel, digest in zip(row["files"], row["sha256"], strict=True):
        assert sha256_file(shared_data / "ptbxl" / rel) == digest
        assert manifest["files"][f"raw/{rel}"] == digest
    assert manifest["files"]["records.parquet"] == sha256_file(out / "records.parquet")
    # the copied record reads back identically to the original
    original = wfdb.rdrecord(str(shared_data / "ptbxl" / row["path"][: -len(".hea")]))
    copied = wfdb.rdrecord(str(out / "raw" / row["path"][: -len(".hea")]))
    np.testing.assert_array_equal(original.p_signal, copied.p_signal)


def test_ptbxl_rerun_gives_identical_parquet(shared_data: Path, ptbxl_ingested, tmp_path) -> None:
    _, _, _, first_out = ptbxl_ingested
    run(f"ptbxl:{shared_data / 'ptbxl'}", tmp_path / "again", workers=1)
    for name in ("records.parquet", "rejected.parquet", "manifest.json"):
        first, second = first_out / name, tmp_path / "again" / name
        if name == "manifest.json":  # identical apart from the workers parameter
            a, b = json.loads(first.read_text()), json.loads(second.read_text())
            assert a["files"] == b["files"]
        else:
            assert first.read_bytes() == second.read_bytes(), name


def test_ptbxl_500hz_accepts_present_records_and_lists_the_rest(shared_data, tmp_path) -> None:
    result, records, rejected = run(f"ptbxl:{shared_data / 'ptbxl'}?rate=500", tmp_path / "o")
    present = len(list((shared_data / "ptbxl" / "records500").rglob("*.hea")))
    assert result.accepted == present == 100
    assert result.seen == 500 and len(rejected) == 400
    assert set(records["n_samples"]) == {5000} and set(records["fs"]) == {500.0}
    assert rejected["reason"].str.contains("header not found").all()


def test_ptbxl_detected_without_kind_and_limit(shared_data: Path, tmp_path: Path) -> None:
    result, records, _ = run(str(shared_data / "ptbxl"), tmp_path / "o", limit=7)
    assert result.dataset == "ptbxl" and len(records) == 7 == result.seen


# --- bad input ---------------------------------------------------------------------------------


def _header_with(path: Path, *, fs: str | None = None, sig_len: str | None = None) -> None:
    lines = path.read_text().splitlines()
    fields = lines[0].split()
    if fs is not None:
        fields[2] = fs
    if sig_len is not None:
        fields[3] = sig_len
    path.write_text("\n".join([" ".join(fields), *lines[1:]]) + "\n")


def test_corrupted_records_rejected_with_reasons(shared_data: Path, tmp_path: Path) -> None:
    root = ptbxl_copy(shared_data, tmp_path / "ptbxl", list(range(1, 12)))
    rec = lambda i: root / "records100" / "00000" / f"{i:05d}_lr"  # noqa: E731
    dat = rec(1).with_suffix(".dat")
    dat.write_bytes(dat.read_bytes()[:5000])  # 1: truncated signal file
    rec(2).with_suffix(".hea").write_bytes(b"\x00\xff garbage \x13\n\x01 not a header\n")  # 2
    rec(3).with_suffix(".dat").unlink()  # 3: missing signal file
    rec(4).with_suffix(".dat").write_bytes(b"")  # 4: zero-length signal file
    _header_with(rec(5).with_suffix(".hea"), fs="0")  # 5: fs 0
    _header_with(rec(6).with_suffix(".hea"), fs="-100")  # 6: negative fs
    all_nan = np.full((1000, 12), -32768, dtype="<i2")  # 7: every sample WFDB's invalid value
    all_nan.tofile(rec(7).with_suffix(".dat"))
    partial = np.fromfile(rec(8).with_suffix(".dat"), dtype="<i2").reshape(1000, 12)
    partial[100:110, 2] = -32768  # 8: ten missing samples: accepted and counted
    partial.tofile(rec(8).with_suffix(".dat"))
    rec(9).with_suffix(".hea").unlink()  # 9: header missing altogether
    table = pd.read_csv(root / "ptbxl_database.csv", dtype=str, keep_default_na=False)
    table.loc[table["ecg_id"] == "10", "scp_codes"] = "{'NORM': 100.0"  # 10: broken metadata
    duplicate = table[table["ecg_id"] == "11"].assign(filename_lr="records100/00000/00008_lr")
    table = pd.concat([table, duplicate])  # 11 twice: the second is a duplicate id
    table.to_csv(root / "ptbxl_database.csv", index=False)

    result, records, rejected = run(f"ptbxl:{root}", tmp_path / "out")
    reasons = dict(zip(rejected["path"], rejected["reason"], strict=True))
    key = lambda i: f"records100/00000/{i:05d}_lr.hea"  # noqa: E731
    assert result.seen == 12 == result.accepted + len(rejected)
    assert sorted(records["record_id"]) == ["11", "8"]
    assert "truncated" in reasons[key(1)]
    assert "00002_lr.hea" in reasons[key(2)]
    assert "00003_lr.dat" in reasons[key(3)] and "missing" in reasons[key(3)]
    assert any(w in reasons[key(4)] for w in ("zero-length", "empty", "truncated"))
    assert "sampling frequency" in reasons[key(5)] or "fs" in reasons[key(5)]
    assert "sampling frequency" in reasons[key(6)] or "fs" in reasons[key(6)]
    assert "missing" in reasons[key(7)] or "NaN" in reasons[key(7)]
    assert "header not found" in reasons[key(9)]
    broken = [r for p, r in reasons.items() if "line" in r and "unreadable metadata" in r]
    assert len(broken) == 1
    assert "duplicate record_id '11'" in " ".join(reasons.values())
    assert records.set_index("record_id").loc["8", "n_nonfinite"] == 10
    # rejected records leave nothing behind in raw/
    assert not (tmp_path / "out" / "raw" / "records100" / "00000" / "00001_lr.dat").exists()


def test_strict_fails_after_writing_outputs(shared_data: Path, tmp_path: Path) -> None:
    root = ptbxl_copy(shared_data, tmp_path / "ptbxl", [1, 2, 3])
    (root / "records100" / "00000" / "00002_lr.dat").unlink()
    with pytest.raises(EcgflowError, match=r"--strict: 1 input\(s\) rejected:\n.*00002_lr"):
        ingest(IngestParams(source=f"ptbxl:{root}", strict=True), tmp_path / "out")
    assert len(pd.read_parquet(tmp_path / "out" / "records.parquet")) == 2


def test_bad_sources_raise_user_errors(tmp_path: Path) -> None:
    with pytest.raises(EcgflowError):
        ingest(IngestParams(source=str(tmp_path / "does-not-exist")), tmp_path / "o1")
    (tmp_path / "src").mkdir()
    with pytest.raises(EcgflowError, match="rate"):
        ingest(IngestParams(source=f"ptbxl:{tmp_path / 'src'}?rate=250"), tmp_path / "o2")
    with pytest.raises(EcgflowError, match="n"):
        ingest(IngestParams(source="synthetic://?n=-3"), tmp_path / "o3")


# --- CinC, CODE-15%, folders -------------------------------------------------------------------


def test_cinc2021_records_with_snomed_codes(shared_data: Path, tmp_path: Path) -> None:
    result, records, rejected = run(str(shared_data / "cinc2021"), tmp_path / "o")
    assert result.dataset == "cinc" and (result.accepted, len(rejected)) == (50, 0)
    e07500 = records.set_index("record_id").loc["E07500"]
    assert list(e07500["labels"]) == ["67741000119109", "426177001"]
    assert (e07500["age"], e07500["sex"], e07500["fs"]) == (78.0, "male", 500.0)
    assert set(records["units"].explode()) == {"mV"}  # HR06000's "mv" normalised
    assert (tmp_path / "o" / "raw" / "weights.csv").is_file()


def test_code15_patient_age_sex_chagas(shared_data: Path, tmp_path: Path) -> None:
    result, records, _ = run(str(shared_data / "code15"), tmp_path / "o")
    assert result.dataset == "code15" and result.accepted == 3
    exam = records.set_index("record_id").loc["1111"]
    assert (exam["patient_id"], exam["age"], exam["sex"], exam["fs"]) == (
        "48705",
        43.0,
        "male",
        400.0,
    )
    assert json.loads(exam["meta"])["chagas"] is False


def test_wfdb_edge_case_folder_accounts_for_every_input(shared_data: Path, tmp_path) -> None:
    source = shared_data / "wfdb-formats"
    result, records, rejected = run(f"folder:{source}", tmp_path / "o")
    headers = {p.relative_to(source).as_posix() for p in source.rglob("*.hea")}
    seen = set(records["path"]) | set(rejected["path"])
    segment_headers = {h for h in headers if h.startswith("041s/041s0")}
    assert headers - segment_headers <= seen
    assert result.seen == len(seen)
    assert result.accepted >= 10
    lower = records.set_index("record_id")
    assert list(lower.loc["s0010_re", "leads"])[:3] == ["I", "II", "III"]


def test_folder_with_csv_npy_and_labels(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    rng = np.random.default_rng(0)
    signal = rng.normal(size=(12, 2500)).astype("float32")
    np.save(folder / "a.npy", signal)
    header = ",".join(["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"])
    np.savetxt(folder / "b.csv", signal.T, delimiter=",", header=header, comments="")
    labels = [
        {"file": "a.npy", "label": "AF", "patient_id": "p1"},
        {"file": "b.csv", "label": "NORM", "patient_id": 7},
        {"file": "gone.npy", "label": "NORM"},
    ]
    (folder / "labels.json").write_text(json.dumps(labels))
    result, records, rejected = run(f"folder:{folder}?fs=250", tmp_path / "o")
    assert result.accepted == 2 and rejected["path"].tolist() == ["gone.npy"]
    assert "listed but not found" in rejected["reason"][0]
    by_id = records.set_index("record_id")
    assert list(by_id.loc["a", "labels"]) == ["AF"] and by_id.loc["b", "patient_id"] == "7"
    assert by_id.loc["a", "fs"] == 250.0 and by_id.loc["a", "n_samples"] == 2500
    assert (tmp_path / "o" / "raw" / "labels.json").is_file()


def test_folder_csv_without_fs_is_rejected_naming_fs(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    np.save(folder / "a.npy", np.zeros((12, 100), dtype="float32") + 0.1)
    _, _, rejected = run(f"folder:{folder}", tmp_path / "o")
    assert "fs" in rejected["reason"][0]


def test_orphan_signal_file_is_listed(shared_data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    for name in ("JS20000.hea", "JS20000.mat", "JS20001.mat"):
        shutil.copy(shared_data / "cinc2021" / name, folder)
    result, records, rejected = run(f"cinc:{folder}", tmp_path / "o")
    assert result.accepted == 1 and rejected["path"].tolist() == ["JS20001.mat"]
    assert "no header" in rejected["reason"][0]


# --- synthetic ---------------------------------------------------------------------------------


def test_synthetic_source_is_deterministic(tmp_path: Path) -> None:
    source = "synthetic://?n=24&seed=3&fs=250&seconds=5"
    result, records, rejected = run(source, tmp_path / "a")
    run(source, tmp_path / "b")
    assert result.accepted == 24 and rejected.empty
    assert set(records["n_samples"]) == {1250} and set(records["fs"]) == {250.0}
    assert records["labels"].map(len).eq(1).all() and records["report"].str.len().gt(10).all()
    assert records["patient_id"].notna().all()
    assert (tmp_path / "a" / "records.parquet").read_bytes() == (
        tmp_path / "b" / "records.parquet"
    ).read_bytes()
