"""The eval-gem component through ``.python_func`` with a stand-in stage (a GEM needs its LM)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kfp.dsl import Dataset, Metrics, Model

import ecgflow.stages.eval_gem
from ecgflow.components.evaluation.eval_gem.component import eval_gem
from ecgflow.components.tests.artifacts import StageCall, artifact
from ecgflow.params import EvalGemParams


def test_the_params_and_every_question_file_reach_the_stage(tmp_path: Path) -> None:
    params = EvalGemParams(split="val", max_new_tokens=8)
    evaluation, metrics = artifact(Dataset, tmp_path / "eval"), artifact(Metrics, tmp_path / "m")
    call = StageCall({"qa_accuracy": 0.5})

    def headline(result: dict[str, Any]) -> dict[str, float]:
        return {"qa_accuracy": result["qa_accuracy"], "n_questions": 4.0}

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ecgflow.stages.eval_gem, "eval_gem", call)
        patch.setattr(ecgflow.stages.eval_gem, "headline", headline)
        eval_gem.python_func(
            gem=artifact(Model, tmp_path / "gem"),
            data=artifact(Dataset, tmp_path / "data"),
            labels=artifact(Dataset, tmp_path / "labels"),
            instructions=artifact(Dataset, tmp_path / "instructions"),
            qa=" a.json, ,b.json",
            params=params.model_dump_json(),
            evaluation=evaluation,
            metrics=metrics,
        )
    settings, model_dir, data_dir, qa_files, out_dir = call.args
    assert settings == params
    assert (model_dir, data_dir, out_dir) == (
        tmp_path / "gem" / "model",
        tmp_path / "data",
        tmp_path / "eval",
    )
    assert qa_files == [tmp_path / "instructions" / "test.json", Path("a.json"), Path("b.json")]
    assert call.kwargs == {"labels_dir": tmp_path / "labels"}
    assert metrics.metadata == {"qa_accuracy": 0.5, "n_questions": 4.0}
    assert evaluation.metadata["qa_accuracy"] == 0.5
