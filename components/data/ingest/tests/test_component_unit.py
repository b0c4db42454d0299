"""The ingest component through ``.python_func``: the params JSON reaches the stage."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from kfp.dsl import Dataset, Metrics

from ecgflow.artifacts import RECORDS
from ecgflow.components.data.ingest.component import ingest
from ecgflow.components.tests.artifacts import SOURCE, artifact, upstream
from ecgflow.errors import EcgflowError
from ecgflow.params import IngestParams


def test_ingest_writes_the_records_its_params_ask_for(tmp_path: Path) -> None:
    records, metrics = artifact(Dataset, tmp_path / "records"), artifact(Metrics, tmp_path / "m")
    ingest.python_func(
        params=IngestParams(source=SOURCE, limit=7, workers=1).model_dump_json(),
        records=records,
        metrics=metrics,
    )
    table = pd.read_parquet(Path(records.path) / RECORDS)
    assert len(table) == 7  # the limit in the params JSON was applied
    assert records.metadata["dataset"] == "synthetic"
    assert records.metadata["accepted"] == metrics.metadata["accepted"] == 7
    assert "step_timing" in records.metadata


def test_ingest_refuses_params_outside_the_model(tmp_path: Path) -> None:
    with pytest.raises(EcgflowError, match="limit"):
        ingest.python_func(
            params='{"source": "synthetic://?n=3", "limit": -1}',
            records=artifact(Dataset, tmp_path / "r"),
            metrics=artifact(Metrics, tmp_path / "m"),
        )


def test_the_session_dataset_is_30_records(tmp_path_factory: pytest.TempPathFactory) -> None:
    made = upstream(tmp_path_factory)
    assert made.records.metadata["accepted"] == 30
