"""The PhysioNet/CinC Challenge 2020 and 2021 scoring tables, either year's layout.

``weights.csv``: a square reward table whose header row and first column name the classes.
2021 (evaluation-2021) joins equivalent codes with ``|`` (``713427006|59118001``: 26 classes);
the official 2020 file (evaluation-2020) lists all 27 scored codes, equivalent ones as separate
rows and columns with identical weights. Both are merged as the official scoring does
(``replace_equivalent_classes`` and ``load_weights`` of evaluation-2021's ``evaluate_model.py``;
the ``equivalent_classes`` list of evaluation-2020's ``evaluate_12ECG_score.py``): every code of
an equivalence set is replaced by the set's first code, the rows and columns that then repeat
must carry identical weights, and each class is kept once — 24 classes for 2020, 26 for 2021.

``dx_mapping_scored.csv`` / ``dx_mapping_unscored.csv``: one row per SNOMED CT code, its column
named ``SNOMEDCTCode`` (2021) or ``SNOMED CT Code`` (2020).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ecgflow.errors import EcgflowError

#: The Challenges' equivalent codes, representative first: the three pairs of the official
#: scripts' ``equivalent_classes`` and 2021's ``733534002|164909002`` (absent from 2020's table).
EQUIVALENT_CODES: tuple[tuple[str, ...], ...] = (
    ("713427006", "59118001"),
    ("284470004", "63593006"),
    ("427172004", "17338001"),
    ("733534002", "164909002"),
)
#: The code column of dx_mapping_*.csv: 2021's name first, then 2020's.
CODE_COLUMNS = ("SNOMEDCTCode", "SNOMED CT Code")
CODE = "SNOMEDCTCode"

_REPRESENTATIVE = {code: codes[0] for codes in EQUIVALENT_CODES for code in codes}


def representative(code: str) -> str:
    """The code an equivalent code is scored as (the first of its set), else the code itself."""
    return _REPRESENTATIVE.get(code, code)


def read_weights(path: Path) -> tuple[list[tuple[str, ...]], np.ndarray]:
    """The merged classes (codes in header order, representative first) and their weights."""
    try:
        table = pd.read_csv(path, index_col=0, dtype=str)
        values = table.to_numpy(dtype=np.float64)
    except FileNotFoundError:
        raise EcgflowError(f"{path}: not found (the Challenge's weights.csv)") from None
    except (ValueError, pd.errors.ParserError, OSError) as exc:
        raise EcgflowError(f"{path}: not a Challenge weights table ({exc})") from None
    columns = [_codes(h) for h in table.columns]
    if columns != [_codes(h) for h in table.index] or values.shape != (len(columns),) * 2:
        raise EcgflowError(f"{path}: rows and columns must list the same classes")
    if not columns or not np.isfinite(values).all():
        raise EcgflowError(f"{path}: empty, or non-numeric or missing weights")
    first: dict[str, int] = {}  # representative code → index of its first row
    merged: dict[str, list[str]] = {}
    for i, codes in enumerate(columns):
        key = representative(codes[0])
        if key in first:
            j = first[key]
            rows_equal = np.array_equal(values[i], values[j])
            if not (rows_equal and np.array_equal(values[:, i], values[:, j])):
                raise EcgflowError(
                    f"{path}: equivalent classes {table.columns[j]} and {table.columns[i]} "
                    "must have identical weights"
                )
        else:
            first[key] = i
        merged.setdefault(key, [])
        merged[key] += [c for c in codes if c not in merged[key]]
    keep = list(first.values())
    classes = [tuple(merged[key]) for key in first]
    return classes, values[np.ix_(keep, keep)]


def read_dx_mapping(path: Path, columns: tuple[str, ...] = ("Dx",)) -> pd.DataFrame:
    """A dx_mapping table of either year, its code column renamed to ``SNOMEDCTCode``, stripped."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError, OSError) as exc:
        raise EcgflowError(f"{path}: unreadable Challenge mapping table ({exc})") from exc
    table.columns = [str(c).strip() for c in table.columns]
    code = next((c for c in CODE_COLUMNS if c in table.columns), None)
    missing = sorted(set(columns) - set(table.columns))
    if code is None or missing:
        wanted = [" or ".join(repr(c) for c in CODE_COLUMNS)] if code is None else []
        raise EcgflowError(
            f"{path}: missing column(s) {', '.join(wanted + [repr(m) for m in missing])} "
            "of a Challenge mapping table"
        )
    table = table.rename(columns={code: CODE})
    for column in (CODE, *columns):
        table[column] = table[column].str.strip()
    return table


def _codes(header: object) -> tuple[str, ...]:
    return tuple(c.strip() for c in str(header).split("|"))
