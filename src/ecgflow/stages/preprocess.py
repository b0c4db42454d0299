"""The preprocess stage: records → fixed-shape float32 model inputs, per split, in shards.

Inputs: the ingest stage's folder (``records.parquet`` + ``raw/``) and the split stage's
``split.parquet`` (record_id, split, fold). Without a split (``split_dir=None``) every record
goes to the split ``all``; records the split does not list are left out and counted.

Output (``out_dir``)::

    <split>/shard-00000.npy   float32 C-contiguous [N, C, T]; np.load(mmap_mode="r") works
    <split>/index.parquet     one row per sample: record_id, patient_id, split, fold, shard, row,
                              segment, start_sample, source_fs, n_repaired, lead_mask, counts and
                              flags, lead_offset_mv / lead_scale_mv (mV = x * scale + offset;
                              see INDEX_SCHEMA)
    rejected.parquet          record_id, reason: records that could not be read or transformed
    preprocess.json           every parameter, fs, channels, shapes, counts, ecgflow version
    manifest.json             params, input hashes, sha256 of every file

The numbers are those of :func:`ecgflow.signal.transform.transform_record`; records are read and
transformed in chunks of ``chunk_size`` (one shard each), grouped by (rate, length) and
transformed in batches of about :data:`BATCH_SAMPLES` samples (a record's numbers do not depend
on its batch), in ``workers`` processes, and written as they arrive in chunk order, so memory
stays flat and the same inputs give the same bytes.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ecgflow import __version__
from ecgflow.artifacts import INDEX, PREPROCESS_JSON, RAW, RECORDS, REJECTED, SPLIT, SPLITS
from ecgflow.errors import EcgflowError
from ecgflow.io.readers import read_record
from ecgflow.io.record import ECGRecord
from ecgflow.manifest import sha256_file, write_manifest, writes_output
from ecgflow.parallel import ordered_map
from ecgflow.signal.transform import (
    PreprocessParams,
    lead_rows,
    record_info,
    select_leads,
    transform_batch,
)

__all__ = ["PreprocessParams", "PreprocessResult", "preprocess"]

log = logging.getLogger(__name__)

ALL = "all"
SHARD = "shard-{:05d}.npy"

INDEX_SCHEMA = pa.schema(
    [
        ("record_id", pa.string()),
        ("patient_id", pa.string()),
        ("split", pa.string()),
        ("fold", pa.int32()),
        ("shard", pa.int32()),
        ("row", pa.int64()),
        ("segment", pa.int32()),
        ("start_sample", pa.int64()),
        ("source_fs", pa.float64()),
        ("n_repaired", pa.int64()),
        ("n_missing_leads", pa.int32()),
        ("n_flat_leads", pa.int32()),
        ("n_saturated_leads", pa.int32()),
        ("n_noisy_leads", pa.int32()),
        ("flag_repaired", pa.bool_()),
        ("flag_missing_lead", pa.bool_()),
        ("flag_flat", pa.bool_()),
        ("flag_saturation", pa.bool_()),
        ("flag_noise", pa.bool_()),
        ("lead_mask", pa.list_(pa.bool_())),
        ("lead_offset_mv", pa.list_(pa.float32())),
        ("lead_scale_mv", pa.list_(pa.float32())),
    ]
)
REJECTED_SCHEMA = pa.schema([("record_id", pa.string()), ("reason", pa.string())])
_RECORD_COLUMNS = ["record_id", "patient_id", "path", "fs", "leads"]
# Tables are read with ``pq.ParquetFile(...).read``: ``pq.read_table`` imports pyarrow.dataset,
# which imports pandas (~0.2 s of a 500-record run).
_INLINE_BELOW = 2  # fewer chunks than this run in-process
#: Samples (channels × time) per transform_batch call within a chunk: a batch this size keeps
#: its temporaries in cache (about 8 MiB of float64 per array; 16 records of 12 × 5000).
BATCH_SAMPLES = 1 << 20


@dataclass
class PreprocessResult:
    """What a preprocess run produced."""

    out_dir: Path
    n_samples: dict[str, int]
    n_records: dict[str, int]
    rejected: list[tuple[str, str]] = field(default_factory=list)
    not_in_split: int = 0

    @property
    def metrics(self) -> dict[str, float]:
        """Counts for KFP / MLflow metrics."""
        out: dict[str, float] = {f"n_{k}": v for k, v in self.n_samples.items()}
        out["rejected"] = len(self.rejected)
        out["not_in_split"] = self.not_in_split
        return out


@dataclass
class _Chunk:
    split: str
    shard: int
    rows: list[dict[str, Any]]


@dataclass
class _ChunkOut:
    array: np.ndarray | None
    index: list[dict[str, Any]]
    rejected: list[tuple[str, str]]


@writes_output("preprocess")
def preprocess(
    params: PreprocessParams,
    records_dir: Path,
    split_dir: Path | None,
    out_dir: Path,
    like: Path | None = None,
) -> PreprocessResult:
    """Preprocess the records of ``records_dir`` into ``out_dir`` (see the module docstring).

    ``like``: a folder holding an earlier ``preprocess.json``; its parameters are used exactly
    (only ``workers`` is taken from ``params``), e.g. for an external test set.
    Raises :class:`EcgflowError` for missing or malformed inputs; unreadable records are
    listed in ``rejected.parquet`` instead.
    """
    if like is not None:
        params = _params_like(Path(like), params.workers)
    records_dir, out_dir = Path(records_dir), Path(out_dir)
    records = _read_records(records_dir / RECORDS)
    assignment, names, not_in_split = _attach_split(records, split_dir)
    for name in (*SPLITS, ALL):
        if (out_dir / name).exists():
            shutil.rmtree(out_dir / name)  # a re-run must not keep shards of an earlier one
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = _plan_chunks(assignment, names, params.chunk_size)
    chunks = (_chunk(records, assignment, ref) for ref in plan)  # built as they are submitted
    writers = {name: _SplitWriter(out_dir / name, name, params) for name in names}
    rejected: list[tuple[str, str]] = []
    results = _run(chunks, len(plan), records_dir / RAW, params)
    for ref, result in zip(plan, results, strict=True):
        writers[ref.split].add(result)
        rejected += result.rejected
    for writer in writers.values():
        writer.close()
    rejected_table = pa.Table.from_pylist(
        [{"record_id": r, "reason": why} for r, why in rejected], schema=REJECTED_SCHEMA
    )
    pq.write_table(rejected_table, out_dir / REJECTED)
    result = PreprocessResult(
        out_dir,
        {n: w.n_rows for n, w in writers.items()},
        {n: w.n_records for n, w in writers.items()},
        rejected,
        not_in_split,
    )
    summary = {
        "params": params.model_dump(mode="json"),
        "fs": params.fs,
        "channels": params.channels,
        "n_channels": len(params.channels),
        "n_times": params.n_times,
        "windows": params.window_s is not None,
        "splits": names,
        "n_samples": result.n_samples,
        "n_records": result.n_records,
        "n_rejected": len(rejected),
        "not_in_split": not_in_split,
        "dtype": "float32",
        "layout": "[N, C, T]",
        "ecgflow_version": __version__,
    }
    text = json.dumps(summary, indent=2, sort_keys=True) + "\n"
    (out_dir / PREPROCESS_JSON).write_text(text, encoding="utf-8")
    inputs = {RECORDS: sha256_file(records_dir / RECORDS)}
    if split_dir is not None:
        inputs[SPLIT] = sha256_file(Path(split_dir) / SPLIT)
    write_manifest(
        out_dir,
        stage="preprocess",
        inputs=inputs,
        like=str(like) if like is not None else None,
        params=params.model_dump(mode="json", exclude={"workers"}),
        counts=result.metrics,
    )
    log.info("preprocess: %s samples, %d rejected", result.n_samples, len(rejected))
    return result


# --- inputs ------------------------------------------------------------------------------------


def _params_like(like: Path, workers: int) -> PreprocessParams:
    path = like / PREPROCESS_JSON if like.is_dir() else like
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))["params"]
    except FileNotFoundError:
        raise EcgflowError(f"--like {path}: no {PREPROCESS_JSON} there") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EcgflowError(f"--like {path}: not a preprocess.json ({exc})") from None
    saved["workers"] = workers
    return PreprocessParams(**saved)


def _read_records(path: Path) -> pa.Table:
    if not path.is_file():
        raise EcgflowError(f"{path}: records.parquet not found (run ingest first)")
    try:
        return pq.ParquetFile(path).read(columns=_RECORD_COLUMNS)
    except Exception as exc:
        raise EcgflowError(f"{path}: cannot read records ({type(exc).__name__}: {exc})") from None


@dataclass
class _Assignment:
    """Per row of records.parquet: its split (None: not in the split) and fold."""

    split: list[str | None]
    fold: list[int | None]


def _attach_split(records: pa.Table, split_dir: Path | None) -> tuple[_Assignment, list[str], int]:
    """Each record's split and fold; the splits present; how many records the split omits."""
    if split_dir is None:
        return _Assignment([ALL] * records.num_rows, [None] * records.num_rows), [ALL], 0
    path = Path(split_dir) / SPLIT
    if not path.is_file():
        raise EcgflowError(f"{path}: split.parquet not found (run split first)")
    try:
        table = pq.ParquetFile(path).read(columns=["record_id", "split", "fold"])
    except Exception as exc:
        raise EcgflowError(f"{path}: cannot read split ({type(exc).__name__}: {exc})") from None
    assigned = dict(
        zip(
            table["record_id"].to_pylist(),
            zip(table["split"].to_pylist(), table["fold"].to_pylist(), strict=True),
            strict=True,
        )
    )
    del table
    found = [assigned.get(rid, (None, None)) for rid in records["record_id"].to_pylist()]
    assignment = _Assignment([f[0] for f in found], [f[1] for f in found])
    not_in_split = assignment.split.count(None)
    if not_in_split:
        log.warning("preprocess: %d records are not in %s; left out", not_in_split, path)
    present = set(assignment.split)
    return assignment, [s for s in SPLITS if s in present], not_in_split


@dataclass
class _ChunkRef:
    """A chunk before its rows are built: its split, shard number and rows of records.parquet."""

    split: str
    shard: int
    rows: np.ndarray


def _plan_chunks(assignment: _Assignment, names: list[str], size: int) -> list[_ChunkRef]:
    """Chunks of up to ``size`` records, split by split, in records.parquet order."""
    labels = np.array(assignment.split, dtype=object)
    plan = []
    for name in names:
        rows = np.flatnonzero(labels == name)
        for shard, start in enumerate(range(0, len(rows), size)):
            plan.append(_ChunkRef(name, shard, rows[start : start + size]))
    return plan


def _chunk(records: pa.Table, assignment: _Assignment, ref: _ChunkRef) -> _Chunk:
    """The rows of ``ref`` as the worker needs them."""
    part = records.take(pa.array(ref.rows)).to_pylist()
    return _Chunk(
        ref.split,
        ref.shard,
        [
            {
                "record_id": str(r["record_id"]),
                "patient_id": None if r["patient_id"] is None else str(r["patient_id"]),
                "path": str(r["path"]),
                "fs": float(r["fs"]),
                "leads": list(r["leads"]),
                "split": ref.split,
                "fold": None if (fold := assignment.fold[i]) is None else int(fold),
            }
            for i, r in zip(ref.rows.tolist(), part, strict=True)
        ],
    )


# --- processing --------------------------------------------------------------------------------

_state: dict[str, Any] = {}


def _init_worker(raw_dir: Path, params_json: str) -> None:
    _state["raw_dir"] = raw_dir
    _state["params"] = PreprocessParams.model_validate_json(params_json)


def _run(
    chunks: Iterator[_Chunk], n_chunks: int, raw_dir: Path, params: PreprocessParams
) -> Iterator[_ChunkOut]:
    """Process the chunks in order, in ``params.workers`` processes."""
    return ordered_map(
        _process_chunk,
        chunks,
        params.workers,
        _init_worker,
        (raw_dir, params.model_dump_json()),
        inline_below=_INLINE_BELOW,
        n_items=n_chunks,
    )


def _process_chunk(chunk: _Chunk) -> _ChunkOut:
    """Read, group by (rate, length), transform each group in batches; keep chunk order."""
    raw_dir: Path = _state["raw_dir"]
    params: PreprocessParams = _state["params"]
    rejected: list[tuple[str, str]] = []
    prepared: list[tuple[dict[str, Any], ECGRecord]] = []
    for row in chunk.rows:
        try:
            record = read_record(
                raw_dir / row["path"], fs=row["fs"], leads=row["leads"], record_id=row["record_id"]
            )
            lead_rows(record, params)  # a record without the needed leads is rejected here
            prepared.append((row, record))
        except EcgflowError as exc:
            rejected.append((row["record_id"], str(exc).replace(f"{raw_dir}{os.sep}", "")))
        except Exception as exc:  # a bad record must never crash the stage
            rejected.append((row["record_id"], f"unreadable ({type(exc).__name__}: {exc})"))
    groups: dict[tuple[float, int], list[int]] = {}
    for i, (_, record) in enumerate(prepared):
        groups.setdefault((record.fs, record.n_samples), []).append(i)
    outputs: dict[int, tuple[np.ndarray, dict[str, Any]]] = {}
    n_channels = len(params.channels)
    for (fs, n_samples), members in groups.items():
        size = max(1, BATCH_SAMPLES // (n_channels * n_samples))
        for first in range(0, len(members), size):
            part = members[first : first + size]
            batch = np.empty((len(part), n_channels, n_samples), dtype=np.float64)
            selected = [
                select_leads(prepared[i][1], params, out=batch[j])[1] for j, i in enumerate(part)
            ]
            mask = np.stack([info["lead_mask"] for info in selected])
            try:
                out, starts, flags = transform_batch(batch, fs, mask, params)
            except Exception as exc:  # e.g. too short to filter: every record of the group
                for i in part:
                    rejected.append((prepared[i][0]["record_id"], f"cannot transform: {exc}"))
                continue
            for j, i in enumerate(part):
                outputs[i] = (out[j], record_info(selected[j], flags, j, starts))
    arrays: list[np.ndarray] = []
    index: list[dict[str, Any]] = []
    for i, (row, record) in enumerate(prepared):
        if i not in outputs:
            continue
        out, info = outputs[i]
        starts = info.pop("start_samples")
        for segment, start in enumerate(starts):
            index.append(
                {
                    "record_id": row["record_id"],
                    "patient_id": row["patient_id"],
                    "split": row["split"],
                    "fold": row["fold"],
                    "segment": segment,
                    "start_sample": start,
                    "source_fs": record.fs,
                    **info,
                }
            )
        arrays.append(out)
    array = np.concatenate(arrays) if arrays else None
    order = {rid: k for k, rid in enumerate(r["record_id"] for r in chunk.rows)}
    rejected.sort(key=lambda item: order.get(item[0], -1))
    return _ChunkOut(array, index, rejected)


class _SplitWriter:
    """Writes one split's shards and its index rows as chunks arrive (memory stays flat)."""

    def __init__(self, folder: Path, name: str, params: PreprocessParams) -> None:
        self.folder = folder
        self.name = name
        self.folder.mkdir(parents=True, exist_ok=True)
        self.index: pq.ParquetWriter | None = None
        self.n_rows = 0
        self.n_records = 0
        self.shard = 0

    def add(self, result: _ChunkOut) -> None:
        """Write a chunk's rows as the next shard (nothing for a chunk of rejected records)."""
        if result.array is None:
            return
        np.save(self.folder / SHARD.format(self.shard), np.ascontiguousarray(result.array))
        for row, entry in enumerate(result.index):
            entry["shard"] = self.shard
            entry["row"] = row
        if self.index is None:
            self.index = pq.ParquetWriter(self.folder / INDEX, INDEX_SCHEMA)
        self.index.write_table(pa.Table.from_pylist(result.index, schema=INDEX_SCHEMA))
        self.n_rows += len(result.index)
        self.n_records += len({e["record_id"] for e in result.index})
        self.shard += 1

    def close(self) -> None:
        """Finish ``index.parquet`` (an empty one for a split whose records were all rejected)."""
        if self.index is None:
            pq.write_table(INDEX_SCHEMA.empty_table(), self.folder / INDEX)
        else:
            self.index.close()
