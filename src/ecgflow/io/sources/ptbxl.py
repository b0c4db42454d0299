"""PTB-XL in its PhysioNet layout: ``ptbxl_database.csv`` + ``records100/`` / ``records500/``.

record_id is ``ecg_id``; patient_id, age, sex, the free-text report, ``scp_codes`` with their
likelihoods and ``strat_fold`` come from the database CSV (Wagner et al., 2020).
"""

from __future__ import annotations

import ast
import io
import json
import logging
from typing import TYPE_CHECKING

from ecgflow.errors import EcgflowError
from ecgflow.io.sources.base import Discovery, RecordRef, clean_id, parse_age, parse_sex
from ecgflow.io.sources.spec import SourceSpec, int_option
from ecgflow.io.storage import Storage

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

DATABASE_CSV = "ptbxl_database.csv"
METADATA_FILES = (DATABASE_CSV, "scp_statements.csv")
_FILENAME_COLUMN = {100: "filename_lr", 500: "filename_hr"}


def discover(storage: Storage, spec: SourceSpec) -> Discovery:
    """One reference per row of ``ptbxl_database.csv`` at the chosen rate (100 or 500 Hz)."""
    rate = int_option(spec, "rate", 100)
    if rate not in _FILENAME_COLUMN:
        raise EcgflowError(f"source option rate={rate}: PTB-XL has rate=100 or rate=500")
    table = _read_database(storage)
    column = _FILENAME_COLUMN[rate]
    if column not in table.columns or "ecg_id" not in table.columns:
        raise EcgflowError(
            f"{storage.describe(DATABASE_CSV)}: missing column 'ecg_id' or {column!r}"
        )
    rows = zip(table.index, table.to_dict(orient="records"), strict=True)
    refs = [_row_to_ref(line, row, column) for line, row in rows]
    metadata = [name for name in METADATA_FILES if storage.exists(name)]
    log.info("PTB-XL at %s Hz: %d rows in %s", rate, len(refs), DATABASE_CSV)
    return Discovery("ptbxl", storage, refs, metadata)


def _read_database(storage: Storage) -> pd.DataFrame:
    import pandas as pd  # PTB-XL sources only (layout detection needs no pandas)

    raw = storage.read_bytes(DATABASE_CSV)
    try:
        table = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as exc:
        raise EcgflowError(f"{storage.describe(DATABASE_CSV)}: not a readable CSV ({exc})") from exc
    # Line numbers as a reader would see them in an editor (header is line 1).
    table.index = range(2, len(table) + 2)
    return table


def _row_to_ref(line: int, row: dict[str, str], filename_column: str) -> RecordRef:
    ecg_id = clean_id(row.get("ecg_id"))
    filename = (row.get(filename_column) or "").strip()
    key = f"{filename}.hea" if filename else f"{DATABASE_CSV}#line{line}"
    ref = RecordRef(key=key, record_id=ecg_id, patient_id=clean_id(row.get("patient_id")))
    problem = _row_problem(ecg_id, filename, filename_column)
    if problem:
        ref.error = f"{DATABASE_CSV} line {line}: unreadable metadata row ({problem})"
        return ref
    try:
        scp_codes = _parse_scp_codes(row.get("scp_codes", ""))
        strat_fold = int(row["strat_fold"]) if row.get("strat_fold", "").strip() else None
    except (ValueError, SyntaxError) as exc:
        ref.error = f"{DATABASE_CSV} line {line}: unreadable metadata row ({exc})"
        return ref
    ref.meta = {
        "age": parse_age(row.get("age")),
        "sex": parse_sex(row.get("sex")),
        "report": (row.get("report") or "").strip() or None,
        "labels": sorted(scp_codes),
        "scp_codes": json.dumps(scp_codes, sort_keys=True),
        "strat_fold": strat_fold,
    }
    return ref


def _row_problem(ecg_id: str | None, filename: str, column: str) -> str | None:
    if ecg_id is None:
        return "ecg_id is empty"
    if not ecg_id.isdigit():
        return f"ecg_id {ecg_id!r} is not an integer"
    if not filename:
        return f"{column} is empty"
    return None


def _parse_scp_codes(text: str) -> dict[str, float]:
    """``"{'NORM': 100.0, 'SR': 0.0}"`` → ``{"NORM": 100.0, "SR": 0.0}``."""
    if not text.strip():
        return {}
    value = ast.literal_eval(text)
    if not isinstance(value, dict):
        raise ValueError(f"scp_codes is not a dict literal: {text[:60]!r}")
    return {str(code): float(likelihood) for code, likelihood in value.items()}
