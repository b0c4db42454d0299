"""The label component through ``.python_func`` on the session's ingested records."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from kfp.dsl import Dataset, Metrics

from ecgflow.artifacts import LABEL_DEF, LABELS
from ecgflow.components.data.label.component import label
from ecgflow.components.tests.artifacts import artifact, upstream
from ecgflow.params import LabelParams


def test_label_writes_one_row_per_record_and_the_label_set(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    made = upstream(tmp_path_factory)
    labels, metrics = artifact(Dataset, tmp_path / "labels"), artifact(Metrics, tmp_path / "m")
    label.python_func(
        records=made.records,
        params=LabelParams(label_set="synthetic").model_dump_json(),
        labels=labels,
        metrics=metrics,
    )
    table = pd.read_parquet(Path(labels.path) / LABELS)
    label_def = json.loads((Path(labels.path) / LABEL_DEF).read_text(encoding="utf-8"))
    names = [entry["name"] for entry in label_def["labels"]]
    assert len(table) == 30 and set(names) <= set(table.columns)
    assert labels.metadata["label_set"] == "synthetic"
    assert metrics.metadata  # the stage's counts, logged for the KFP UI
