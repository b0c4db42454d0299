"""The training pipeline compiles to KFP v2 YAML and runs locally through kfp.local."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ecgflow.config import DEFAULT_IMAGE, PipelineConfig, load_config
from ecgflow.pipeline_runner import compile_pipeline, run_local

ROOT = Path(__file__).resolve().parents[1]
#: Training small enough for a test: one epoch of tiny models.
TINY_TRAINING = {
    "train_clip": {
        "model": {"encoder": {"width": 8, "depth": 1}, "embed_dim": 16},
        "train": {"epochs": 1, "batch_size": 8},
    },
    "finetune": {"encoder": {"width": 8, "depth": 1}, "train": {"epochs": 1, "batch_size": 8}},
    "split": {"ratios": [0.6, 0.2, 0.2]},  # a val split of several records even from 30
}


def _tiny(source: str, **extra: object) -> PipelineConfig:
    return PipelineConfig.model_validate({"ingest": {"source": source}, **TINY_TRAINING, **extra})


def test_pipeline_compiles_with_the_project_image(tmp_path: Path) -> None:
    path = compile_pipeline(tmp_path / "training.yaml")
    spec = next(yaml.safe_load_all(path.read_text()))
    assert spec["pipelineInfo"]["name"] == "ecgflow-training"
    executors = spec["deploymentSpec"]["executors"]
    images = {e["container"]["image"] for e in executors.values()}
    assert images == {DEFAULT_IMAGE}
    assert {"comp-ingest", "comp-label", "comp-split", "comp-preprocess"} <= set(spec["components"])
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert {"ingest_params", "label_params", "split_params", "promote_params"} <= set(inputs)
    assert json.loads(inputs["ingest_params"]["defaultValue"])["source"].startswith("synthetic")
    assert inputs["render_images"]["defaultValue"] is True
    tasks = spec["root"]["dag"]["tasks"]
    assert tasks["split"]["dependentTasks"] == ["ingest", "label"]
    # render-images sits in a condition on the render_images parameter
    condition = tasks["condition-1"]
    assert "render_images" in condition["triggerPolicy"]["condition"]
    branch = spec["components"][condition["componentRef"]["name"]]["dag"]["tasks"]
    assert set(branch) == {"render-images"}
    assert tasks["promote"]["dependentTasks"] == ["register"]
    assert set(tasks["register"]["dependentTasks"]) == {"evaluate", "export"}
    # training steps ask for one accelerator per torchrun process
    assert tasks["finetune-classifier"]["dependentTasks"] == ["label", "preprocess", "train-clip"]
    for name in ("train-clip", "finetune-classifier"):
        resources = executors[f"exec-{name}"]["container"]["resources"]
        assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
        assert "nproc" in resources["accelerator"]["resourceCount"]
    # the component runs ecgflow from the image; it must not pip-install kfp at run time
    command = " ".join(next(iter(executors.values()))["container"]["command"])
    assert "pip install" not in command


def test_gem_steps_sit_in_their_own_switched_branch_after_train_clip(tmp_path: Path) -> None:
    spec = next(yaml.safe_load_all(compile_pipeline(tmp_path / "training.yaml").read_text()))
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert inputs["with_gem"]["defaultValue"] is False
    assert json.loads(inputs["gem_promote_params"]["defaultValue"])["name"] == "ecg-gem"
    assert '"normalise":"scale"' in inputs["gem_preprocess_params"]["defaultValue"]
    condition = next(
        t for t in spec["root"]["dag"]["tasks"].values()
        if "with_gem" in t.get("triggerPolicy", {}).get("condition", "")
    )  # fmt: skip
    branch = spec["components"][condition["componentRef"]["name"]]["dag"]["tasks"]
    assert set(branch) == {
        "preprocess-2", "build-instructions", "finetune-gem", "eval-gem", "register-gem",
        "promote-2",
    }  # fmt: skip
    assert set(branch["finetune-gem"]["dependentTasks"]) == {"build-instructions", "preprocess-2"}
    assert "train-clip" in condition["dependentTasks"]
    assert "export" in condition["dependentTasks"]  # its classifier feeds the evidence
    instructions = branch["build-instructions"]["inputs"]["artifacts"]["classifier"]
    assert instructions["componentInputArtifact"].startswith("pipelinechannel--export-")
    assert set(branch["register-gem"]["dependentTasks"]) == {"eval-gem", "finetune-gem"}
    executors = spec["deploymentSpec"]["executors"]
    gem = next(e for k, e in executors.items() if k.startswith("exec-finetune-gem"))
    assert gem["container"]["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"


def test_cluster_config_compiles_its_values_in(tmp_path: Path) -> None:
    config = load_config(ROOT / "configs" / "cluster-gpu.yaml")
    spec = next(yaml.safe_load_all(compile_pipeline(tmp_path / "gpu.yaml", config).read_text()))
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert inputs["train_nproc"]["defaultValue"] == 4
    assert '"epochs":50' in inputs["train_clip_params"]["defaultValue"]


@pytest.mark.slow  # the whole pipeline through kfp.local: ~60 s of make test's 2-core budget
def test_pipeline_runs_locally_end_to_end(tmp_path: Path) -> None:
    result = run_local(_tiny("synthetic://?n=40&seed=1"), tmp_path)
    records_dir = result.outputs["records"]
    records = pd.read_parquet(records_dir / "records.parquet")
    assert len(records) == 40
    assert (records_dir / "manifest.json").is_file()
    assert result.metadata["records"]["accepted"] == 40
    labels = pd.read_parquet(result.outputs["labels"] / "labels.parquet")
    assert labels["record_id"].tolist() == records["record_id"].tolist()
    assert result.metadata["labels"]["label_set"] == "synthetic"  # 'auto' resolved
    splits = pd.read_parquet(result.outputs["splits"] / "split.parquet")
    assert set(splits["split"]) <= {"train", "val", "test"} and len(splits) == 40
    data = result.outputs["data"]
    assert (data / "preprocess.json").is_file()
    per_split = {k: v for k, v in result.metadata["data"].items() if k.startswith("n_")}
    assert sum(per_split.values()) == 40, per_split
    assert str(records_dir).startswith(str(tmp_path / "pipeline-runs"))
    (run_dir,) = (tmp_path / "pipeline-runs").iterdir()
    images = pd.read_parquet(run_dir / "render-images" / "images" / "images.parquet")
    assert len(images) == 40 and set(images["kind"]) == {"paper"}
    clip, classifier = result.outputs["clip"], result.outputs["classifier"]
    assert (clip / "model" / "model.safetensors").is_file()
    assert (classifier / "model" / "thresholds.json").is_file()
    assert "macro_auroc" in result.metadata["classifier"]
    assert (result.outputs["evaluation"] / "metrics.json").is_file()
    assert (result.outputs["exported"] / "model.onnx").is_file()
    promotion = result.metadata["promotion"]
    assert promotion["uri"] == "models:/ecg-classifier/1" and promotion["alias"] == "champion"
    assert (tmp_path / "mlflow.db").is_file()  # the run's own embedded MLflow store
    # every step timed itself; the account sits beside the steps and in MLflow
    steps = [s.step for s in result.steps]
    assert steps[:4] == ["ingest", "label", "split", "preprocess"]
    assert sorted(steps) == sorted(
        p.name for p in run_dir.iterdir() if p.is_dir() and p.name != "logs"
    )
    # each step's output (kfp.local's records and the step process's lines) is in its log
    assert result.run_dir == run_dir and set(result.logs) >= set(steps)
    assert result.logs["train-clip"] == run_dir / "logs" / "train-clip.log"
    assert "Got executor_input" in result.logs["train-clip"].read_text()
    assert all(s.wall_s > 0 and s.startup_s > 0 and s.stage_s > 0 for s in result.steps)
    assert sum(s.wall_s for s in result.steps) < result.total_s
    assert result.steps_file == run_dir / "pipeline_steps.json"
    assert "step_timing" not in result.metadata["records"]  # shown in the table instead
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (pipeline_run,) = client.search_runs(
        [client.get_experiment_by_name("ecgflow").experiment_id],
        filter_string="attributes.run_name = 'pipeline'",
    )
    assert set(pipeline_run.data.metrics) >= {f"step_seconds.{name}" for name in steps}


@pytest.mark.slow
def test_pipeline_with_gem_trains_evaluates_and_registers_it(tmp_path: Path) -> None:
    gem = {
        "with_gem": True,
        "render_images": False,
        "instructions": {"noise_questions_per_record": 2},
        "finetune_gem": {
            "model": {"lead_width": 8, "tower_width": 32, "lora_r": 4},
            "train": {"epochs": 1, "batch_size": 4},
            "epoch_samples": 8,
            "eval_questions": 4,
        },
        "eval_gem": {"interpret": False, "max_new_tokens": 4},
    }
    run_local(_tiny("synthetic://?n=30&seed=1", **gem), tmp_path)
    (run_dir,) = (tmp_path / "pipeline-runs").iterdir()
    (evaluation,) = run_dir.glob("eval-gem*/evaluation/metrics.json")
    metrics = json.loads(evaluation.read_text())
    assert metrics["split"] == "test" and metrics["n_questions"] > 0
    assert "generated: feature: heart rate" in metrics["qa_accuracy_by_attribute"]
    (gem_model,) = run_dir.glob("finetune-gem*/gem/model/gem.json")
    assert gem_model.is_file()
    # the run's exported classifier states its probabilities in the evidence, ships with GEM
    assert (gem_model.parent / "classifier" / "model.onnx").is_file()
    evidence = json.loads((gem_model.parent / "evidence.json").read_text())
    assert evidence["classifier"] == "classifier"
    (train,) = run_dir.glob("build-instructions*/instructions/train.json")
    assert all("\nClassifier: " in i["meta"]["evidence"] for i in json.loads(train.read_text()))
    assert 0 <= metrics["labels"]["classifier_macro_f1"] <= 1
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    champion = client.get_model_version_by_alias("ecg-gem", "champion")
    assert champion.tags["ecgflow.kind"] == "gem"
    assert float(champion.tags["metric.qa_accuracy"]) == metrics["qa_accuracy"]


@pytest.mark.slow  # a whole pipeline run, ~60 s on 2 cores
def test_pipeline_render_switch_off(tmp_path: Path) -> None:
    run_local(_tiny("synthetic://?n=30&seed=1", render_images=False), tmp_path)
    (run_dir,) = (tmp_path / "pipeline-runs").iterdir()
    assert (run_dir / "preprocess").is_dir()
    assert not (run_dir / "render-images").exists()


@pytest.mark.slow  # a whole `ecgflow run` in a subprocess, ~45 s on 2 cores
def test_cli_run_prints_a_line_per_step_and_a_summary_with_next_steps(tmp_path: Path) -> None:
    """Without a terminal: one plain line per step, then the summary; the rest is in logs."""
    env = {**os.environ, "ECGFLOW_HOME": str(tmp_path)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY_TRAINING))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ecgflow.cli",
            "run",
            "--source",
            "synthetic://?n=30&seed=2",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,  # a whole pipeline run; minutes on a busy 2-core machine
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = (proc.stdout + proc.stderr).splitlines()
    assert len(lines) <= 40, proc.stdout + proc.stderr
    assert "Executing task" not in proc.stdout and "executor_input" not in proc.stdout
    steps = [line.split()[0] for line in lines if " done " in line]
    assert steps[:4] == ["ingest", "label", "split", "preprocess"]
    assert {"train-clip", "finetune-classifier", "evaluate", "register"} <= set(steps)
    assert next(line for line in lines if line.startswith("ingest")).endswith(
        "30 accepted · 0 rejected"
    )
    assert "model: models:/ecg-classifier/1 (alias champion); test macro_auroc" in proc.stdout, (
        proc.stdout
    )
    (run_dir,) = (tmp_path / "pipeline-runs").iterdir()
    assert f"outputs: {run_dir}" in lines
    assert "between steps" in proc.stdout and "pipeline_steps.json" in proc.stdout  # step times
    assert lines[-2:] == [
        "    ecgflow serve --model models:/ecg-classifier@champion",
        f"    mlflow ui --backend-store-uri sqlite:///{tmp_path / 'mlflow.db'}",
    ]
    logs = {p.stem: p.read_text() for p in (run_dir / "logs").glob("*.log")}
    assert set(steps) <= set(logs)
    assert "Got executor_input" in logs["ingest"] and "30 accepted" in logs["ingest"]
