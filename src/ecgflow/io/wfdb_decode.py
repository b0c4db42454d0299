"""Decode the digital samples of one WFDB signal file with numpy (no wfdb internals).

Formats 8 (first differences), 16, 61, 80, 160, 212, 310, 311, 24 and 32 are decoded here,
vectorised: one read of the file's bytes (memory-mapped for large files), bit unpacking on
whole byte blocks. The result equals wfdb's own decoding (``wfdb.rdrecord(...,
physical=False, smooth_frames=False).e_d_signal``) sample for sample, including its handling
of skew: each skewed signal is shifted left and its last ``skew`` samples are set to the
format's invalid value. FLAC formats (508/516/524) are not decoded here: see
:data:`FLAC_FORMATS` and :func:`read_with_wfdb`, which uses wfdb's public API.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecgflow.errors import RecordError

#: Files at least this large are memory-mapped instead of read: faster from ~700 KB on (see
#: benchmarks/decode.py).
MMAP_MIN_BYTES = 768 << 10


@dataclass(frozen=True, slots=True)
class WfdbFormat:
    """What the WFDB specification says about one signal file format."""

    bytes_per_sample: float  # 1.5 for 212, 4/3 for 310/311
    invalid: int | None  # the digital value that marks a missing sample (none for format 8)


#: The formats this module decodes.
FORMATS: dict[str, WfdbFormat] = {
    "8": WfdbFormat(1, None),
    "16": WfdbFormat(2, -(2**15)),
    "24": WfdbFormat(3, -(2**23)),
    "32": WfdbFormat(4, -(2**31)),
    "61": WfdbFormat(2, -(2**15)),
    "80": WfdbFormat(1, -(2**7)),
    "160": WfdbFormat(2, -(2**15)),
    "212": WfdbFormat(1.5, -(2**11)),
    "310": WfdbFormat(4 / 3, -(2**9)),
    "311": WfdbFormat(4 / 3, -(2**9)),
}

#: FLAC-compressed formats: sizes are not computable, decoding is left to wfdb.
FLAC_FORMATS: dict[str, WfdbFormat] = {
    "508": WfdbFormat(0, -(2**7)),
    "516": WfdbFormat(0, -(2**15)),
    "524": WfdbFormat(0, -(2**23)),
}

#: Every format a signal line may name (besides ``0``, a null signal).
SUPPORTED_FORMATS = frozenset(FORMATS) | frozenset(FLAC_FORMATS)

# Formats read as whole samples of one numpy dtype.
_ALIGNED_DTYPES = {"8": "i1", "16": "<i2", "32": "<i4", "61": ">i2", "80": "u1", "160": "<u2"}


def invalid_value(fmt: str) -> int | None:
    """The digital value that marks an invalid sample in ``fmt`` (``None`` for format 8)."""
    return (FORMATS.get(fmt) or FLAC_FORMATS[fmt]).invalid


def required_bytes(fmt: str, n_samples: int) -> int:
    """Bytes needed to read ``n_samples`` samples (all signals of the file) in ``fmt``.

    A trailing partial block counts its used bytes only, except in format 310, whose second
    sample of a block needs the block's last byte.
    """
    if fmt == "212":
        return math.ceil(n_samples * 1.5)
    if fmt in ("310", "311"):
        if fmt == "310" and n_samples % 3 == 2:
            return (n_samples // 3 + 1) * 4
        return math.ceil(n_samples * 4 / 3)
    return n_samples * int(FORMATS[fmt].bytes_per_sample)


def decode_file(
    path: Path,
    fmt: str,
    sig_len: int,
    byte_offset: int,
    samps_per_frame: Sequence[int],
    skew: Sequence[int],
    init_value: Sequence[int | None],
) -> list[np.ndarray]:
    """The digital samples of every signal in one signal file, in file order.

    Signal ``i`` gets ``sig_len * samps_per_frame[i]`` samples. The arrays may be read-only
    views of the file's bytes. :class:`RecordError` naming the file if it is too short.
    """
    if fmt not in FORMATS:
        raise RecordError(f"{path}: WFDB format {fmt} is not decoded by ecgflow")
    frame = sum(samps_per_frame)
    extra = max(skew)  # frames past the end that skewed signals need: padded, then invalid
    if extra and fmt == "8":
        raise RecordError(
            f"{path}: skewed format 8 signals cannot be decoded (format 8 has no invalid value "
            "for the samples past the end of the file)"
        )
    n_samples = sig_len * frame
    raw = _read_bytes(path, fmt, byte_offset, required_bytes(fmt, n_samples))
    flat = _decode_samples(raw, fmt, n_samples, extra * frame)
    if fmt == "8":
        flat = _integrate_differences(flat, samps_per_frame, init_value)
    frames = flat.reshape(-1, frame)
    signals = []
    start = 0
    for spf, shift in zip(samps_per_frame, skew, strict=True):
        samples = frames[:, start : start + spf].reshape(-1)
        start += spf
        if extra:
            samples = samples[shift * spf : (shift + sig_len) * spf].copy()
            if shift:
                samples[-shift:] = FORMATS[fmt].invalid
        signals.append(samples)
    return signals


def _read_bytes(path: Path, fmt: str, offset: int, n_bytes: int) -> np.ndarray:
    """``n_bytes`` bytes of ``path`` from ``offset`` as uint8 (memory-mapped when large)."""
    try:
        size = os.stat(path).st_size
        if size >= offset + n_bytes and n_bytes >= MMAP_MIN_BYTES:
            return np.asarray(np.memmap(path, np.uint8, "r", offset=offset, shape=(n_bytes,)))
        with open(path, "rb") as file:
            file.seek(offset)
            data = file.read(n_bytes)
    except OSError as exc:
        raise RecordError(f"{path}: cannot read signal file: {exc}") from None
    if len(data) < n_bytes:
        raise RecordError(
            f"{path}: signal file is truncated: {size} bytes, but format {fmt} needs "
            f"{offset + n_bytes} bytes ({n_bytes} from offset {offset})"
        )
    return np.frombuffer(data, np.uint8)


def _decode_samples(raw: np.ndarray, fmt: str, n_samples: int, n_pad: int) -> np.ndarray:
    """Flat samples of all signals, then ``n_pad`` samples decoded from zero bytes."""
    if fmt in _ALIGNED_DTYPES:
        samples = raw.view(_ALIGNED_DTYPES[fmt])
        if n_pad:
            samples = np.concatenate([samples, np.zeros(n_pad, samples.dtype)])
        if fmt == "80":  # offset binary: flipping the top bit subtracts 128
            return (samples ^ np.uint8(0x80)).view(np.int8)
        if fmt == "160":
            return (samples ^ np.uint16(0x8000)).view(np.int16)
        return samples
    total = n_samples + n_pad
    block_bytes, block_samples = {"212": (3, 2), "310": (4, 3), "311": (4, 3), "24": (3, 1)}[fmt]
    n_blocks = -(-total // block_samples)
    if len(raw) != n_blocks * block_bytes:  # a partial last block, or padding: zero-fill
        raw = np.concatenate([raw, np.zeros(n_blocks * block_bytes - len(raw), np.uint8)])
    blocks = raw.reshape(n_blocks, block_bytes)
    if fmt == "24":
        out = np.empty((n_blocks, 4), np.uint8)
        out[:, :3] = blocks
        out[:, 3] = blocks[:, 2].view(np.int8) >> 7  # sign extension: 0x00 or 0xFF
        return out.view("<i4").reshape(-1)
    if fmt == "212":  # two 12-bit samples: low bytes 0 and 2, high nibbles in byte 1
        # each sample goes into the top 12 bits of an int16; an arithmetic shift sign-extends
        high = blocks[:, 1].astype(np.uint16)
        pairs = np.empty((n_blocks, 2), np.uint16)
        np.left_shift(high, 12, out=pairs[:, 0])
        pairs[:, 0] |= blocks[:, 0].astype(np.uint16) << 4
        np.bitwise_and(high, 0xF0, out=pairs[:, 1])
        pairs[:, 1] <<= 8
        pairs[:, 1] |= blocks[:, 2].astype(np.uint16) << 4
        return pairs.reshape(-1)[:total].view(np.int16) >> 4
    b = blocks.astype(np.int16)
    out = np.empty((n_blocks, block_samples), np.int16)
    if fmt == "310":  # three 10-bit samples in a little-endian 32-bit word, bit 0 unused
        out[:, 0] = (b[:, 0] >> 1) | ((b[:, 1] & 0x07) << 7)
        out[:, 1] = (b[:, 2] >> 1) | ((b[:, 3] & 0x07) << 7)
        out[:, 2] = ((b[:, 1] >> 3) & 0x1F) | (((b[:, 3] >> 3) & 0x1F) << 5)
    else:  # 311: three 10-bit samples packed from bit 0; wfdb keeps 7 bits of byte 3
        out[:, 0] = b[:, 0] | ((b[:, 1] & 0x03) << 8)
        out[:, 1] = (b[:, 1] >> 2) | ((b[:, 2] & 0x0F) << 6)
        out[:, 2] = (b[:, 2] >> 4) | ((b[:, 3] & 0x7F) << 4)
    flat = out.reshape(-1)[:total]
    flat[flat > 511] -= 1024  # two's complement, as wfdb does it (311 may have 11 bits)
    return flat


def _integrate_differences(
    diffs: np.ndarray, samps_per_frame: Sequence[int], init_value: Sequence[int | None]
) -> np.ndarray:
    """Format 8: absolute samples from first differences, per signal, from its initial value."""
    frame = sum(samps_per_frame)
    frames = diffs.reshape(-1, frame)
    out = np.empty(frames.shape, np.int32)
    start = 0
    for spf, init in zip(samps_per_frame, init_value, strict=True):
        block = frames[:, start : start + spf]
        absolute = block.cumsum(dtype=np.int32).reshape(block.shape)  # time order, all spf
        out[:, start : start + spf] = absolute + np.int32(init or 0)
        start += spf
    return out.reshape(-1)


def read_with_wfdb(header_path: Path, channels: Sequence[int]) -> list[np.ndarray]:
    """Digital samples of ``channels`` (header order) decoded by ``wfdb.rdrecord``.

    The fallback for formats not decoded here (FLAC); wfdb parses the header itself.
    """
    import wfdb

    record = wfdb.rdrecord(
        str(header_path.with_suffix("")),
        channels=list(channels),
        physical=False,
        smooth_frames=False,
    )
    return list(record.e_d_signal)
