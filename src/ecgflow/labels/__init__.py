"""Label sets: turn ingested records into a multi-hot label matrix.

A label set is named by a string; some take an argument after a colon::

    ptbxl-superdiagnostic | ptbxl-subdiagnostic | ptbxl-diagnostic | ptbxl-form | ptbxl-rhythm
    ptbxl-all | cinc2020-scored | cinc2021-scored | synthetic
    report-patterns[:CONFIG]        (YAML/JSON pattern config; default: ECG-FM-style 17 labels)
    mapping:CSV                     (user mapping with columns source,label)
    auto                            (the usual set for the ingested dataset, see AUTO_LABEL_SETS)

Every labeler takes the rows of ``records.parquet`` (a DataFrame) and the ingest ``raw/`` folder
and returns a :class:`Labeling`: the label columns in the set's order and a uint8 matrix with one
row per record, in records order. The modules: :mod:`.ptbxl`, :mod:`.cinc`,
:mod:`.report_patterns`, :mod:`.mapping` (also the synthetic set).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgflow.errors import EcgflowError
from ecgflow.plugins import Registry

PTBXL_LEVELS = ("superdiagnostic", "subdiagnostic", "diagnostic", "form", "rhythm", "all")

#: What ``auto`` picks for each ingested dataset kind.
AUTO_LABEL_SETS = {
    "ptbxl": "ptbxl-superdiagnostic",
    "cinc": "cinc2021-scored",
    "synthetic": "synthetic",
}

#: Column names a label may not take: they are the other columns of labels.parquet.
RESERVED_NAMES = frozenset({"record_id", "no_label"})


@dataclass(frozen=True)
class LabelSpec:
    """One label column: its name and what it means."""

    name: str
    description: str


@dataclass
class Labeling:
    """A label set applied to records: columns, the 0/1 matrix, and provenance.

    ``matrix`` is uint8 ``[n_records, n_labels]`` in records order. ``inputs`` maps each file the
    labeler read (besides records.parquet) to its SHA-256; ``info`` holds set-specific facts
    that go into ``label_def.json`` (e.g. which scoring table was used). ``uncertain``, when
    set, is a boolean matrix of cells the labeler could not decide (report-patterns with
    ``uncertain: ignore``), for masking them out of a loss.
    """

    labels: list[LabelSpec]
    matrix: np.ndarray
    inputs: dict[str, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    uncertain: np.ndarray | None = None

    @property
    def names(self) -> list[str]:
        """The label column names, in order."""
        return [spec.name for spec in self.labels]


#: A labeler: (records, raw_dir, the argument after ``:`` or None) → the labeling.
Labeler = Callable[[pd.DataFrame, Path, "str | None"], Labeling]
#: label-set name → labeler; each imports its module (pandas tables, YAML) when it runs
LABELERS: Registry[Labeler] = Registry("label set")


def _ptbxl(level: str) -> Labeler:
    def labeler(records: pd.DataFrame, raw_dir: Path, arg: str | None) -> Labeling:
        from ecgflow.labels.ptbxl import ptbxl_labels

        return ptbxl_labels(level, records, raw_dir)

    return labeler


def _cinc(year: int) -> Labeler:
    def labeler(records: pd.DataFrame, raw_dir: Path, arg: str | None) -> Labeling:
        from ecgflow.labels.cinc import cinc_labels

        return cinc_labels(year, records, raw_dir)

    return labeler


for _level in PTBXL_LEVELS:
    LABELERS.register(f"ptbxl-{_level}")(_ptbxl(_level))
LABELERS.register("cinc2020-scored")(_cinc(2020))
LABELERS.register("cinc2021-scored")(_cinc(2021))


@LABELERS.register("report-patterns")
def _report_patterns(records: pd.DataFrame, raw_dir: Path, arg: str | None) -> Labeling:
    from ecgflow.labels.report_patterns import report_labels

    return report_labels(records, Path(arg) if arg else None)


@LABELERS.register("mapping")
def _mapping(records: pd.DataFrame, raw_dir: Path, arg: str | None) -> Labeling:
    from ecgflow.labels.mapping import mapping_labels

    return mapping_labels(records, Path(str(arg)))


@LABELERS.register("synthetic")
def _synthetic(records: pd.DataFrame, raw_dir: Path, arg: str | None) -> Labeling:
    from ecgflow.labels.mapping import synthetic_labels

    return synthetic_labels(records)


_ARGUMENT = {"report-patterns": "[:CONFIG]", "mapping": ":CSV"}
#: Accepted label-set names, as shown by ``--help`` (``[:X]`` optional, ``:X`` required).
LABEL_SETS: list[str] = [*(n + _ARGUMENT.get(n, "") for n in LABELERS.names()), "auto"]


def parse_label_set(label_set: str) -> tuple[str, str | None]:
    """``"mapping:/x.csv"`` → ``("mapping", "/x.csv")``; checks the name and its argument."""
    name, sep, arg = label_set.strip().partition(":")
    if name not in LABELERS and name != "auto":
        raise EcgflowError(
            f"unknown label set {label_set!r}; valid label sets: {', '.join(LABEL_SETS)}"
        )
    arg = arg.strip() if sep else None
    if name == "mapping" and not arg:
        raise EcgflowError("label set 'mapping' needs a CSV file: mapping:/path/to/map.csv")
    if name not in ("mapping", "report-patterns") and sep:
        raise EcgflowError(f"label set {name!r} takes no ':' argument (got {label_set!r})")
    if name == "report-patterns" and sep and not arg:
        raise EcgflowError("label set 'report-patterns:' needs a config file after the colon")
    return name, arg


def resolve_label_set(label_set: str, records: pd.DataFrame) -> str:
    """Replace ``auto`` by the usual label set of the records' dataset (one dataset only)."""
    if label_set.strip() != "auto":
        return label_set
    datasets = sorted(set(records["dataset"].dropna()))
    if len(datasets) == 1 and datasets[0] in AUTO_LABEL_SETS:
        return AUTO_LABEL_SETS[datasets[0]]
    raise EcgflowError(
        f"label set 'auto' knows datasets {sorted(AUTO_LABEL_SETS)}, these records come from "
        f"{datasets or 'no dataset'}; choose a label set: {', '.join(LABEL_SETS)}"
    )


def build_labels(label_set: str, records: pd.DataFrame, raw_dir: Path) -> Labeling:
    """Apply ``label_set`` to ``records`` (rows of records.parquet) with the ingest ``raw/``."""
    name, arg = parse_label_set(label_set)
    labeling = LABELERS.get(name)(records, raw_dir, arg)
    _check_names(labeling.names, label_set)
    return labeling


def _check_names(names: list[str], label_set: str) -> None:
    clashes = sorted(RESERVED_NAMES.intersection(names))
    if clashes:
        raise EcgflowError(f"label set {label_set!r}: label name(s) {clashes} are reserved")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise EcgflowError(f"label set {label_set!r}: duplicate label name(s) {duplicates}")


# --- helpers shared by the labelers -----------------------------------------------------------


def explode_labels(records: pd.DataFrame) -> pd.DataFrame:
    """Long form of records.parquet ``labels``: columns ``row`` (record position) and ``value``."""
    values = records["labels"].reset_index(drop=True).explode().dropna()
    return pd.DataFrame({"row": values.index.to_numpy(np.int64), "value": values.astype(str)})


def multi_hot(
    n_rows: int,
    rows: Sequence[int] | np.ndarray,
    targets: Sequence[str] | pd.Series,
    labels: list[str],
) -> np.ndarray:
    """uint8 ``[n_rows, len(labels)]`` with 1 at each (row, target); unknown targets are skipped."""
    columns = pd.Index(labels).get_indexer(pd.Index(list(targets), dtype=object))
    rows = np.asarray(rows, dtype=np.int64)
    known = columns >= 0
    matrix = np.zeros((n_rows, len(labels)), dtype=np.uint8)
    matrix[rows[known], columns[known]] = 1
    return matrix


def describe_records(records: pd.DataFrame) -> str:
    """``"dataset 'cinc'"``-style words for error messages about the wrong data."""
    datasets = sorted({str(d) for d in records.get("dataset", pd.Series(dtype=str)).dropna()})
    return f"dataset {', '.join(repr(d) for d in datasets) or 'unknown'}"
