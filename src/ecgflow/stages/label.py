"""The label stage: apply a label set to an ingest output folder.

Input (``records_dir``): ingest's ``records.parquet`` and ``raw/`` (for PTB-XL's
``scp_statements.csv`` or the CinC scoring tables). Output (``out_dir``)::

    labels.parquet     record_id, one uint8 0/1 column per label (in the set's order),
                       no_label (bool: no positive label in the set); records.parquet row order
    label_def.json     label set, per label: name, description, count, prevalence,
                       pos_weight (= negatives / positives; null when there are no positives)
    uncertain.parquet  (report-patterns with ``uncertain: ignore`` only) record_id, label of
                       each cell left at 0 because the report only hedged it, for loss masking
    manifest.json      inputs (sha256 of records.parquet and any table/config read), params,
                       counts, hashes of the files above

With ``drop_empty`` records with no label are left out (the PTB-XL benchmark does this per
task) and counted; counts and prevalences describe the rows written. The label sets are listed
in :data:`LABEL_SETS` and described in :mod:`ecgflow.labels`. Same inputs → same bytes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ecgflow.artifacts import LABEL_DEF, LABELS, RAW, RECORDS, UNCERTAIN
from ecgflow.errors import EcgflowError
from ecgflow.labels import (
    LABEL_SETS,
    Labeling,
    build_labels,
    parse_label_set,
    resolve_label_set,
)
from ecgflow.manifest import MANIFEST, sha256_file, write_manifest, writes_output
from ecgflow.params.label import LabelParams

log = logging.getLogger(__name__)

__all__ = ["LABEL_SETS", "LabelParams", "LabelResult", "label"]

NO_LABEL = "no_label"
_READ_COLUMNS = ["record_id", "dataset", "labels", "scp_codes", "report"]


@dataclass
class LabelResult:
    """What a label run produced."""

    out_dir: Path
    label_set: str
    labels: list[str]
    n_records: int
    n_empty: int
    n_dropped: int

    @property
    def metrics(self) -> dict[str, float]:
        """Counts for KFP / MLflow metrics (``n_records`` = rows written)."""
        return {
            "n_records": self.n_records,
            "n_labels": len(self.labels),
            "n_empty": self.n_empty,
            "n_dropped": self.n_dropped,
        }


@writes_output("label")
def label(params: LabelParams, records_dir: Path, out_dir: Path) -> LabelResult:
    """Label the records of ingest folder ``records_dir`` into ``out_dir`` (module docstring)."""
    records_dir, out_dir = Path(records_dir), Path(out_dir)
    parse_label_set(params.label_set)  # a bad name fails before any reading
    records_path = records_dir / RECORDS
    records = _read_records(records_path)
    label_set = resolve_label_set(params.label_set, records)
    set_name, _ = parse_label_set(label_set)
    labeling = build_labels(label_set, records, records_dir / RAW)
    matrix = labeling.matrix.astype(np.uint8, copy=False)
    empty = matrix.sum(axis=1) == 0
    keep = ~empty if params.drop_empty else np.ones(len(records), dtype=bool)
    record_ids = records["record_id"].astype(str).to_numpy()[keep]
    matrix = matrix[keep]

    out_dir.mkdir(parents=True, exist_ok=True)
    for name in (LABELS, LABEL_DEF, UNCERTAIN, MANIFEST):
        (out_dir / name).unlink(missing_ok=True)  # nothing stale from an earlier run
    _write_labels(out_dir / LABELS, record_ids, labeling.names, matrix, empty[keep])
    if labeling.uncertain is not None:
        _write_uncertain(out_dir / UNCERTAIN, record_ids, labeling.names, labeling.uncertain[keep])
    label_def = _label_def(set_name, labeling, matrix)
    (out_dir / LABEL_DEF).write_text(json.dumps(label_def, indent=2) + "\n", encoding="utf-8")

    result = LabelResult(
        out_dir=out_dir,
        label_set=set_name,
        labels=labeling.names,
        n_records=int(keep.sum()),
        n_empty=int(empty.sum()),
        n_dropped=int((~keep).sum()),
    )
    write_manifest(
        out_dir,
        stage="label",
        inputs={RECORDS: sha256_file(records_path), **labeling.inputs},
        params=params.model_dump(mode="json"),
        counts={
            "read": len(records),
            "written": result.n_records,
            "empty": result.n_empty,
            "dropped": result.n_dropped,
        },
    )
    log.info(
        "label %s: %d records, %d labels, %d without a label%s",
        set_name,
        len(records),
        len(labeling.names),
        result.n_empty,
        " (dropped)" if params.drop_empty else "",
    )
    return result


def _read_records(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise EcgflowError(f"{path}: not found; the label stage reads an ingest output folder")
    try:
        records = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a broken file
        raise EcgflowError(f"{path}: not a readable parquet file ({exc})") from exc
    missing = [c for c in ("record_id", "labels") if c not in records.columns]
    if missing:
        raise EcgflowError(f"{path}: missing column(s) {missing}; is it ingest's {RECORDS}?")
    for column in _READ_COLUMNS:
        if column not in records.columns:
            records[column] = None
    return records[_READ_COLUMNS].reset_index(drop=True)


def _write_labels(
    path: Path, record_ids: np.ndarray, names: list[str], matrix: np.ndarray, empty: np.ndarray
) -> None:
    fields = [pa.field("record_id", pa.string())]
    fields += [pa.field(name, pa.uint8()) for name in names]
    fields.append(pa.field(NO_LABEL, pa.bool_()))
    arrays = [pa.array(record_ids.tolist(), pa.string())]
    arrays += [pa.array(np.ascontiguousarray(matrix[:, i]), pa.uint8()) for i in range(len(names))]
    arrays.append(pa.array(empty, pa.bool_()))
    pq.write_table(pa.Table.from_arrays(arrays, schema=pa.schema(fields)), path)


def _write_uncertain(
    path: Path, record_ids: np.ndarray, names: list[str], uncertain: np.ndarray
) -> None:
    rows, columns = np.nonzero(uncertain)
    table = pa.table(
        {
            "record_id": pa.array(record_ids[rows].tolist(), pa.string()),
            "label": pa.array([names[c] for c in columns], pa.string()),
        }
    )
    pq.write_table(table, path)


def _label_def(set_name: str, labeling: Labeling, matrix: np.ndarray) -> dict[str, Any]:
    n = int(matrix.shape[0])
    counts = matrix.sum(axis=0, dtype=np.int64)
    labels = []
    for spec, count in zip(labeling.labels, counts.tolist(), strict=True):
        labels.append(
            {
                "name": spec.name,
                "description": spec.description,
                "count": count,
                "prevalence": count / n if n else None,
                "pos_weight": (n - count) / count if count else None,
            }
        )
    return {"label_set": set_name, "n_records": n, "labels": labels, "info": labeling.info}
