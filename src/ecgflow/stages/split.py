"""The split stage: assign every record to train / val / test (and optionally a CV fold).

Inputs: the ingest stage's ``records.parquet`` (record_id, patient_id, dataset, strat_fold) and
the label stage's ``labels.parquet`` (record_id + one 0/1 column per label; a boolean
``no_label`` column, if present, is not a label). Both must list exactly the same records.

Output (``out_dir``)::

    split.parquet       record_id, split (train / val / test), fold (int32, 1..K or null),
                        in records.parquet's row order
    split_report.json   method, seed, ratios; per split (and fold): records, patients, positives
                        and prevalence per label; per label the largest absolute deviation of a
                        split's prevalence from the overall prevalence
    manifest.json       params, sha256 of both inputs, counts, hashes of the files above

Rules:

* **Patient-disjoint, always.** Records are grouped by ``(dataset, patient_id)``; a record with
  no patient_id is a group of its own. A group never spans two splits or two folds.
* **Duplicates stay with their original.** A record whose ``duplicate_of`` (set by ingest for
  byte-identical signal files) names another record is in that record's group (groups joined
  through duplicates are one group) and takes its ``strat_fold``.
* **PTB-XL's ``strat_fold``** is honoured when ``use_strat_fold`` is set and every record has
  one (the recommended split of Wagner et al., 2020): folds 1–8 → train, 9 → val, 10 → test;
  ``ratios`` is then not used. The strat folds must be patient-disjoint (checked: an
  :class:`EcgflowError` names the patients otherwise). With ``folds=9`` the CV fold is the
  strat fold itself (1–9 over train + val); any other ``folds=K`` stratifies train + val
  patients into K folds as below.
* **Otherwise**: multi-label iterative stratification over patient groups
  (:mod:`ecgflow.group_stratification`) into train / val / test by ``ratios`` (in records); with
  ``folds=K``, train + val are then stratified the same way into K equal folds.
* The same inputs and seed give byte-identical outputs; test records have fold = null.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ecgflow.artifacts import LABELS, RECORDS, SPLIT, SPLIT_REPORT, SPLITS
from ecgflow.errors import EcgflowError
from ecgflow.group_stratification import group_rows, stratified_group_split
from ecgflow.io.stage_tables import examples, read_stage_table
from ecgflow.manifest import sha256_file, write_manifest, writes_output
from ecgflow.params.split import SplitParams

log = logging.getLogger(__name__)

NO_LABEL = "no_label"
SPLIT_SCHEMA = pa.schema([("record_id", pa.string()), ("split", pa.string()), ("fold", pa.int32())])

METHOD_STRAT_FOLD = "ptbxl_strat_fold"
METHOD_STRATIFIED = "iterative_stratification"
#: PTB-XL's recommended use of its 10 stratified folds (Wagner et al., 2020).
PTBXL_SPLIT_OF_FOLD = {**dict.fromkeys(range(1, 9), "train"), 9: "val", 10: "test"}
PTBXL_CV_FOLDS = 9  # strat folds 1–9 (train + val) are the CV folds when folds=9

_SUM_TOLERANCE = 1e-6
_EXAMPLES = 5  # ids quoted in an error message


@dataclass
class SplitResult:
    """What a split run produced."""

    out_dir: Path
    counts: dict[str, int]
    method: str
    report: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def metrics(self) -> dict[str, float]:
        """Records per split and the worst per-label prevalence deviation, for KFP / MLflow."""
        metrics: dict[str, float] = {f"n_{name}": n for name, n in self.counts.items()}
        metrics["n_patients"] = self.report.get("n_patients", 0)
        deviations = self.report.get("max_prevalence_deviation", {}).values()
        metrics["max_prevalence_deviation"] = max(deviations, default=0.0)
        return metrics


@writes_output("split")
def split(params: SplitParams, records_dir: Path, labels_dir: Path, out_dir: Path) -> SplitResult:
    """Split the records of ``records_dir`` into ``out_dir`` (see the module docstring).

    Raises :class:`EcgflowError` for missing or malformed inputs, records and labels that do not
    list the same ids, and PTB-XL strat folds that are not patient-disjoint.
    """
    records_path = Path(records_dir) / RECORDS
    labels_path = Path(labels_dir) / LABELS
    out_dir = Path(out_dir)
    for input_dir in (records_dir, labels_dir):
        if out_dir.resolve() == Path(input_dir).resolve():
            raise EcgflowError(f"--out {out_dir}: must differ from the input folder {input_dir}")
    records = _read_records(records_path)
    label_table = read_stage_table(labels_path, ("record_id",), "label")
    records, unlabelled = _labelled_only(records, label_table)
    names, matrix = _read_labels(label_table, labels_path, records["record_id"], records_path)
    keys, display = _group_keys(records)
    keys = _join_duplicates(records, keys)
    group_names, group_of_row = group_rows(keys)
    rng = np.random.default_rng(params.seed)

    strat_fold = records["strat_fold"]
    if params.use_strat_fold and strat_fold.notna().all():
        method = METHOD_STRAT_FOLD
        folds_of_row = _checked_strat_folds(
            strat_fold, group_of_row, display, records, records_path
        )
        split_of_row = np.array([SPLITS.index(PTBXL_SPLIT_OF_FOLD[f]) for f in folds_of_row])
    else:
        if params.use_strat_fold and strat_fold.notna().any():
            log.warning(
                "split: %d of %d records have no strat_fold; stratifying instead",
                int(strat_fold.isna().sum()),
                len(records),
            )
        method = METHOD_STRATIFIED
        folds_of_row = None
        split_of_row = stratified_group_split(matrix, group_of_row, params.ratios, rng)

    fold, fold_method = _cv_folds(params, split_of_row, folds_of_row, matrix, group_of_row, rng)
    report = _report(params, method, fold_method, names, matrix, split_of_row, fold, group_of_row)
    report["left_out_unlabelled"] = unlabelled
    counts = {name: int((split_of_row == i).sum()) for i, name in enumerate(SPLITS)}
    _write_split(out_dir, records["record_id"], split_of_row, fold)
    (out_dir / SPLIT_REPORT).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    write_manifest(
        out_dir,
        stage="split",
        method=method,
        fold_method=fold_method,
        inputs={RECORDS: sha256_file(records_path), LABELS: sha256_file(labels_path)},
        params=params.model_dump(mode="json"),
        counts={**counts, "left_out_unlabelled": unlabelled},
    )
    for name, n in counts.items():
        if n == 0 and (method == METHOD_STRAT_FOLD or params.ratios[SPLITS.index(name)] > 0):
            log.warning("split: the %s split is empty", name)
    log.info("split (%s): %s over %d patients", method, counts, len(group_names))
    return SplitResult(out_dir, counts, method, report)


# --- inputs ------------------------------------------------------------------------------------


def _read_records(path: Path) -> pd.DataFrame:
    frame = read_stage_table(path, ("record_id", "patient_id"), "ingest")
    if frame.empty:
        raise EcgflowError(f"{path}: no records to split")
    for optional in ("dataset", "strat_fold", "duplicate_of"):
        if optional not in frame.columns:
            frame[optional] = None
    frame = frame[["record_id", "patient_id", "dataset", "strat_fold", "duplicate_of"]].copy()
    original = frame.drop_duplicates("record_id").set_index("record_id")["strat_fold"]
    duplicate = frame["duplicate_of"].notna() & frame["duplicate_of"].isin(original.index)
    if duplicate.any():  # a duplicate takes its original's strat fold
        inherited = original.loc[frame.loc[duplicate, "duplicate_of"]].to_numpy()
        frame.loc[duplicate, "strat_fold"] = inherited
    return frame


def _labelled_only(records: pd.DataFrame, labels: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Keep the records the label stage kept (``--drop-empty`` drops unlabelled ones)."""
    keep = records["record_id"].isin(labels["record_id"])
    if not keep.all():
        log.info("split: %d record(s) without a labels row are left out", int((~keep).sum()))
    return records[keep].reset_index(drop=True), int((~keep).sum())


def _read_labels(
    frame: pd.DataFrame, path: Path, record_ids: pd.Series, records_path: Path
) -> tuple[list[str], npt.NDArray[np.int64]]:
    """Label names and the ``[records, labels]`` 0/1 matrix, in records.parquet's row order."""
    if extra := sorted(set(frame["record_id"]) - set(record_ids)):
        raise EcgflowError(
            f"records and labels do not match: {len(extra)} record(s) in {path} are not in "
            f"{records_path} (e.g. {examples(extra)})"
        )
    names = [c for c in frame.columns if c not in ("record_id", NO_LABEL)]
    for name in names:
        column = frame[name]
        if not (pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column)):
            raise EcgflowError(f"{path}: column {name!r} ({column.dtype}) is not a 0/1 label")
        bad = column[column.isna() | ~column.isin([0, 1])]
        if not bad.empty:
            raise EcgflowError(
                f"{path}: label column {name!r} must hold 0 or 1, found {examples(bad.unique())}"
            )
    if not names:
        log.warning("split: %s has no label columns; splitting by size only", path)
    ordered = frame.set_index("record_id").loc[record_ids, names]
    return names, ordered.to_numpy(dtype=np.int64).reshape(len(record_ids), len(names))


def _group_keys(records: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Group key of every record and a readable name of its group for messages.

    The key is ``(dataset, patient_id)``, or the record itself when it has no patient_id.
    """
    keys, display = [], []
    for record_id, patient, dataset in zip(
        records["record_id"], records["patient_id"], records["dataset"], strict=True
    ):
        patient = None if patient is None or pd.isna(patient) else str(patient).strip() or None
        if patient is None:
            keys.append(f"record\x1f{dataset or ''}\x1f{record_id}")
            display.append(f"record {record_id}")
        else:
            keys.append(f"patient\x1f{dataset or ''}\x1f{patient}")
            display.append(f"patient {patient}")
    return keys, display


def _join_duplicates(records: pd.DataFrame, keys: list[str]) -> list[str]:
    """Group keys with every duplicate's group joined to its original's (union-find).

    Each joined group takes the smallest of its keys, so the result does not depend on row order.
    """
    parent = {key: key for key in keys}

    def root(key: str) -> str:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    row_of = {rid: row for row, rid in enumerate(records["record_id"])}
    for row, original in enumerate(records["duplicate_of"]):
        if original is None or pd.isna(original) or original not in row_of:
            continue
        a, b = root(keys[row]), root(keys[row_of[original]])
        if a != b:
            parent[max(a, b)] = min(a, b)
    return [root(key) for key in keys]


# --- assignment --------------------------------------------------------------------------------


def _checked_strat_folds(
    strat_fold: pd.Series,
    group_of_row: npt.NDArray[np.intp],
    display: list[str],
    records: pd.DataFrame,
    path: Path,
) -> npt.NDArray[np.int64]:
    """PTB-XL strat folds as ints, after checking their range and patient-disjointness."""
    folds = strat_fold.to_numpy(dtype=np.float64)
    bad = sorted({f for f in folds if f not in PTBXL_SPLIT_OF_FOLD})
    if bad:
        raise EcgflowError(f"{path}: strat_fold must be 1..10, found {examples(bad)}")
    folds = folds.astype(np.int64)
    per_group = pd.DataFrame({"group": group_of_row, "fold": folds})
    n_folds = per_group.groupby("group")["fold"].nunique()
    mixed = n_folds.index[n_folds > 1]
    if len(mixed):
        described = []
        for group in mixed[:_EXAMPLES]:
            rows = np.flatnonzero(group_of_row == group)
            ids = ", ".join(records["record_id"].iloc[rows])
            in_folds = ", ".join(map(str, sorted(set(folds[rows]))))
            described.append(f"{display[rows[0]]}: records {ids} in strat folds {in_folds}")
        raise EcgflowError(
            f"{path}: strat_fold is not patient-disjoint: {len(mixed)} patient(s) have records "
            f"in several strat folds ({'; '.join(described)}"
            f"{'; ...' if len(mixed) > _EXAMPLES else ''}); use_strat_fold=False stratifies "
            "by patient instead"
        )
    return folds


def _cv_folds(
    params: SplitParams,
    split_of_row: npt.NDArray[np.intp],
    strat_folds: npt.NDArray[np.int64] | None,
    matrix: npt.NDArray[np.int64],
    group_of_row: npt.NDArray[np.intp],
    rng: np.random.Generator,
) -> tuple[npt.NDArray[np.int64] | None, str | None]:
    """CV fold (1..K) of every train + val record, 0 for test; ``(None, None)`` without folds."""
    if params.folds is None:
        return None, None
    fold = np.zeros(len(split_of_row), dtype=np.int64)
    development = split_of_row != SPLITS.index("test")
    if strat_folds is not None and params.folds == PTBXL_CV_FOLDS:
        fold[development] = strat_folds[development]
        return fold, METHOD_STRAT_FOLD
    if development.any():
        _, groups = np.unique(group_of_row[development], return_inverse=True)
        ratios = [1.0 / params.folds] * params.folds
        fold[development] = stratified_group_split(matrix[development], groups, ratios, rng) + 1
    return fold, METHOD_STRATIFIED


# --- outputs -----------------------------------------------------------------------------------


def _write_split(
    out_dir: Path,
    record_ids: pd.Series,
    split_of_row: npt.NDArray[np.intp],
    fold: npt.NDArray[np.int64] | None,
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    folds = pa.nulls(len(split_of_row), pa.int32())
    if fold is not None:
        folds = pa.array(fold, pa.int32(), mask=fold == 0)
    table = pa.Table.from_arrays(
        [
            pa.array(record_ids.tolist(), pa.string()),
            pa.array([SPLITS[i] for i in split_of_row], pa.string()),
            folds,
        ],
        schema=SPLIT_SCHEMA,
    )
    pq.write_table(table, out_dir / SPLIT)


def _subset_summary(
    names: list[str], matrix: npt.NDArray[np.int64], rows: npt.NDArray[np.bool_], groups: int
) -> dict[str, Any]:
    n = int(rows.sum())
    positives = matrix[rows].sum(axis=0)
    return {
        "n_records": n,
        "n_patients": groups,
        "n_unlabelled": int((matrix[rows].sum(axis=1) == 0).sum()),
        "positives": {name: int(p) for name, p in zip(names, positives, strict=True)},
        "prevalence": {
            name: (round(float(p) / n, 6) if n else None)
            for name, p in zip(names, positives, strict=True)
        },
    }


def _max_deviation(names: list[str], overall: dict[str, Any], parts: list[dict[str, Any]]) -> dict:
    """Per label: the largest |prevalence of a non-empty part − overall prevalence|."""
    return {
        name: round(
            max(
                (
                    abs(p["prevalence"][name] - overall["prevalence"][name])
                    for p in parts
                    if p["n_records"]
                ),
                default=0.0,
            ),
            6,
        )
        for name in names
    }


def _report(
    params: SplitParams,
    method: str,
    fold_method: str | None,
    names: list[str],
    matrix: npt.NDArray[np.int64],
    split_of_row: npt.NDArray[np.intp],
    fold: npt.NDArray[np.int64] | None,
    group_of_row: npt.NDArray[np.intp],
) -> dict[str, Any]:
    def summary(rows: npt.NDArray[np.bool_]) -> dict[str, Any]:
        return _subset_summary(names, matrix, rows, len(np.unique(group_of_row[rows])))

    everything = np.ones(len(split_of_row), dtype=bool)
    overall = summary(everything)
    splits = {name: summary(split_of_row == i) for i, name in enumerate(SPLITS)}
    for part in splits.values():
        part["fraction"] = round(part["n_records"] / len(split_of_row), 6)
    report: dict[str, Any] = {
        "method": method,
        "seed": params.seed,
        "ratios": list(params.ratios),
        "ratios_applied": method == METHOD_STRATIFIED,
        "folds": params.folds,
        "fold_method": fold_method,
        "labels": names,
        "n_records": len(split_of_row),
        "n_patients": overall["n_patients"],
        "overall": overall,
        "splits": splits,
        "max_prevalence_deviation": _max_deviation(names, overall, list(splits.values())),
    }
    if fold is not None:
        development = summary(fold > 0)
        folds = {str(k): summary(fold == k) for k in range(1, int(params.folds or 0) + 1)}
        report["cv_folds"] = folds
        report["max_prevalence_deviation_folds"] = _max_deviation(
            names, development, list(folds.values())
        )
    return report
