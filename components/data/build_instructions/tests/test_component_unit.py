"""The build-instructions component through ``.python_func``: question sets per split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kfp.dsl import Dataset, Metrics

from ecgflow.components.data.build_instructions.component import build_instructions
from ecgflow.components.tests.artifacts import artifact, upstream
from ecgflow.params import BuildInstructionsParams


def test_build_instructions_writes_the_questions_its_params_ask_for(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    made = upstream(tmp_path_factory)
    out, metrics = artifact(Dataset, tmp_path / "instr"), artifact(Metrics, tmp_path / "m")
    params = BuildInstructionsParams(noise_questions_per_record=2, report_questions=False)
    build_instructions.python_func(
        records=made.records,
        labels=made.labels,
        splits=made.splits,
        qa="",
        params=params.model_dump_json(),
        instructions=out,
        metrics=metrics,
    )
    train = json.loads((Path(out.path) / "train.json").read_text(encoding="utf-8"))
    kinds = {item["meta"]["kind"] for item in train}
    assert "label" in kinds and "report" not in kinds  # report_questions is off in the params
    assert len({item["record_id"] for item in train}) == 18  # every train record
    assert out.metadata and metrics.metadata
