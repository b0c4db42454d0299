"""Small dataset copies that tests build in their tmp dirs from ../shared/data."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd


def ptbxl_copy(shared: Path, dest: Path, ecg_ids: list[int]) -> Path:
    """A PTB-XL folder in ``dest`` holding only ``ecg_ids`` (100 Hz files + metadata)."""
    table = pd.read_csv(shared / "ptbxl" / "ptbxl_database.csv", dtype=str, keep_default_na=False)
    table = table[table["ecg_id"].astype(int).isin(ecg_ids)]
    dest.mkdir(parents=True)
    table.to_csv(dest / "ptbxl_database.csv", index=False)
    shutil.copy(shared / "ptbxl" / "scp_statements.csv", dest)
    for filename in table["filename_lr"]:
        for suffix in (".hea", ".dat"):
            target = dest / f"{filename}{suffix}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(shared / "ptbxl" / f"{filename}{suffix}", target)
    return dest
