"""The eval component through ``.python_func`` on a tiny (untrained) classifier and real data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kfp.dsl import ClassificationMetrics, Dataset, Markdown, Metrics

from ecgflow.artifacts import METRICS
from ecgflow.components.evaluation.evaluate.component import evaluate
from ecgflow.components.tests.artifacts import artifact, classifier, mlflow_store, upstream
from ecgflow.params import EvalParams


def test_evaluate_scores_the_params_split_for_the_kfp_ui(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    made, model = upstream(tmp_path_factory), classifier(tmp_path_factory)
    evaluation, metrics = artifact(Dataset, tmp_path / "eval"), artifact(Metrics, tmp_path / "m")
    roc = artifact(ClassificationMetrics, tmp_path / "roc")
    summary = artifact(Markdown, tmp_path / "summary.md")
    with mlflow_store(tmp_path_factory):
        evaluate.python_func(
            classifier=model,
            data=made.data,
            labels=made.labels,
            records=made.records,
            params=EvalParams(split="val", bootstrap=5, plots=False).model_dump_json(),
            evaluation=evaluation,
            metrics=metrics,
            classification=roc,
            summary=summary,
        )
    saved = json.loads((Path(evaluation.path) / METRICS).read_text(encoding="utf-8"))
    assert saved["split"] == "val" and saved["n_records"] == 6  # the params: 6 val records
    assert saved["bootstrap"] == 5
    assert "macro_auroc" in metrics.metadata and "data_hash" in evaluation.metadata
    assert "confidenceMetrics" in roc.metadata and "confusionMatrix" in roc.metadata
    assert Path(summary.path).read_text(encoding="utf-8").strip()
