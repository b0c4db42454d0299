"""Record readers: every real WFDB/EDF record against wfdb, corrupted copies, CSV/NPY/serial."""

from __future__ import annotations

import json
import math
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import wfdb
from conftest import SHARED_DATA

from ecgflow.errors import EcgflowError, RecordError
from ecgflow.io.readers import RECORD_SUFFIXES, read_record
from ecgflow.io.record import STANDARD_LEADS, millivolt_factor, normalise_lead_name
from ecgflow.io.tabular import sniff_csv
from ecgflow.io.wfdb_reader import referenced_files, wfdb_record_files

PTBXL_LR = "ptbxl/records100/00000/00001_lr"
ALL_HEADERS = (
    sorted(str(p.relative_to(SHARED_DATA)) for p in SHARED_DATA.rglob("*.hea"))
    if SHARED_DATA.is_dir()
    else []
)


def _wfdb_reference(header: Path) -> tuple[np.ndarray, float, list[str]]:
    """What the reader must return, computed from wfdb's own decoding of the record.

    Single-rate records: ``rdrecord(...).p_signal``. Multi-frequency records: wfdb's expanded
    samples brought to the highest common rate (mean of the finite samples per frame).
    """
    base = str(header.with_suffix(""))
    smooth = wfdb.rdrecord(base, m2s=True, smooth_frames=True)
    keep = [i for i, name in enumerate(smooth.sig_name) if name != "EDF Annotations"]
    spf = [smooth.samps_per_frame[i] or 1 for i in keep]
    factors = [millivolt_factor(smooth.units[i]) or 1.0 for i in keep]
    if set(spf) == {1}:
        signal = smooth.p_signal[:, keep].T * np.array(factors)[:, None]
        return signal, float(smooth.fs), [smooth.sig_name[i] for i in keep]
    expanded = wfdb.rdrecord(base, m2s=True, smooth_frames=False)
    per_frame = math.gcd(*spf)
    rows = []
    for i, n, factor in zip(keep, spf, factors, strict=True):
        frames = expanded.e_p_signal[i].reshape(-1, n // per_frame) * factor
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            rows.append(np.nanmean(frames, axis=1))
    return np.array(rows), float(expanded.fs) * per_frame, [smooth.sig_name[i] for i in keep]


@pytest.mark.parametrize("relative", ALL_HEADERS)
def test_every_wfdb_record_matches_wfdb(shared_data: Path, relative: str) -> None:
    header = shared_data / relative
    record = read_record(header)
    expected, fs, names = _wfdb_reference(header)
    assert record.signal.dtype == np.float32
    assert record.signal.shape == expected.shape
    assert record.fs == pytest.approx(fs)
    assert record.leads == [normalise_lead_name(n) for n in names]
    assert record.record_id == header.stem
    assert np.array_equal(np.isnan(record.signal), np.isnan(expected))
    np.testing.assert_allclose(record.signal, expected, rtol=1e-6, atol=1e-6, equal_nan=True)
    json.dumps(record.metadata)  # JSON-serialisable


def test_shared_data_has_wfdb_records() -> None:
    if not SHARED_DATA.is_dir():
        pytest.skip("real ECG data absent")
    assert len(ALL_HEADERS) > 600


# --- explicit expectations on real records -------------------------------------------------


def test_ptbxl_low_and_high_rate(shared_data: Path) -> None:
    low = read_record(shared_data / PTBXL_LR)
    assert low.signal.shape == (12, 1000)
    assert low.fs == 100
    assert low.leads == list(STANDARD_LEADS)
    assert low.units == ["mV"] * 12
    assert low.record_id == "00001_lr"
    assert low.metadata["sig_name"][3] == "AVR"
    assert low.metadata["fmt"] == ["16"] * 12
    high = read_record(shared_data / "ptbxl/records500/00000/00007_hr.hea")
    assert high.signal.shape == (12, 5000)
    assert high.fs == 500


def test_cinc2021_mat_records(shared_data: Path) -> None:
    record = read_record(shared_data / "cinc2021/E07500.hea")
    assert record.signal.shape == (12, 5000)
    assert record.fs == 500
    assert record.leads == list(STANDARD_LEADS)
    assert "Dx: 67741000119109,426177001" in record.metadata["comments"]
    via_mat = read_record(shared_data / "cinc2021/E07500.mat")
    np.testing.assert_array_equal(via_mat.signal, record.signal)
    lower = read_record(shared_data / "cinc2021/HR06000.hea")
    assert lower.units == ["mV"] * 12
    assert lower.metadata["units_in_file"] == ["mv"] * 12


def test_code15_ludb_and_ptb_diagnostic(shared_data: Path) -> None:
    code15 = read_record(shared_data / "code15/1111.hea")
    assert code15.signal.shape == (12, 2934)
    assert code15.fs == 400
    assert code15.leads == list(STANDARD_LEADS)
    ludb = read_record(shared_data / "ludb/1")
    assert ludb.leads == list(STANDARD_LEADS)
    assert ludb.metadata["sig_name"][:4] == ["i", "ii", "iii", "avr"]
    ptb = read_record(shared_data / "wfdb-formats/s0010_re.hea")
    assert ptb.signal.shape == (15, 38400)
    assert ptb.fs == 1000
    assert ptb.leads == [*STANDARD_LEADS, "vx", "vy", "vz"]


def test_non_voltage_units_are_kept(shared_data: Path) -> None:
    record = read_record(shared_data / "wfdb-formats/a103l.hea")
    assert record.leads == ["II", "V", "PLETH"]
    assert record.units == ["mV", "mV", "NU"]


def test_microvolts_are_converted_and_annotation_signal_dropped(shared_data: Path) -> None:
    header = shared_data / "wfdb-formats/test_generator_2.hea"
    record = read_record(header)
    raw = wfdb.rdrecord(str(header.with_suffix("")), smooth_frames=False)
    assert raw.units[0] == "uV"
    assert record.units[0] == "mV"
    assert "EDF Annotations" not in record.leads
    assert record.fs == 200  # 200 samples per 1-s frame: read at full rate, not averaged
    assert record.signal.shape == (11, 120000)
    np.testing.assert_allclose(record.signal[0], raw.e_p_signal[0] / 1000, rtol=1e-6)
    assert record.units[8] == "°"  # Latin-1 degree sign, not a voltage: kept as is


def test_edf_equals_its_wfdb_twin(shared_data: Path) -> None:
    edf = read_record(shared_data / "wfdb-formats/test_generator_2.edf")
    twin = read_record(shared_data / "wfdb-formats/test_generator_2.hea")
    assert edf.leads == twin.leads
    assert edf.units == twin.units
    assert edf.fs == twin.fs
    assert edf.signal.shape == twin.signal.shape
    # EDF maps digital→physical linearly with a half-step offset the WFDB twin rounds away.
    half_step = np.array([0.6 / 32.7675 * (millivolt_factor(u) or 1) for u in twin.units])
    assert (np.abs(edf.signal - twin.signal).max(axis=1) <= half_step).all()
    assert edf.metadata["base_date"] == twin.metadata["base_date"] == "2009-12-10"
    assert edf.metadata["base_time"] == twin.metadata["base_time"] == "12:44:02"


def test_multi_frequency_and_multi_segment(shared_data: Path) -> None:
    mixed = read_record(shared_data / "wfdb-formats/mixedsignals.hea")
    assert mixed.fs == pytest.approx(62.4725)  # frame rate: 4/2/1 samples per frame
    assert mixed.n_nonfinite == 864
    joined = read_record(shared_data / "wfdb-formats/041s/041s.hea")
    first = read_record(shared_data / "wfdb-formats/041s/041s01.hea")
    second = read_record(shared_data / "wfdb-formats/041s/041s02.hea")
    assert joined.signal.shape == (7, 2000)
    np.testing.assert_array_equal(joined.signal, np.hstack([first.signal, second.signal]))
    assert joined.record_id == "041s"
    assert joined.metadata["n_segments"] == 2


def _write_fmt16(folder: Path, name: str, fs: int, columns: dict[str, np.ndarray], unit: str):
    data = np.stack(list(columns.values()), axis=1).astype("<i2")
    data.tofile(folder / f"{name}.dat")
    lines = [f"{name} {len(columns)} {fs} {len(data)}"]
    lines += [f"{name}.dat 16 100/{unit} 16 0 0 0 0 {sig}" for sig in columns]
    (folder / f"{name}.hea").write_text("\n".join(lines) + "\n")


def test_variable_layout_multi_segment(tmp_path: Path) -> None:
    (tmp_path / "var.hea").write_text("var/4 2 100 30\nvar_layout 0\nvar_1 10\n~ 5\nvar_2 15\n")
    (tmp_path / "var_layout.hea").write_text(
        "var_layout 2 100 0\n~ 0 100/mV 16 0 0 0 0 II\n~ 0 100/mV 16 0 0 0 0 V\n"
    )
    ramp = np.arange(10)
    _write_fmt16(tmp_path, "var_1", 100, {"II": ramp, "V": ramp + 100}, "mV")
    _write_fmt16(tmp_path, "var_2", 100, {"V": np.full(15, 500)}, "uV")  # V only, in µV
    record = read_record(tmp_path / "var")
    assert record.leads == ["II", "V"]
    assert record.signal.shape == (2, 30)
    np.testing.assert_allclose(record.signal[0, :10], ramp / 100)
    assert np.isnan(record.signal[0, 10:]).all()  # null segment, then absent from var_2
    np.testing.assert_allclose(record.signal[1, :10], (ramp + 100) / 100)
    assert np.isnan(record.signal[1, 10:15]).all()
    np.testing.assert_allclose(record.signal[1, 15:], 0.005)  # 500/100 µV in mV
    assert referenced_files((tmp_path / "var.hea").read_text(), "var") == [
        "var_layout.hea",
        "var_1.hea",
        "var_2.hea",
    ]
    assert [p.name for p in wfdb_record_files(tmp_path / "var.hea")] == [
        "var.hea",
        "var_layout.hea",
        "var_1.hea",
        "var_1.dat",
        "var_2.hea",
        "var_2.dat",
    ]


# --- referenced files ---------------------------------------------------------------------


def test_referenced_files(shared_data: Path) -> None:
    formats = shared_data / "wfdb-formats"
    assert referenced_files((formats / "s0010_re.hea").read_text(), "s0010_re") == [
        "s0010_re.dat",
        "s0010_re.xyz",
    ]
    assert referenced_files((formats / "binformats.hea").read_text(), "binformats") == [
        f"binformats.d{i}" for i in range(10)
    ]
    assert referenced_files((formats / "041s/041s.hea").read_text(), "041s") == [
        "041s01.hea",
        "041s02.hea",
    ]
    assert referenced_files("m/3 1 250 20\nm_1 10\n~ 5\nm_2 5\n", "m") == ["m_1.hea", "m_2.hea"]
    with pytest.raises(RecordError, match=r"^bad: malformed"):
        referenced_files("not a header\n", "bad")


def test_wfdb_record_files(shared_data: Path, tmp_path: Path) -> None:
    folder = shared_data / "wfdb-formats/041s"
    assert wfdb_record_files(folder / "041s.hea") == [
        folder / name
        for name in ("041s.hea", "041s01.hea", "041s01.dat", "041s02.hea", "041s02.dat")
    ]
    shutil.copyfile(shared_data / f"{PTBXL_LR}.hea", tmp_path / "00001_lr.hea")
    assert wfdb_record_files(tmp_path / "00001_lr.hea") == [
        tmp_path / "00001_lr.hea",
        tmp_path / "00001_lr.dat",  # missing, still listed
    ]


# --- corrupted copies ---------------------------------------------------------------------


@pytest.fixture
def ptbxl_copy(shared_data: Path, tmp_path: Path) -> Path:
    """A writable copy of PTB-XL 00001_lr; returns the header path."""
    for suffix in (".hea", ".dat"):
        shutil.copyfile(shared_data / f"{PTBXL_LR}{suffix}", tmp_path / f"00001_lr{suffix}")
    return tmp_path / "00001_lr.hea"


def _edit_record_line(header: Path, new_line: str) -> None:
    lines = header.read_text().splitlines()
    header.write_text("\n".join([new_line, *lines[1:]]) + "\n")


def _fails(path: Path, *words: str) -> str:
    with pytest.raises(RecordError) as info:
        read_record(path)
    message = str(info.value)
    assert "00001_lr" in message or path.name in message
    for word in words:
        assert word in message, message
    return message


def test_copy_reads_like_original(ptbxl_copy: Path, shared_data: Path) -> None:
    original = read_record(shared_data / f"{PTBXL_LR}.hea")
    np.testing.assert_array_equal(read_record(ptbxl_copy).signal, original.signal)


def test_truncated_signal_file(ptbxl_copy: Path) -> None:
    dat = ptbxl_copy.with_suffix(".dat")
    dat.write_bytes(dat.read_bytes()[:5000])
    message = _fails(ptbxl_copy, "truncated", "5000 bytes", "24000")
    assert message.startswith(str(dat))


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (os.urandom(400) + b"\0", ["malformed", "binary"]),
        (b"\x89PNG garbage that is not a header\n", ["malformed", "record line"]),
        (b"", ["malformed", "no record line"]),
        (
            b"00001_lr 12 100 1000\n00001_lr.dat 16 1000.0(0)/mV 16 0 -119 1508 0 I\n",
            ["12 signals"],
        ),
        (b"00001_lr 12 abc 1000\n", ["non-numeric sampling frequency"]),
        (b"00001_lr 12 100 1000 extra fields 1 2\n", ["malformed", "record line"]),
    ],
)
def test_garbage_header(ptbxl_copy: Path, content: bytes, words: list[str]) -> None:
    ptbxl_copy.write_bytes(content)
    message = _fails(ptbxl_copy, *words)
    assert message.startswith(str(ptbxl_copy))


def test_malformed_signal_line(ptbxl_copy: Path) -> None:
    text = ptbxl_copy.read_text().replace("1000.0(0)/mV 16 0 -119", "abc 16 0 -119", 1)
    ptbxl_copy.write_text(text)
    _fails(ptbxl_copy, "malformed", "signal line 1")


def test_unsupported_format(ptbxl_copy: Path) -> None:
    ptbxl_copy.write_text(ptbxl_copy.read_text().replace(".dat 16 ", ".dat 999 "))
    _fails(ptbxl_copy, "unsupported WFDB format 999")


def test_signal_file_outside_the_record_folder(ptbxl_copy: Path) -> None:
    ptbxl_copy.write_text(ptbxl_copy.read_text().replace("00001_lr.dat", "../00001_lr.dat"))
    _fails(ptbxl_copy, "not a plain file name")


def test_zero_samples_per_frame(ptbxl_copy: Path) -> None:
    ptbxl_copy.write_text(ptbxl_copy.read_text().replace(".dat 16 ", ".dat 16x0 "))
    _fails(ptbxl_copy, "samples per frame")


def test_segment_length_mismatch(shared_data: Path, tmp_path: Path) -> None:
    for name in ("041s.hea", "041s01.hea", "041s01.dat", "041s02.hea", "041s02.dat"):
        shutil.copyfile(shared_data / "wfdb-formats/041s" / name, tmp_path / name)
    master = tmp_path / "041s.hea"
    master.write_text(master.read_text().replace("041s02 1000", "041s02 999"))
    message = _fails(master, "in segment 041s02", "with 999 samples", "segment: 1000 samples")
    assert message.startswith(f"{master}: in segment 041s02: {tmp_path / '041s02.hea'}: ")
    master.write_text(master.read_text().replace("041s02 999", "041s02 1000"))
    (tmp_path / "041s01.dat").unlink()
    _fails(master, "in segment 041s01", "041s01.dat", "missing")


@pytest.mark.parametrize("fs", ["0", "-500", "0.0"])
def test_non_positive_fs(ptbxl_copy: Path, fs: str) -> None:
    _edit_record_line(ptbxl_copy, f"00001_lr 12 {fs} 1000")
    _fails(ptbxl_copy, "sampling frequency must be > 0")


def test_missing_signal_file(ptbxl_copy: Path) -> None:
    ptbxl_copy.with_suffix(".dat").unlink()
    _fails(ptbxl_copy, "00001_lr.dat", "missing")


def test_missing_header(tmp_path: Path) -> None:
    _fails(tmp_path / "nothing.hea", "not found")
    _fails(tmp_path / "nothing", "no such file")


def test_empty_signal_file(ptbxl_copy: Path) -> None:
    ptbxl_copy.with_suffix(".dat").write_bytes(b"")
    _fails(ptbxl_copy, "empty")


def test_zero_length_signal(ptbxl_copy: Path) -> None:
    _edit_record_line(ptbxl_copy, "00001_lr 12 100 0")
    _fails(ptbxl_copy, "zero-length")


def test_length_inferred_when_header_omits_it(ptbxl_copy: Path) -> None:
    _edit_record_line(ptbxl_copy, "00001_lr 12 100")
    assert read_record(ptbxl_copy).signal.shape == (12, 1000)
    ptbxl_copy.with_suffix(".dat").write_bytes(b"")
    _fails(ptbxl_copy, "zero-length")


def test_all_samples_invalid(ptbxl_copy: Path) -> None:
    np.full(12 * 1000, -32768, dtype="<i2").tofile(ptbxl_copy.with_suffix(".dat"))
    _fails(ptbxl_copy, "missing", "12000 samples")


def test_some_samples_invalid(ptbxl_copy: Path) -> None:
    dat = ptbxl_copy.with_suffix(".dat")
    data = np.fromfile(dat, dtype="<i2").reshape(1000, 12)
    data[:10] = -32768
    data[500, 3] = -32768
    data.tofile(dat)
    record = read_record(ptbxl_copy)
    assert record.n_nonfinite == 121
    assert np.isnan(record.signal[:, :10]).all()
    assert np.isnan(record.signal[3, 500])


# --- EDF corruption ------------------------------------------------------------------------


def test_corrupted_edf(shared_data: Path, tmp_path: Path) -> None:
    source = (shared_data / "wfdb-formats/test_generator_2.edf").read_bytes()
    truncated = tmp_path / "short.edf"
    truncated.write_bytes(source[: len(source) // 2])
    _fails(truncated, "truncated EDF file")
    garbage = tmp_path / "garbage.edf"
    garbage.write_bytes(b"hello" * 100)
    _fails(garbage, "not an EDF file")
    bad_count = tmp_path / "badcount.edf"
    bad_count.write_bytes(source[:252] + b"ab  " + source[256:])
    _fails(bad_count, "number of signals")


# --- CSV, NPY, serial logs -----------------------------------------------------------------


def _signal(leads: int, samples: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.round(rng.normal(size=(leads, samples)), 3).astype(np.float32)


def test_csv_round_trip_with_time_column(tmp_path: Path) -> None:
    signal = _signal(12, 300)
    path = tmp_path / "rec.csv"
    header = "time," + ",".join(n.lower() for n in STANDARD_LEADS)
    rows = [f"{t / 500:.4f}," + ",".join(f"{v:.3f}" for v in col) for t, col in enumerate(signal.T)]
    path.write_text("\n".join([header, *rows]) + "\n")
    assert sniff_csv(path) == "leads"
    record = read_record(path, fs=500)
    assert record.leads == list(STANDARD_LEADS)
    assert record.fs == 500
    assert record.record_id == "rec"
    np.testing.assert_array_equal(record.signal, signal)
    assert record.metadata["time_column_dropped"] is True


def test_csv_units_and_headerless(tmp_path: Path) -> None:
    signal = _signal(3, 50)
    path = tmp_path / "uv.csv"
    path.write_text("II,V1,PLETH\n" + "\n".join(",".join(map(str, c)) for c in signal.T))
    record = read_record(path, fs=250, units=["uV", "uV", "NU"])
    np.testing.assert_allclose(record.signal[:2], signal[:2] / 1000, rtol=1e-6)
    assert record.units == ["mV", "mV", "NU"]
    bare = tmp_path / "bare.csv"
    bare.write_text("\n".join(",".join(map(str, c)) for c in signal.T))
    assert sniff_csv(bare) == "leads"
    record = read_record(bare, fs=250)
    assert record.leads == ["ch1", "ch2", "ch3"]
    np.testing.assert_array_equal(record.signal, signal)


def test_csv_errors(tmp_path: Path) -> None:
    path = tmp_path / "empty_rows.csv"
    path.write_text("I,II,III\n")
    _fails(path, "no numeric rows")
    path.write_text("I,II,III\nx,y,z\n")
    _fails(path, "no numeric rows")
    path.write_text("I,II,III\n1,2,3\n4,5,6\n")
    with pytest.raises(RecordError, match="`fs`"):
        read_record(path)
    with pytest.raises(RecordError, match="sampling frequency must be > 0"):
        read_record(path, fs=0)


def test_npy_round_trip_and_transpose(tmp_path: Path) -> None:
    signal = _signal(12, 1000)
    path = tmp_path / "rec.npy"
    np.save(path, signal)
    record = read_record(path, fs=500)
    assert record.leads == list(STANDARD_LEADS)
    np.testing.assert_array_equal(record.signal, signal)
    np.save(path, signal[:3].T.astype(np.float64))
    record = read_record(path, fs=500, leads=["I", "II", "V1"])
    assert record.signal.shape == (3, 1000)
    assert record.metadata["transposed"] is True
    np.testing.assert_array_equal(record.signal, signal[:3])
    np.save(path, np.rint(signal[:2] * 1000).astype(np.int16))
    record = read_record(path, fs=500, units="uV")
    assert record.leads == ["ch1", "ch2"]
    np.testing.assert_allclose(record.signal, signal[:2], atol=1e-6)


def test_npy_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.npy"
    np.save(path, np.zeros((2, 3, 4)))
    _fails(path, "2-D", "(2, 3, 4)")
    np.save(path, np.zeros(10))
    _fails(path, "2-D")
    np.save(path, np.zeros((2, 10)))
    with pytest.raises(RecordError, match="`fs`"):
        read_record(path)
    with pytest.raises(RecordError, match="1 lead names given for 2 signals"):
        read_record(path, fs=100, leads=["I"])
    np.save(path, np.array([["a", "b"], ["c", "d"]]))
    _fails(path, "numeric")
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    _fails(tmp_path / "junk.npy", "cannot load")


def test_serial_value_only(tmp_path: Path) -> None:
    values = np.round(np.sin(np.arange(500) / 10), 3)
    path = tmp_path / "serial.csv"
    path.write_text("\n".join(f"{v}" for v in values) + "\n")
    assert sniff_csv(path) == "serial"
    record = read_record(path, fs=250)
    assert record.leads == ["I"]
    assert record.fs == 250
    np.testing.assert_array_equal(record.signal[0], values.astype(np.float32))
    with pytest.raises(RecordError, match="`fs`"):
        read_record(path)


@pytest.mark.parametrize(("scale", "unit"), [(1, "ms"), (1e-3, "s"), (1e3, "us")])
def test_serial_time_value_infers_fs(tmp_path: Path, scale: float, unit: str) -> None:
    counts = np.arange(400) % 1024
    path = tmp_path / "log.csv"
    lines = [f"{(1000 + 4 * i) * scale:g},{c}" for i, c in enumerate(counts)]
    path.write_text("\n".join(lines) + "\n")
    assert sniff_csv(path) == "serial"
    record = read_record(path, adc_gain=200.0, adc_zero=512, leads=["II"])
    assert record.fs == pytest.approx(250)
    assert record.metadata["time_unit"] == unit
    assert record.leads == ["II"]
    np.testing.assert_allclose(record.signal[0], (counts - 512) / 200.0, rtol=1e-6)
    assert read_record(path, fs=500).fs == 500  # explicit fs wins


def test_serial_garbled_lines(tmp_path: Path) -> None:
    lines = [f"{4 * i},{i % 7}" for i in range(200)]
    lines[10] = "12,3,4,5"
    lines[50] = "\x00\xffgarb"
    lines[51] = ""
    lines[120] = "ERR"
    lines[150] = "nan,3"
    path = tmp_path / "noisy.csv"
    path.write_text("\n".join(lines) + "\n")
    record = read_record(path)
    assert record.n_samples == 195
    assert record.metadata["garbled_lines"] == 4
    assert record.metadata["skipped_lines"] == 5
    lines = [f"{4 * i},{i % 7}" for i in range(100)] + ["garbage"] * 15
    path.write_text("\n".join(lines) + "\n")
    _fails(path, "garbled", "15 of 115")
    path.write_text("1,2\n")
    _fails(path, "1 numeric rows")


def test_sniff_csv(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    for content, kind in [
        ("I,II,V1\n1,2,3\n", "leads"),
        ("time,value\n0,1\n", "leads"),
        ("\n\n512\n513\n", "serial"),
        ("0;512\n4;513\n", "serial"),
        ("1,2,3\n4,5,6\n", "leads"),
    ]:
        path.write_text(content)
        assert sniff_csv(path) == kind, content
    path.write_text("0,1\n4,2\n")
    assert read_record(path, csv_kind="leads", fs=10).leads == ["ch1", "ch2"]


# --- dispatcher ----------------------------------------------------------------------------


def test_dispatcher(shared_data: Path, tmp_path: Path) -> None:
    assert RECORD_SUFFIXES == (".hea", ".edf", ".csv", ".npy")
    base = read_record(shared_data / PTBXL_LR, record_id="ecg-1")
    assert base.record_id == "ecg-1"
    assert read_record(str(shared_data / f"{PTBXL_LR}.dat")).n_samples == 1000
    (tmp_path / "lonely.mat").write_bytes(b"MATLAB 5.0")
    _fails(tmp_path / "lonely.mat", "no WFDB header lonely.hea")
    (tmp_path / "notes.txt").write_text("hello")
    _fails(tmp_path / "notes.txt", "unsupported record type '.txt'")
    _fails(tmp_path / "absent.csv", "file not found")
    with pytest.raises(EcgflowError, match="unknown reader option") as info:
        read_record(shared_data / PTBXL_LR, adc_gian=3)
    assert not isinstance(info.value, RecordError)
