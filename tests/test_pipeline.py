"""The training pipeline compiles to KFP v2 YAML and runs locally through kfp.local."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from ecgflow.config import DEFAULT_IMAGE, PipelineConfig
from ecgflow.pipeline_runner import compile_pipeline, run_local


def test_pipeline_compiles_with_the_project_image(tmp_path: Path) -> None:
    path = compile_pipeline(tmp_path / "training.yaml")
    spec = yaml.safe_load(path.read_text())
    assert spec["pipelineInfo"]["name"] == "ecgflow-training"
    executors = spec["deploymentSpec"]["executors"]
    images = {e["container"]["image"] for e in executors.values()}
    assert images == {DEFAULT_IMAGE}
    assert {"comp-ingest", "comp-label", "comp-split", "comp-preprocess"} <= set(spec["components"])
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert {"source", "limit", "label_set", "ratios", "folds", "seed"} <= set(inputs)
    assert inputs["render_images"]["defaultValue"] is True
    tasks = spec["root"]["dag"]["tasks"]
    assert tasks["split"]["dependentTasks"] == ["ingest", "label"]
    # render-images sits in a condition on the render_images parameter
    condition = tasks["condition-1"]
    assert "render_images" in condition["triggerPolicy"]["condition"]
    branch = spec["components"][condition["componentRef"]["name"]]["dag"]["tasks"]
    assert set(branch) == {"render-images"}
    # the component runs ecgflow from the image; it must not pip-install kfp at run time
    command = " ".join(next(iter(executors.values()))["container"]["command"])
    assert "pip install" not in command


def test_pipeline_runs_locally_end_to_end(tmp_path: Path) -> None:
    config = PipelineConfig.model_validate({"ingest": {"source": "synthetic://?n=12&seed=1"}})
    result = run_local(config, tmp_path)
    records_dir = result.outputs["records"]
    records = pd.read_parquet(records_dir / "records.parquet")
    assert len(records) == 12
    assert (records_dir / "manifest.json").is_file()
    assert result.metadata["records"]["accepted"] == 12
    labels = pd.read_parquet(result.outputs["labels"] / "labels.parquet")
    assert labels["record_id"].tolist() == records["record_id"].tolist()
    assert result.metadata["labels"]["label_set"] == "synthetic"  # 'auto' resolved
    splits = pd.read_parquet(result.outputs["splits"] / "split.parquet")
    assert set(splits["split"]) <= {"train", "val", "test"} and len(splits) == 12
    data = result.outputs["data"]
    assert (data / "preprocess.json").is_file()
    per_split = {k: v for k, v in result.metadata["data"].items() if k.startswith("n_")}
    assert sum(per_split.values()) == 12, per_split
    assert str(records_dir).startswith(str(tmp_path / "pipeline-runs"))
    (run_dir,) = (tmp_path / "pipeline-runs").iterdir()
    images = pd.read_parquet(run_dir / "render-images" / "images" / "images.parquet")
    assert len(images) == 12 and set(images["kind"]) == {"paper"}


def test_pipeline_render_switch_off(tmp_path: Path) -> None:
    config = PipelineConfig.model_validate(
        {"ingest": {"source": "synthetic://?n=4&seed=1"}, "render_images": False}
    )
    run_local(config, tmp_path)
    (run_dir,) = (tmp_path / "pipeline-runs").iterdir()
    assert (run_dir / "preprocess").is_dir()
    assert not (run_dir / "render-images").exists()


def test_cli_run_prints_output_location(tmp_path: Path) -> None:
    env = {**os.environ, "ECGFLOW_HOME": str(tmp_path)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(
        [sys.executable, "-m", "ecgflow.cli", "run", "--source", "synthetic://?n=5&seed=2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"outputs: {tmp_path / 'pipeline-runs'}" in proc.stdout
