"""The render-images component through ``.python_func``: paper PNGs of the splits asked for."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from kfp.dsl import Dataset, Metrics

from ecgflow.artifacts import IMAGES
from ecgflow.components.data.render_images.component import render_images
from ecgflow.components.tests.artifacts import artifact, upstream
from ecgflow.params import RenderParams


def test_render_images_draws_the_params_splits_only(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    made = upstream(tmp_path_factory)
    images, metrics = artifact(Dataset, tmp_path / "images"), artifact(Metrics, tmp_path / "m")
    params = RenderParams(dpi=40, splits=["test"], workers=1)
    render_images.python_func(
        data=made.data,
        records=made.records,
        params=params.model_dump_json(),
        images=images,
        metrics=metrics,
    )
    table = pd.read_parquet(Path(images.path) / IMAGES)
    pngs = list(Path(images.path).rglob("*.png"))
    assert len(table) == len(pngs) == 6  # the 6 test records, one paper image each
    assert images.metadata and metrics.metadata
