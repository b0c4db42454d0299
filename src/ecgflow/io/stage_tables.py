"""Reading the parquet tables one stage hands the next (records, labels, split), checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ecgflow.errors import EcgflowError

_EXAMPLES = 5


def examples(values: Any) -> str:
    """The first few of ``values`` as a readable list for an error message."""
    values = list(values)
    shown = ", ".join(
        repr(v.item() if isinstance(v, np.generic) else v) for v in values[:_EXAMPLES]
    )
    return shown + (", ..." if len(values) > _EXAMPLES else "")


def read_stage_table(path: Path, required: tuple[str, ...], what: str) -> pd.DataFrame:
    """``path`` as a frame with string, unique, non-missing ``record_id``s.

    ``what`` names the stage that writes the table, for the error raised when it is missing,
    unreadable, lacks a ``required`` column or has missing or repeated record ids.
    """
    if not path.is_file():
        raise EcgflowError(f"{path}: not found (expected the {what} stage's output)")
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise EcgflowError(f"{path}: not a readable parquet file ({exc})") from None
    missing = [name for name in required if name not in table.column_names]
    if missing:
        raise EcgflowError(f"{path}: missing column(s) {', '.join(map(repr, missing))}")
    frame = table.to_pandas()
    ids = frame["record_id"]
    if ids.isna().any():
        raise EcgflowError(f"{path}: {int(ids.isna().sum())} row(s) have no record_id")
    duplicated = ids[ids.duplicated()].unique()
    if duplicated.size:
        raise EcgflowError(
            f"{path}: {duplicated.size} record_id(s) appear more than once "
            f"(e.g. {examples(duplicated)})"
        )
    frame["record_id"] = ids.astype(str)
    return frame
