"""The render-images stage: preprocessed signals → paper ECG images and GAF/RP/MTF images.

Input: a preprocess output folder (shards + ``index.parquet`` per split + ``preprocess.json``).
Normalised samples are turned back into millivolts with the index's ``lead_offset_mv`` and
``lead_scale_mv``, so the paper gain of 10 mm/mV is true whatever the normalisation. With
``records_dir`` (the ingest folder) the LLaVA file links each image to its raw record and
takes the record's report as the answer.

Output (``out_dir``)::

    paper/<split>/<image_id>.png      12-lead paper layout (see ecgflow.render.paper)
    signal/<split>/<image_id>.png     GAF / RP / MTF as R / G / B (``signal_images``)
    images.parquet                    one row per image (INDEX_SCHEMA): ids, split, kind, path,
                                      size, applied distortions
    llava.json                        [{id, image, ecg, signal, record_id, split,
                                        conversations}] for the paper images (with records_dir)
    rejected.parquet                  record_id, reason: rows that could not be rendered
    render.json                       parameters, paper geometry (for digitising), counts
    manifest.json                     inputs' hashes, params, sha256 of every file

``image_id`` is the record id, with ``-sNNN`` per window when preprocess made windows.
Distortions are drawn from a generator seeded by (seed, image_id): the same bytes on any
machine, in any number of workers.
"""

from __future__ import annotations

import json
import logging
import shutil
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from ecgflow import __version__
from ecgflow.artifacts import (
    IMAGES,
    INDEX,
    LLAVA,
    PREPROCESS_JSON,
    RAW,
    RECORDS,
    REJECTED,
    RENDER_JSON,
)
from ecgflow.errors import EcgflowError
from ecgflow.io.record import normalise_lead_name
from ecgflow.manifest import sha256_file, write_manifest, writes_output
from ecgflow.parallel import ordered_map
from ecgflow.params.render import RenderParams
from ecgflow.render.distort import distort
from ecgflow.render.paper import geometry, render_paper
from ecgflow.render.signal_images import signal_image

__all__ = ["RenderParams", "RenderResult", "render_images"]

log = logging.getLogger(__name__)

PAPER, SIGNAL = "paper", "signal"
QUESTION = "<image>\nWhat does this 12-lead ECG show?"

IMAGES_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("record_id", pa.string()),
        ("patient_id", pa.string()),
        ("split", pa.string()),
        ("segment", pa.int32()),
        ("kind", pa.string()),
        ("path", pa.string()),
        ("window", pa.int32()),
        ("start_s", pa.float64()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("shard", pa.string()),
        ("row", pa.int64()),
        ("distortions", pa.string()),
    ]
)
REJECTED_SCHEMA = pa.schema([("record_id", pa.string()), ("reason", pa.string())])
_INDEX_COLUMNS = [
    "record_id",
    "patient_id",
    "shard",
    "row",
    "segment",
    "lead_mask",
    "lead_offset_mv",
    "lead_scale_mv",
]


@dataclass
class RenderResult:
    """What a render run produced."""

    out_dir: Path
    n_paper: int
    n_signal: int
    rejected: list[tuple[str, str]] = field(default_factory=list)
    n_llava: int = 0

    @property
    def metrics(self) -> dict[str, float]:
        """Counts for KFP / MLflow metrics."""
        return {
            "paper_images": self.n_paper,
            "signal_images": self.n_signal,
            "llava_entries": self.n_llava,
            "rejected": len(self.rejected),
        }


@dataclass
class _Source:
    """What every worker needs to know about the preprocess output."""

    data_dir: Path
    out_dir: Path
    fs: float
    channels: list[str]
    params: RenderParams


@dataclass
class _Chunk:
    split: str
    windows: bool
    rows: list[dict[str, Any]]


@dataclass
class _ChunkOut:
    images: list[dict[str, Any]]
    rejected: list[tuple[str, str]]


@writes_output("render-images")
def render_images(
    params: RenderParams, data_dir: Path, out_dir: Path, records_dir: Path | None = None
) -> RenderResult:
    """Render the preprocess output ``data_dir`` into ``out_dir`` (see the module docstring).

    Raises :class:`EcgflowError` for a missing or malformed input folder; a row that cannot be
    rendered is listed in ``rejected.parquet``.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    info = _read_preprocess_json(data_dir)
    fs, channels = float(info["fs"]), [normalise_lead_name(c) for c in info["channels"]]
    if params.signal_images and normalise_lead_name(params.signal_lead) not in channels:
        raise EcgflowError(
            f"signal_lead: {params.signal_lead} is not among the preprocessed channels {channels}"
        )
    names = _split_names(info, params)
    chunks = [
        chunk
        for name in names
        for chunk in _chunks(data_dir, name, bool(info.get("windows")), params.chunk_size)
    ]
    for folder in (PAPER, SIGNAL):
        if (out_dir / folder).exists():
            shutil.rmtree(out_dir / folder)  # a re-run must not keep images of an earlier one
    out_dir.mkdir(parents=True, exist_ok=True)
    source = _Source(data_dir, out_dir, fs, channels, params)
    images: list[dict[str, Any]] = []
    rejected: list[tuple[str, str]] = []
    for out in ordered_map(_render_chunk, chunks, params.workers, _init_worker, (source,)):
        images += out.images
        rejected += out.rejected
    pq.write_table(pa.Table.from_pylist(images, schema=IMAGES_SCHEMA), out_dir / IMAGES)
    rejected_rows = [{"record_id": r, "reason": why} for r, why in rejected]
    pq.write_table(pa.Table.from_pylist(rejected_rows, schema=REJECTED_SCHEMA), out_dir / REJECTED)
    llava, llava_note = _llava(images, records_dir)
    if llava is not None:
        (out_dir / LLAVA).write_text(json.dumps(llava, indent=1) + "\n", encoding="utf-8")
    elif (out_dir / LLAVA).exists():
        (out_dir / LLAVA).unlink()
    result = RenderResult(
        out_dir,
        n_paper=sum(i["kind"] == PAPER for i in images),
        n_signal=sum(i["kind"] == SIGNAL for i in images),
        rejected=rejected,
        n_llava=len(llava or []),
    )
    n_times = int(info["n_times"])
    summary = {
        "params": params.model_dump(mode="json", exclude={"workers"}),  # output does not vary
        "fs": fs,
        "channels": channels,
        "splits": names,
        "paper_geometry": geometry(params.dpi, n_times / fs).to_dict(),
        "counts": result.metrics,
        "llava": llava_note,
        "ecgflow_version": __version__,
    }
    text = json.dumps(summary, indent=2, sort_keys=True) + "\n"
    (out_dir / RENDER_JSON).write_text(text, encoding="utf-8")
    inputs = {PREPROCESS_JSON: sha256_file(data_dir / PREPROCESS_JSON)}
    inputs |= {f"{n}/{INDEX}": sha256_file(data_dir / n / INDEX) for n in names}
    if records_dir is not None:
        inputs[RECORDS] = sha256_file(Path(records_dir) / RECORDS)
    write_manifest(
        out_dir,
        stage="render-images",
        inputs=inputs,
        params=params.model_dump(mode="json", exclude={"workers"}),
        counts=result.metrics,
    )
    log.info("render-images: %s", result.metrics)
    return result


# --- inputs ------------------------------------------------------------------------------------


def _read_preprocess_json(data_dir: Path) -> dict[str, Any]:
    path = data_dir / PREPROCESS_JSON
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EcgflowError(f"{path}: not found (--data must be a preprocess output)") from None
    except (OSError, ValueError) as exc:
        raise EcgflowError(f"{path}: not a preprocess.json ({type(exc).__name__}: {exc})") from None
    missing = [
        k
        for k in ("fs", "channels", "n_times", "splits")
        if not isinstance(info, dict) or k not in info
    ]
    if missing:
        raise EcgflowError(f"{path}: not a preprocess.json (missing {', '.join(missing)})")
    return info


def _split_names(info: dict[str, Any], params: RenderParams) -> list[str]:
    available = list(info["splits"])
    if params.splits is None:
        return available
    unknown = [s for s in params.splits if s not in available]
    if unknown:
        raise EcgflowError(f"splits: {unknown} not in the preprocess output (has {available})")
    return [s for s in available if s in params.splits]


def _chunks(data_dir: Path, name: str, windows: bool, size: int) -> list[_Chunk]:
    path = data_dir / name / INDEX
    try:
        index = pq.read_table(path, columns=_INDEX_COLUMNS).to_pandas()
    except FileNotFoundError:
        raise EcgflowError(f"{path}: not found (incomplete preprocess output)") from None
    except Exception as exc:
        raise EcgflowError(
            f"{path}: cannot read ({type(exc).__name__}: {exc}); an index without "
            "lead_offset_mv / lead_scale_mv comes from an older preprocess: re-run it"
        ) from None
    rows = [
        {
            "record_id": str(r.record_id),
            "patient_id": None if pd.isna(r.patient_id) else str(r.patient_id),
            "shard": f"{name}/shard-{int(r.shard):05d}.npy",
            "row": int(r.row),
            "segment": int(r.segment),
            "mask": np.asarray(r.lead_mask, dtype=bool),
            "offset": np.asarray(r.lead_offset_mv, dtype=np.float64),
            "scale": np.asarray(r.lead_scale_mv, dtype=np.float64),
        }
        for r in index.itertuples(index=False)
    ]
    return [
        _Chunk(name, windows, rows[start : start + size]) for start in range(0, len(rows), size)
    ]


# --- rendering (runs in worker processes) ------------------------------------------------------

_state: dict[str, Any] = {}


def _init_worker(source: _Source) -> None:
    _state["source"] = source
    _state["shards"] = {}


def _shard(relative: str) -> np.ndarray:
    shards: dict[str, np.ndarray] = _state["shards"]
    if relative not in shards:
        shards.clear()  # chunks walk shards in order: keep one open
        shards[relative] = np.load(_state["source"].data_dir / relative, mmap_mode="r")
    return shards[relative]


def _render_chunk(chunk: _Chunk) -> _ChunkOut:
    source: _Source = _state["source"]
    images: list[dict[str, Any]] = []
    rejected: list[tuple[str, str]] = []
    for row in chunk.rows:
        image_id = row["record_id"] + (f"-s{row['segment']:03d}" if chunk.windows else "")
        try:
            x = np.asarray(_shard(row["shard"])[row["row"]], dtype=np.float64)
            if not np.isfinite(x).all():
                raise EcgflowError(f"{row['shard']} row {row['row']}: non-finite samples")
            mv = x * row["scale"][:, None] + row["offset"][:, None]
            images += _render_row(source, chunk.split, image_id, row, mv)
        except Exception as exc:  # one bad row must never stop the stage
            rejected.append((row["record_id"], f"{image_id}: {type(exc).__name__}: {exc}"))
    return _ChunkOut(images, rejected)


def _render_row(
    source: _Source, split: str, image_id: str, row: dict[str, Any], mv: np.ndarray
) -> list[dict[str, Any]]:
    params = source.params
    base = {
        "image_id": image_id,
        "record_id": row["record_id"],
        "patient_id": row["patient_id"],
        "split": split,
        "segment": row["segment"],
        "shard": row["shard"],
        "row": row["row"],
    }
    out: list[dict[str, Any]] = []
    if params.paper:
        image = render_paper(mv, source.fs, source.channels, params.dpi, row["mask"])
        applied = None
        if params.distort:
            rng = np.random.default_rng([params.seed, zlib.crc32(image_id.encode())])
            image, found = distort(image, rng, params.distortions)
            applied = json.dumps(found, sort_keys=True)
        rel = f"{PAPER}/{split}/{image_id}.png"
        _save(image, source.out_dir / rel, params.png_compress_level, params.dpi)
        out.append(
            base
            | {"kind": PAPER, "path": rel, "window": None, "start_s": 0.0}
            | {"width": image.width, "height": image.height, "distortions": applied}
        )
    if params.signal_images:
        lead = source.channels.index(normalise_lead_name(params.signal_lead))
        trace = mv[lead]
        span = (
            len(trace)
            if params.signal_window_s is None
            else round(params.signal_window_s * source.fs)
        )
        starts = range(0, max(1, len(trace) - span + 1), max(1, span))
        for w, start in enumerate(starts):
            pixels = signal_image(trace[start : start + span], params.signal_size, params.mtf_bins)
            suffix = "" if params.signal_window_s is None else f"-w{w:02d}"
            rel = f"{SIGNAL}/{split}/{image_id}{suffix}.png"
            _save(Image.fromarray(pixels, "RGB"), source.out_dir / rel, params.png_compress_level)
            out.append(
                base
                | {"kind": SIGNAL, "path": rel, "window": w, "start_s": start / source.fs}
                | {"width": params.signal_size, "height": params.signal_size}
                | {"distortions": None}
            )
    return out


def _save(image: Image.Image, path: Path, level: int, dpi: float | None = None) -> None:
    """PNG at zlib ``level``; ``dpi`` (paper images) makes the file print at true size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {} if dpi is None else {"dpi": (dpi, dpi)}
    image.save(path, format="PNG", compress_level=level, **extra)


# --- LLaVA conversations -----------------------------------------------------------------------


def _llava(
    images: list[dict[str, Any]], records_dir: Path | None
) -> tuple[list[dict[str, Any]] | None, dict[str, Any]]:
    """LLaVA-style entries for the paper images, and a note of how many had no text."""
    if records_dir is None:
        return None, {"written": False, "why": "no records folder given (reports and raw paths)"}
    path = Path(records_dir) / RECORDS
    try:
        table = pq.read_table(path, columns=["record_id", "path", "report", "labels"])
    except Exception as exc:
        raise EcgflowError(f"{path}: cannot read records ({type(exc).__name__}: {exc})") from None
    records = {r["record_id"]: r for r in table.to_pylist()}
    entries: list[dict[str, Any]] = []
    no_text = 0
    for image in images:
        if image["kind"] != PAPER:
            continue
        record = records.get(image["record_id"], {})
        answer = _answer(record)
        if not answer:
            no_text += 1
            continue
        entries.append(
            {
                "id": image["image_id"],
                "image": image["path"],
                "ecg": f"{RAW}/{record['path']}",
                "signal": {"shard": image["shard"], "row": image["row"]},
                "record_id": image["record_id"],
                "split": image["split"],
                "conversations": [
                    {"from": "human", "value": QUESTION},
                    {"from": "gpt", "value": answer},
                ],
            }
        )
    note = {
        "written": True,
        "entries": len(entries),
        "without_text": no_text,
        "ecg_relative_to": "the ingest records folder",
        "image_relative_to": "this folder",
        "signal_relative_to": "the preprocess folder",
    }
    return entries, note


def _answer(record: dict[str, Any]) -> str:
    """The record's report, else its source labels, else empty."""
    report = (record.get("report") or "").strip()
    if report:
        return report
    labels = [str(v) for v in record.get("labels") or []]
    return f"Findings: {', '.join(labels)}." if labels else ""
