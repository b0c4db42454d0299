"""The preprocess component through ``.python_func``: shards at the params' rate and length."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kfp.dsl import Dataset, Metrics

from ecgflow.artifacts import INDEX, PREPROCESS_JSON
from ecgflow.components.data.preprocess.component import preprocess
from ecgflow.components.tests.artifacts import artifact, upstream
from ecgflow.params import PreprocessParams


def test_preprocess_writes_shards_of_the_params_shape(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    made = upstream(tmp_path_factory)
    data, metrics = artifact(Dataset, tmp_path / "data"), artifact(Metrics, tmp_path / "m")
    params = PreprocessParams(fs=50.0, bandpass=(0.5, 20.0), length_s=4.0, workers=1)
    preprocess.python_func(
        records=made.records,
        splits=made.splits,
        params=params.model_dump_json(),
        data=data,
        metrics=metrics,
    )
    root = Path(data.path)
    saved = json.loads((root / PREPROCESS_JSON).read_text(encoding="utf-8"))
    assert saved["fs"] == 50.0 and saved["n_channels"] == 12
    index = pd.read_parquet(next(root.rglob(INDEX)))
    shard = np.load(next(root.rglob("*.npy")), mmap_mode="r")
    assert len(index) > 0 and shard.shape[1:] == (12, 200)  # 4 s at 50 Hz, 12 leads
    assert data.metadata and "step_timing" in data.metadata
