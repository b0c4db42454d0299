"""ecgflow's own WFDB decoding against wfdb.rdrecord: every shared record, synthetic records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wfdb
from conftest import SHARED_DATA

from ecgflow.errors import RecordError
from ecgflow.io import wfdb_decode
from ecgflow.io.wfdb_decode import FORMATS, decode_file, invalid_value
from ecgflow.io.wfdb_reader import read_header, read_wfdb, read_wfdb_digital

ALL_HEADERS = (
    sorted(str(p.relative_to(SHARED_DATA)) for p in SHARED_DATA.rglob("*.hea"))
    if SHARED_DATA.is_dir()
    else []
)
#: Bits of each format's samples (format 8 stores 8-bit differences of wider samples).
BITS = {"8": 16, "16": 16, "24": 24, "32": 32, "61": 16, "80": 8, "160": 16, "212": 12}
BITS |= {"310": 10, "311": 10}


def _wfdb_digital(header: Path) -> list[np.ndarray]:
    """wfdb's digital samples, per signal (expanded frames when a signal has several)."""
    base = str(header.with_suffix(""))
    if all(s.samps_per_frame == 1 for s in read_header(header).signals):
        # smooth_frames=False fails on format 61 in wfdb 4.3 (it parses the dtype '>i2')
        return list(wfdb.rdrecord(base, physical=False).d_signal.T)
    return list(wfdb.rdrecord(base, physical=False, smooth_frames=False).e_d_signal)


def _assert_same(mine: list[np.ndarray], reference: list[np.ndarray]) -> None:
    assert len(mine) == len(reference)
    for i, (a, b) in enumerate(zip(mine, reference, strict=True)):
        assert a.shape == b.shape, i
        assert np.array_equal(a, b), f"signal {i} differs"


@pytest.mark.parametrize("relative", ALL_HEADERS)
def test_every_shared_record_decodes_like_wfdb(shared_data: Path, relative: str) -> None:
    header = shared_data / relative
    if read_header(header).segments is not None:
        pytest.skip("multi-segment: its segments are compared one by one")
    try:
        mine = read_wfdb_digital(header)
    except RecordError:
        with pytest.raises(Exception):  # noqa: B017 - wfdb raises many types
            _wfdb_digital(header)
        return
    _assert_same(mine, _wfdb_digital(header))


def test_shared_data_covers_the_formats() -> None:
    if not SHARED_DATA.is_dir():
        pytest.skip("real ECG data absent")
    formats = {s.fmt for h in ALL_HEADERS for s in read_header(SHARED_DATA / h).signals}
    assert set(FORMATS) <= formats
    assert {"508", "516", "524"} <= formats  # FLAC: decoded by wfdb.rdrecord


# --- synthetic records: an independent encoder of the WFDB formats -----------------------------


def _encode(fmt: str, samples: np.ndarray) -> bytes:
    """The bytes of flat (frame-interleaved) digital samples in ``fmt``, per the WFDB spec."""
    s = samples.astype(np.int64)
    if fmt in ("16", "24", "32"):
        width = int(fmt) // 8
        return b"".join(int(v).to_bytes(width, "little", signed=True) for v in s)
    if fmt == "8":
        return s.astype(np.int8).tobytes()
    if fmt == "61":
        return s.astype(">i2").tobytes()
    if fmt == "80":
        return (s + 128).astype(np.uint8).tobytes()
    if fmt == "160":
        return (s + 32768).astype("<u2").tobytes()
    u = [int(v) & ((1 << BITS[fmt]) - 1) for v in s]  # two's complement in the format's width
    out = bytearray()
    if fmt == "212":
        for a, b in zip(u[0::2], [*u[1::2], 0], strict=False):
            out += bytes([a & 0xFF, (a >> 8) | ((b >> 8) << 4), b & 0xFF])
        return bytes(out[: -(-3 * len(u) // 2)])  # a partial last pair: 2 bytes
    padded = [*u, 0, 0][: -(-len(u) // 3) * 3]
    for a, b, c in zip(padded[0::3], padded[1::3], padded[2::3], strict=True):
        if fmt == "310":  # 10-bit samples in bits 1-10 and 17-26 of two 16-bit words
            out += bytes(
                [
                    (a << 1) & 0xFE,
                    (a >> 7) | ((c & 0x1F) << 3),
                    (b << 1) & 0xFE,
                    (b >> 7) | ((c >> 5) << 3),
                ]
            )
        else:  # 311: a 32-bit little-endian word a | b << 10 | c << 20
            out += (a | b << 10 | c << 20).to_bytes(4, "little")
    extra = len(u) % 3  # WFDB writers end a partial block where its samples end
    if fmt == "311" and extra:
        return bytes(out[: len(out) - 4 + extra + 1])
    return bytes(out)


def _samples(fmt: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random valid samples of ``fmt``, including its extremes and invalid value."""
    if fmt == "8":
        return np.cumsum(rng.integers(-128, 128, n))
    low, high = -(2 ** (BITS[fmt] - 1)), 2 ** (BITS[fmt] - 1) - 1
    values = rng.integers(low + 1, high + 1, n)
    values[: min(n, 3)] = [high, low + 1, low][: min(n, 3)]  # low: the invalid value
    return values


def _write(
    folder: Path,
    fmt: str,
    signals: list[np.ndarray],
    *,
    spf: list[int] | None = None,
    skew: list[int] | None = None,
    offset: int = 0,
    name: str = "rec",
) -> Path:
    """A one-file record of ``signals`` (``spf`` samples per frame each) written by hand."""
    spf = spf or [1] * len(signals)
    skew = skew or [0] * len(signals)
    n_frames = len(signals[0]) // spf[0]
    columns = [sig.reshape(n_frames, k) for sig, k in zip(signals, spf, strict=True)]
    flat = np.concatenate(columns, axis=1).reshape(-1)
    if fmt == "8":  # first differences from the initial value 0 (one signal, 1 per frame)
        assert len(signals) == 1 and spf == [1]
        flat = np.diff(flat, prepend=0)
    (folder / f"{name}.dat").write_bytes(b"\x7f" * offset + _encode(fmt, flat))
    lines = [f"{name} {len(signals)} 100 {n_frames}"]
    for i, (k, s) in enumerate(zip(spf, skew, strict=True)):
        layout = f"{fmt}" + (f"x{k}" if k > 1 else "") + (f":{s}" if s else "")
        layout += f"+{offset}" if offset else ""
        lines.append(f"{name}.dat {layout} 200/mV {BITS[fmt]} 0 0 0 0 s{i}")
    (folder / f"{name}.hea").write_text("\n".join(lines) + "\n")
    return folder / f"{name}.hea"


@pytest.mark.parametrize("mmap", [False, True], ids=["read", "mmap"])
@pytest.mark.parametrize(
    ("fmt", "n_sig"),  # the format 8 encoder below writes one signal
    [(fmt, n) for fmt in sorted(FORMATS, key=int) for n in (1, 2, 3) if fmt != "8" or n == 1],
)
def test_every_format_round_trips_and_matches_wfdb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str, n_sig: int, mmap: bool
) -> None:
    if mmap:
        monkeypatch.setattr(wfdb_decode, "MMAP_MIN_BYTES", 0)
    rng = np.random.default_rng(n_sig)
    signals = [_samples(fmt, 7, rng) for _ in range(n_sig)]  # 7, 14, 21 samples: partial blocks
    header = _write(tmp_path, fmt, signals, offset=5)
    mine = read_wfdb_digital(header)
    _assert_same(mine, signals)
    _assert_same(mine, _wfdb_digital(header))
    if fmt != "8":  # the invalid sample becomes NaN in the reader's output
        record = read_wfdb(header)
        assert np.isnan(record.signal[:, 2]).all() and np.isfinite(record.signal[:, :2]).all()


@pytest.mark.parametrize("fmt", ["16", "24", "32", "80", "212"])
def test_records_written_by_wfdb_wrsamp(tmp_path: Path, fmt: str) -> None:
    rng = np.random.default_rng(1)
    high = 2 ** (BITS[fmt] - 1) - 1
    d_signal = rng.integers(-high, high + 1, (9, 3))
    wfdb.wrsamp(
        "w", fs=100, units=["mV"] * 3, sig_name=["a", "b", "c"], d_signal=d_signal,
        fmt=[fmt] * 3, adc_gain=[200.0] * 3, baseline=[0] * 3, write_dir=str(tmp_path),
    )  # fmt: skip
    _assert_same(read_wfdb_digital(tmp_path / "w.hea"), list(d_signal.T))


@pytest.mark.parametrize("fmt", ["16", "212", "311"])
def test_samples_per_frame_expand_like_wfdb(tmp_path: Path, fmt: str) -> None:
    rng = np.random.default_rng(2)
    spf = [2, 1, 3]
    signals = [_samples(fmt, 5 * k, rng) for k in spf]
    header = _write(tmp_path, fmt, signals, spf=spf, offset=24)
    mine = read_wfdb_digital(header)
    _assert_same(mine, signals)
    _assert_same(mine, _wfdb_digital(header))
    skewed = _write(tmp_path, fmt, signals, spf=spf, skew=[2, 0, 2], name="skewed")
    _assert_same(read_wfdb_digital(skewed), _wfdb_digital(skewed))


@pytest.mark.parametrize("fmt", ["16", "80", "212", "310"])
def test_skew_shifts_signals_and_marks_the_end_invalid(tmp_path: Path, fmt: str) -> None:
    rng = np.random.default_rng(3)
    stored = [_samples(fmt, 10, rng) for _ in range(3)]
    header = _write(tmp_path, fmt, stored, skew=[0, 2, 2])
    mine = read_wfdb_digital(header)
    invalid = invalid_value(fmt)
    np.testing.assert_array_equal(mine[0], stored[0])
    for i in (1, 2):  # sample t of a signal skewed by 2 is stored in frame t + 2
        np.testing.assert_array_equal(mine[i], [*stored[i][2:], invalid, invalid])
    _assert_same(mine, _wfdb_digital(header))
    # different skews (wfdb 4.3's rdrecord cannot read these): each shifted by its own
    header = _write(tmp_path, fmt, stored, skew=[0, 1, 2], name="mixed")
    mixed = read_wfdb_digital(header)
    np.testing.assert_array_equal(mixed[1], [*stored[1][1:], invalid])
    np.testing.assert_array_equal(mixed[2], [*stored[2][2:], invalid, invalid])


def test_record_with_several_files_and_formats(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    parts = {
        "a": ("16", [_samples("16", 8, rng) for _ in range(2)]),
        "b": ("212", [_samples("212", 8, rng)]),
        "c": ("8", [_samples("8", 8, rng)]),
    }
    lines = []
    for name, (fmt, signals) in parts.items():
        _write(tmp_path, fmt, signals, name=name)
        lines += (tmp_path / f"{name}.hea").read_text().splitlines()[1:]
    (tmp_path / "all.hea").write_text("\n".join(["all 4 100 8", *lines]) + "\n")
    mine = read_wfdb_digital(tmp_path / "all.hea")
    _assert_same(mine, [s for _, signals in parts.values() for s in signals])
    _assert_same(mine, _wfdb_digital(tmp_path / "all.hea"))


def test_format_8_starts_from_the_initial_value(tmp_path: Path) -> None:
    header = _write(tmp_path, "8", [np.array([3, 5, 4, 10])])
    header.write_text(header.read_text().replace(" 0 0 0 0 s0", " 0 100 0 0 s0"))
    _assert_same(read_wfdb_digital(header), [np.array([103, 105, 104, 110])])
    _assert_same(read_wfdb_digital(header), _wfdb_digital(header))


def test_flac_is_decoded_by_wfdb(tmp_path: Path) -> None:
    pytest.importorskip("soundfile")
    d_signal = np.random.default_rng(5).integers(-30000, 30000, (50, 2))
    wfdb.wrsamp(
        "f", fs=100, units=["mV"] * 2, sig_name=["a", "b"], d_signal=d_signal,
        fmt=["516"] * 2, adc_gain=[200.0] * 2, baseline=[0] * 2, write_dir=str(tmp_path),
    )  # fmt: skip
    _assert_same(read_wfdb_digital(tmp_path / "f.hea"), list(d_signal.T))


@pytest.mark.parametrize("fmt", ["16", "212", "311", "24"])
def test_truncated_file_is_refused_by_both(tmp_path: Path, fmt: str) -> None:
    rng = np.random.default_rng(6)
    header = _write(tmp_path, fmt, [_samples(fmt, 9, rng) for _ in range(2)], offset=3)
    data = tmp_path / "rec.dat"
    data.write_bytes(data.read_bytes()[:-1])
    with pytest.raises(RecordError, match=r"rec\.dat: signal file is truncated"):
        read_wfdb(header)
    with pytest.raises(RecordError, match=r"rec\.dat: signal file is truncated"):
        decode_file(data, fmt, 9, 3, [1, 1], [0, 0], [0, 0])
    with pytest.raises(Exception):  # noqa: B017 - wfdb raises many types
        _wfdb_digital(header)


def test_skewed_format_8_is_refused(tmp_path: Path) -> None:
    header = _write(tmp_path, "8", [np.array([1, 2, 3, 4])], skew=[1])
    with pytest.raises(RecordError, match="skewed format 8"):
        read_wfdb(header)
