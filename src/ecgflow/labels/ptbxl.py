"""PTB-XL SCP-ECG label sets, aggregated as in the PTB-XL benchmark.

Follows ``utils.compute_label_aggregations`` / ``select_data`` of Strodthoff et al. 2020 ("Deep
learning for ECG analysis: benchmarks and insights from PTB-XL", github.com/helme/ecg_ptbxl_
benchmarking), reading the statement table ``scp_statements.csv`` that ingest copies to ``raw/``:

* ``superdiagnostic``: for every key of a record's ``scp_codes`` whose statement has
  ``diagnostic == 1``, its ``diagnostic_class`` (NaN classes skipped); columns NORM, MI, STTC,
  CD, HYP (the benchmark's MultiLabelBinarizer would sort them: CD, HYP, MI, NORM, STTC).
* ``subdiagnostic``: the same with ``diagnostic_subclass``.
* ``diagnostic``: the keys themselves whose statement has ``diagnostic == 1``.
* ``form`` / ``rhythm``: the keys whose statement has ``form == 1`` / ``rhythm == 1``.
* ``all``: every key (the benchmark's ``all_scp = set(scp_codes.keys())``).

Like the benchmark, every key of ``scp_codes`` counts whatever its likelihood value (the
benchmark iterates ``y_dic.keys()`` and never looks at the value): ``{"NORM": 100.0,
"SR": 0.0}`` sets both NORM and SR. Differences from the benchmark, on purpose:

* The columns are every class/code the statement table defines for the level (sorted by code,
  Python string order; superdiagnostic in the fixed order above), not only those present in the
  data, so column sets do not change between subsets. The benchmark's ``min_samples`` filter
  (0 in its experiments) is not applied; zero-count columns get ``pos_weight: null``.
* Records with no label in the set are kept (``no_label``) unless the stage's ``drop_empty``
  is set, which then matches the benchmark's ``X[Y.<level>_len > 0]``.
* A code missing from the statement table cannot have a column in ``all``; such codes are
  counted in ``info.unknown_codes`` and logged.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ecgflow.errors import EcgflowError
from ecgflow.labels import PTBXL_LEVELS, Labeling, LabelSpec, describe_records, multi_hot
from ecgflow.manifest import sha256_file

log = logging.getLogger(__name__)

STATEMENTS = "scp_statements.csv"
SUPERCLASSES = {
    "NORM": "normal ECG",
    "MI": "myocardial infarction",
    "STTC": "ST/T change",
    "CD": "conduction disturbance",
    "HYP": "hypertrophy",
}
_COLUMNS = (
    "description",
    "diagnostic",
    "form",
    "rhythm",
    "diagnostic_class",
    "diagnostic_subclass",
)


def read_statements(path: Path) -> pd.DataFrame:
    """The SCP statement table indexed by code, with boolean flag columns."""
    if not path.is_file():
        raise EcgflowError(
            f"{path}: not found; the ptbxl-* label sets need PTB-XL's {STATEMENTS}, which "
            "ingest copies from the dataset folder (ingest with ptbxl:<folder>)"
        )
    try:
        table = pd.read_csv(path, index_col=0)
    except (ValueError, pd.errors.ParserError) as exc:
        raise EcgflowError(f"{path}: not a readable CSV ({exc})") from exc
    missing = [c for c in _COLUMNS if c not in table.columns]
    if missing:
        raise EcgflowError(f"{path}: missing column(s) {missing} of the SCP statement table")
    table.index = table.index.astype(str)
    for flag in ("diagnostic", "form", "rhythm"):
        table[flag] = table[flag].fillna(0).astype(float) == 1.0
    return table


def ptbxl_labels(level: str, records: pd.DataFrame, raw_dir: Path) -> Labeling:
    """Label ``records`` with the PTB-XL ``level`` set (see the module docstring)."""
    if level not in PTBXL_LEVELS:
        raise EcgflowError(f"unknown PTB-XL level {level!r}; valid: {', '.join(PTBXL_LEVELS)}")
    pairs = record_codes(records)
    statements = read_statements(raw_dir / STATEMENTS)
    target, specs = _level_mapping(level, statements)
    hits = pairs.merge(target, left_on="code", right_index=True, how="inner")
    names = [spec.name for spec in specs]
    matrix = multi_hot(len(records), hits["row"], hits["label"], names)
    unknown = sorted(set(pairs["code"]) - set(statements.index))
    if unknown:
        log.warning("ptbxl-%s: codes not in %s: %s", level, STATEMENTS, unknown)
    return Labeling(
        labels=specs,
        matrix=matrix,
        inputs={f"raw/{STATEMENTS}": sha256_file(raw_dir / STATEMENTS)},
        info={"level": level, "unknown_codes": unknown, "likelihood_threshold": None},
    )


def record_codes(records: pd.DataFrame) -> pd.DataFrame:
    """Long form ``row, code`` of every key of every record's ``scp_codes`` JSON object."""
    codes = records["scp_codes"].reset_index(drop=True)
    if codes.isna().all():
        raise EcgflowError(
            f"records.parquet ({describe_records(records)}) has no scp_codes: the ptbxl-* label "
            "sets need PTB-XL records (ingest with ptbxl:<folder>)"
        )
    missing = codes.isna()
    if missing.any():
        ids = records["record_id"].reset_index(drop=True)[missing].head(5).tolist()
        raise EcgflowError(
            f"records.parquet: {int(missing.sum())} record(s) without scp_codes (first: {ids})"
        )
    rows: list[int] = []
    values: list[str] = []
    for row, text in enumerate(codes):
        keys = _scp_keys(text, records["record_id"].iat[row])
        rows.extend([row] * len(keys))
        values.extend(keys)
    return pd.DataFrame({"row": np.asarray(rows, dtype=np.int64), "code": values})


def _scp_keys(text: str, record_id: str) -> list[str]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EcgflowError(f"record {record_id}: scp_codes is not JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise EcgflowError(f"record {record_id}: scp_codes is not a JSON object: {text[:60]!r}")
    return [str(key) for key in value]


def _level_mapping(level: str, statements: pd.DataFrame) -> tuple[pd.DataFrame, list[LabelSpec]]:
    """Code → label table (index code, column ``label``) and the ordered label columns."""
    if level in ("superdiagnostic", "subdiagnostic"):
        column = "diagnostic_class" if level == "superdiagnostic" else "diagnostic_subclass"
        diagnostic = statements[statements["diagnostic"]]
        target = diagnostic[column].dropna().astype(str).rename("label").to_frame()
        if level == "superdiagnostic":
            extra = sorted(set(target["label"]) - set(SUPERCLASSES))
            names = [*SUPERCLASSES, *extra]
            describe = {**SUPERCLASSES, **{name: name for name in extra}}
        else:
            names = sorted(set(target["label"]))
            describe = {name: _subclass_description(name, target, statements) for name in names}
        return target, [LabelSpec(name, describe[name]) for name in names]
    if level == "all":
        selected = statements
    else:
        selected = statements[statements["diagnostic" if level == "diagnostic" else level]]
    codes = sorted(selected.index)
    target = pd.DataFrame({"label": codes}, index=pd.Index(codes, name="code"))
    specs = [LabelSpec(code, str(statements.at[code, "description"])) for code in codes]
    return target, specs


def _subclass_description(name: str, target: pd.DataFrame, statements: pd.DataFrame) -> str:
    """A subclass named like a statement takes its description; others list their members."""
    if name in statements.index:
        return str(statements.at[name, "description"])
    members = sorted(target.index[target["label"] == name])
    return "; ".join(str(statements.at[code, "description"]) for code in members)
