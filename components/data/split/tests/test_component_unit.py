"""The split component through ``.python_func``: ratios and seed come from the params JSON."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from kfp.dsl import Dataset, Metrics

from ecgflow.artifacts import RECORDS, SPLIT
from ecgflow.components.data.split.component import split
from ecgflow.components.tests.artifacts import artifact, upstream
from ecgflow.params import SplitParams


def test_split_is_patient_disjoint_with_the_params_ratios(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    made = upstream(tmp_path_factory)
    splits, metrics = artifact(Dataset, tmp_path / "splits"), artifact(Metrics, tmp_path / "m")
    split.python_func(
        records=made.records,
        labels=made.labels,
        params=SplitParams(ratios=(0.5, 0.25, 0.25), seed=3).model_dump_json(),
        splits=splits,
        metrics=metrics,
    )
    table = pd.read_parquet(Path(splits.path) / SPLIT)
    assert len(table) == 30 and set(table["split"]) == {"train", "val", "test"}
    patients = pd.read_parquet(
        Path(made.records.path) / RECORDS, columns=["record_id", "patient_id"]
    )
    by_patient = table.merge(patients, on="record_id").groupby("patient_id")["split"]
    assert by_patient.nunique().max() == 1
    assert 10 <= (table["split"] == "train").sum() <= 20  # about half, by patient
    assert splits.metadata["method"]
