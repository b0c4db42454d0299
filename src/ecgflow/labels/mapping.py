"""Label sets that map record values straight to labels: a user mapping CSV, and ``synthetic``.

``mapping:CSV``: a CSV with a header row and columns ``source,label``. ``source`` is a value
found in records.parquet ``labels`` (a code, a class name) or a ``record_id``; a record gets
every label of every source it matches (multi-hot). Columns: the labels in order of first
appearance in the CSV, then ``OTHER`` for records no row matched (a mapping that names
``OTHER`` itself shares that column). So every record has at least one label here.

``synthetic``: the classes of :data:`ecgflow.io.synthetic_ecg.SYNTHETIC_CLASSES`, in that order;
records.parquet ``labels`` holds the class name of each synthetic record.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ecgflow.errors import EcgflowError
from ecgflow.io.synthetic_ecg import SYNTHETIC_CLASSES
from ecgflow.labels import Labeling, LabelSpec, describe_records, explode_labels, multi_hot
from ecgflow.manifest import sha256_file

log = logging.getLogger(__name__)

OTHER = "OTHER"
_COLUMNS = ("source", "label")


def read_mapping(path: Path) -> pd.DataFrame:
    """The mapping rows (``source``, ``label``, ``line``), checked; errors name file and line."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.reader(handle))
    except FileNotFoundError:
        raise EcgflowError(f"{path}: mapping CSV not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise EcgflowError(f"{path}: unreadable mapping CSV ({exc})") from exc
    if not rows:
        raise EcgflowError(f"{path}: empty mapping CSV; expected a header 'source,label'")
    header = [cell.strip() for cell in rows[0]]
    if header != list(_COLUMNS):
        raise EcgflowError(
            f"{path} line 1: header is {header}, expected exactly ['source', 'label']"
        )
    entries = []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue  # blank line
        if len(row) != len(_COLUMNS):
            raise EcgflowError(
                f"{path} line {line}: {len(row)} field(s), expected 2 (source,label)"
            )
        source, label = (cell.strip() for cell in row)
        if not source or not label:
            missing = "source" if not source else "label"
            raise EcgflowError(f"{path} line {line}: empty {missing}")
        entries.append((source, label, line))
    if not entries:
        raise EcgflowError(f"{path}: no mapping rows below the header")
    return pd.DataFrame(entries, columns=["source", "label", "line"]).drop_duplicates(
        ["source", "label"]
    )


def mapping_labels(records: pd.DataFrame, path: Path) -> Labeling:
    """Label ``records`` with the user mapping CSV at ``path`` (see the module docstring)."""
    mapping = read_mapping(path)
    values = explode_labels(records)
    ids = pd.DataFrame(
        {"row": np.arange(len(records), dtype=np.int64), "value": records["record_id"].astype(str)}
    )
    candidates = pd.concat([values, ids], ignore_index=True)
    hits = candidates.merge(mapping, left_on="value", right_on="source", how="inner")
    names = list(dict.fromkeys(mapping["label"]))
    if OTHER not in names:
        names.append(OTHER)
    matrix = multi_hot(len(records), hits["row"], hits["label"], names)
    other = names.index(OTHER)
    matrix[matrix.sum(axis=1) == 0, other] = 1
    unused = sorted(set(mapping["source"]) - set(hits["source"]))
    if unused:
        log.warning("%s: %d source(s) match no record: %s", path, len(unused), unused[:10])
    specs = [LabelSpec(name, _describe(name, mapping)) for name in names]
    info = {"mapping_rows": len(mapping), "unused_sources": unused}
    return Labeling(specs, matrix, inputs={path.name: sha256_file(path)}, info=info)


def _describe(name: str, mapping: pd.DataFrame) -> str:
    sources = mapping.loc[mapping["label"] == name, "source"].tolist()
    mapped = f"mapped from {', '.join(sources)}" if sources else ""
    if name != OTHER:
        return mapped
    return "records no mapping row matched" + (f"; also {mapped}" if mapped else "")


def synthetic_labels(records: pd.DataFrame) -> Labeling:
    """Label synthetic records by the generator class in their ``labels``."""
    values = explode_labels(records)
    unknown = values[~values["value"].isin(SYNTHETIC_CLASSES)]
    if len(values) == 0 or len(unknown):
        example = (
            f" (record {records['record_id'].iat[int(unknown['row'].iat[0])]} has "
            f"{unknown['value'].iat[0]!r})"
            if len(unknown)
            else ""
        )
        raise EcgflowError(
            "label set 'synthetic' needs records from synthetic:// whose labels are generator "
            f"classes ({', '.join(SYNTHETIC_CLASSES)}); {describe_records(records)}{example}"
        )
    names = list(SYNTHETIC_CLASSES)
    matrix = multi_hot(len(records), values["row"], values["value"], names)
    specs = [LabelSpec(name, name.replace("_", " ")) for name in names]
    return Labeling(specs, matrix)
