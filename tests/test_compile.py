"""`ecgflow compile`: every pipeline, as IR YAML and as KFP Kubernetes-native objects.

The golden files under tests/golden/pipelines/ are the compiled embedded defaults; a change to a
pipeline or component that alters them fails here until `make compile-golden` rewrites them
(and the diff shows in review). Beyond byte equality, each component's image, resources,
TaskConfig passthroughs and parameters are pinned, and the Pipeline/PipelineVersion objects
validate against the strict schemas of ../shared/schemas.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kube_objects import require_schemas, schema_errors
from typer.testing import CliRunner

from ecgflow.cli import app
from ecgflow.config import ENV_OVERRIDES, load_config
from ecgflow.images import BASE_IMAGE
from ecgflow.pipeline_runner import compile_all
from ecgflow.pipelines.catalog import PIPELINES

GOLDEN = Path(__file__).parent / "golden" / "pipelines"
TRAINING = {"train-clip", "finetune-classifier", "finetune-gem"}
TRAINING_PARAMS = {"nproc", "params", "task_config", "trainjob", "workspace"}
# component → its input parameters (artifacts aside): every stage's settings are one ``params``
# JSON input, validated by the stage's params model inside the component
PARAMETERS = {
    "ingest": {"params"},
    "label": {"params"},
    "split": {"params"},
    "preprocess": {"params"},
    "render-images": {"params"},
    "build-instructions": {"params", "qa"},
    "train-clip": TRAINING_PARAMS,
    "finetune-classifier": TRAINING_PARAMS,
    "finetune-gem": TRAINING_PARAMS,
    "evaluate": {"params"},
    "eval-gem": {"params", "qa"},
    "export": {"params"},
    "register": {"params", "pipeline_run"},
    "register-gem": {"params", "pipeline_run"},
    "promote": {"allow_equal", "params", "version"},
}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every pipeline compiled from the embedded defaults (no config file, no env overrides)."""
    out = tmp_path_factory.mktemp("compiled")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("ECGFLOW_CONFIG", *ENV_OVERRIDES):
            mp.delenv(name, raising=False)
        compile_all(out, kubernetes_manifests=True)
    return out


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def _component(name: str) -> str:
    """``comp-promote-2`` → ``promote`` (KFP numbers a component's second use)."""
    base = name.removeprefix("comp-")
    head, _, tail = base.rpartition("-")
    return head if tail.isdigit() else base


@pytest.mark.parametrize("pipeline", PIPELINES.names())
@pytest.mark.parametrize("suffix", [".yaml", ".k8s.yaml"])
def test_compiled_pipelines_match_the_golden_files(
    compiled: Path, pipeline: str, suffix: str
) -> None:
    name = f"{pipeline}{suffix}"
    golden = GOLDEN / name
    assert golden.is_file(), f"{golden} missing: run `make compile-golden`"
    assert (compiled / name).read_text() == golden.read_text(), (
        f"{name} differs from tests/golden/pipelines: review the change, then "
        "`make compile-golden` to accept it"
    )


@pytest.mark.parametrize("pipeline", PIPELINES.names())
def test_every_component_has_its_image_resources_and_parameters(
    compiled: Path, pipeline: str
) -> None:
    spec, platform = _documents(compiled / f"{pipeline}.yaml")
    executors = spec["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values()} == {BASE_IMAGE}
    components = {k: c for k, c in spec["components"].items() if "executorLabel" in c}
    seen = set()
    for key, component in components.items():
        name = _component(key)
        seen.add(name)
        params = set(component.get("inputDefinitions", {}).get("parameters", {}))
        assert params == PARAMETERS[name], key
        resources = executors[component["executorLabel"]]["container"].get("resources")
        passthroughs = component.get("taskConfigPassthroughs")
        if name in TRAINING:
            # GPUs, CPU and memory for the TrainJob's nodes, never applied to the launcher pod
            assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
            assert "nproc" in resources["accelerator"]["resourceCount"]
            assert resources["resourceCpuRequest"] == "8"
            assert resources["resourceMemoryLimit"] == "32Gi"
            fields = {p["field"]: p.get("applyToTask", False) for p in passthroughs}
            assert fields == {
                "RESOURCES": False,
                "KUBERNETES_TOLERATIONS": False,
                "KUBERNETES_NODE_SELECTOR": False,
                "KUBERNETES_AFFINITY": False,
                "ENV": True,
                "KUBERNETES_VOLUMES": True,
            }
        else:
            assert resources is None and passthroughs is None, key
    assert seen == set(PARAMETERS)  # both hold the GEM branch (switched by with_gem)
    # the run's workspace PVC, shared by training steps and their TrainJobs
    workspace = platform["platforms"]["kubernetes"]["pipelineConfig"]["workspace"]
    assert workspace["size"] == "50Gi"
    assert workspace["kubernetes"]["pvcSpecPatch"]["accessModes"] == ["ReadWriteMany"]


def test_the_configs_image_reaches_every_task(tmp_path: Path) -> None:
    from ecgflow.config import PipelineConfig

    image = "registry.example/team/ecgflow:2.0"
    (path,) = compile_all(tmp_path, PipelineConfig(image=image), names=["training-gem"])
    executors = _documents(path)[0]["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values()} == {image}


def test_importing_the_components_pulls_in_no_heavy_library() -> None:
    import subprocess
    import sys

    code = (
        "import sys, importlib, pkgutil, ecgflow.components as c\n"
        "found = [m.name for m in pkgutil.walk_packages(c.__path__, c.__name__ + '.')\n"
        "         if m.name.endswith('.component')]\n"
        "for name in found:\n"
        "    importlib.import_module(name)\n"
        "heavy = {'pandas', 'pyarrow', 'scipy', 'PIL', 'matplotlib', 'torch', 'ecgflow.stages'}\n"
        "print(len(found), sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "15 []"


def test_environment_overrides_reach_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the chart's registration Job sets: its images, MLflow server and runtime."""
    monkeypatch.setenv("ECGFLOW_IMAGE", "registry.example/ecgflow:1")
    monkeypatch.setenv("ECGFLOW_TRAIN_IMAGE", "registry.example/ecgflow-train:1")
    monkeypatch.setenv("ECGFLOW_TRAINING_RUNTIME", "team-torch")
    monkeypatch.setenv("ECGFLOW_TRACKING_URI", "http://mlflow:5000")
    config = load_config()
    assert config.image == "registry.example/ecgflow:1"
    assert (config.trainjob.image, config.trainjob.runtime) == (
        "registry.example/ecgflow-train:1",
        "team-torch",
    )
    assert config.tracking_uri == "http://mlflow:5000"


def test_every_step_gets_the_clusters_mlflow_server_and_s3_access(tmp_path: Path) -> None:
    from ecgflow.config import PipelineConfig

    uri = "http://ecgflow-mlflow.ecgflow.svc.cluster.local:5000"
    config = PipelineConfig(
        tracking_uri=uri, s3_secret="ecgflow-s3", s3_endpoint_url="http://seaweedfs-s3:8333"
    )
    (path,) = compile_all(tmp_path, config, names=["training-gem"])
    spec, platform = _documents(path)
    executors = spec["deploymentSpec"]["executors"]
    for name, executor in executors.items():
        env = {e["name"]: e["value"] for e in executor["container"].get("env", [])}
        assert env["MLFLOW_TRACKING_URI"] == uri, name
        assert env["AWS_ENDPOINT_URL"] == "http://seaweedfs-s3:8333", name
    secrets = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(secrets) == set(executors)
    for settings in secrets.values():
        (secret,) = settings["secretAsEnv"]
        assert secret["secretName"] == "ecgflow-s3"
        assert {k["envVar"] for k in secret["keyToEnv"]} == {
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        }


def test_the_gem_pipeline_runs_the_gem_steps_by_default(compiled: Path) -> None:
    plain = _documents(compiled / "training.yaml")[0]["root"]["inputDefinitions"]["parameters"]
    gem = _documents(compiled / "training-gem.yaml")[0]["root"]["inputDefinitions"]["parameters"]
    assert plain["with_gem"]["defaultValue"] is False
    assert gem["with_gem"]["defaultValue"] is True
    assert '"launcher":"auto"' in plain["trainjob_params"]["defaultValue"]


@pytest.mark.parametrize("pipeline", PIPELINES.names())
def test_kubernetes_native_objects_are_valid(compiled: Path, pipeline: str) -> None:
    require_schemas()
    docs = _documents(compiled / f"{pipeline}.k8s.yaml")
    assert [d["kind"] for d in docs] == ["Pipeline", "PipelineVersion"]
    for doc in docs:
        assert schema_errors(doc) == [], doc["kind"]
    version = docs[1]
    assert version["spec"]["pipelineName"] == docs[0]["metadata"]["name"]
    assert version["spec"]["pipelineSpec"]["pipelineInfo"]["name"] == docs[0]["metadata"]["name"]


def test_cli_compiles_one_pipeline_or_refuses_an_unknown_one(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["compile", "--out-dir", str(tmp_path), "--pipeline", "training"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["training.yaml"]
    result = runner.invoke(app, ["compile", "--out-dir", str(tmp_path), "--pipeline", "nope"])
    assert result.exit_code == 2
    assert "unknown pipeline 'nope'; expected one of: training, training-gem" in result.output


@pytest.mark.parametrize("pipeline", PIPELINES.names())
def test_eval_gives_the_kfp_ui_a_roc_a_confusion_matrix_and_a_summary(
    compiled: Path, pipeline: str
) -> None:
    """eval's outputs the KFP UI renders: ClassificationMetrics (ROC, confusion) and Markdown."""
    spec = _documents(compiled / f"{pipeline}.yaml")[0]
    outputs = spec["components"]["comp-evaluate"]["outputDefinitions"]["artifacts"]
    kinds = {name: o["artifactType"]["schemaTitle"] for name, o in outputs.items()}
    assert kinds["classification"] == "system.ClassificationMetrics"
    assert kinds["summary"] == "system.Markdown"
    assert kinds["metrics"] == "system.Metrics"


def test_the_catalog_is_a_registry_whose_names_import_no_kfp() -> None:
    """Pipelines sit on the project's registry pattern (register / get / names), lazily."""
    import subprocess
    import sys

    from ecgflow.errors import EcgflowError
    from ecgflow.pipelines.training import build_training_pipeline

    assert PIPELINES.names() == ("training", "training-gem")
    assert PIPELINES.get("training") is build_training_pipeline
    with pytest.raises(EcgflowError, match="unknown pipeline 'nope'; expected one of: training"):
        PIPELINES.get("nope")
    code = (
        "import sys; from ecgflow.pipelines.catalog import PIPELINES; PIPELINES.names()\n"
        "print(sorted({'kfp', 'ecgflow.components'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
