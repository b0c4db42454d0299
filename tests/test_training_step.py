"""A training step on a cluster: workspace staging → TrainJob → torchrun reading PET_* → artifact.

The kubernetes client talks to the fake API of tests/fake_kube.py; the test plays Kubeflow
Trainer: when the TrainJob appears it runs the job's command the way a trainer node would (the
``PET_*`` variables set, no ``--standalone``), for real, then marks the job Complete or Failed.
So the real train-clip stage trains under a real 2-process torchrun started from the TrainJob
body, and the component's artifact receives the model folder from the workspace.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fake_kube import FakeKube, fake_kube, pod
from kube_objects import require_schemas, schema_errors

from ecgflow.errors import EcgflowError
from ecgflow.k8s.training_step import WORKSPACE_MOUNT, TrainingStep, TrainJobParams
from ecgflow.k8s.trainjob import TrainJobFailed
from ecgflow.stages.ingest import IngestParams, ingest
from ecgflow.stages.label import LabelParams, label
from ecgflow.stages.preprocess import PreprocessParams, preprocess
from ecgflow.stages.split import SplitParams, split
from ecgflow.stages.train_clip import TrainClipParams, train_clip

TRAINJOBS = "trainer.kubeflow.org/v1alpha1/trainjobs"
NS = "kubeflow-user"
LAUNCHER = "run-123-train-clip-launcher"
TINY_CLIP = {
    "model": {"encoder": {"width": 8, "depth": 1}, "embed_dim": 16},
    "train": {"epochs": 1, "batch_size": 8},
    "nproc": 2,
}
GPUS = {"limits": {"nvidia.com/gpu": "2", "memory": "4Gi"}, "requests": {"cpu": "2"}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Trainer:
    """Kubeflow Trainer's part: run each new TrainJob's command as its node would."""

    def __init__(self, kube: FakeKube, fail: bool = False) -> None:
        self.kube, self.fail = kube, fail
        self.jobs: list[dict[str, Any]] = []
        self.threads: list[threading.Thread] = []
        kube.on_create(TRAINJOBS, self._created)

    def _created(self, job: dict[str, Any]) -> None:  # on the server's loop: do not block
        self.jobs.append(job)
        thread = threading.Thread(target=self._run, args=(job,), daemon=True)
        self.threads.append(thread)
        thread.start()

    def _run(self, job: dict[str, Any]) -> None:
        trainer = job["spec"]["trainer"]
        name = job["metadata"]["name"]
        self.kube.set_condition(TRAINJOBS, NS, name, "Created")
        if self.fail:
            self.kube.set_condition(
                TRAINJOBS, NS, name, "Failed", reason="TrainingFailed", message="node-0 exit 1"
            )
            return
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PET_")},
            **{e["name"]: e["value"] for e in trainer.get("env", [])},
            "PET_NNODES": str(trainer["numNodes"]),
            "PET_NPROC_PER_NODE": str(trainer["numProcPerNode"]),
            "PET_NODE_RANK": "0",
            "PET_MASTER_ADDR": "127.0.0.1",
            "PET_MASTER_PORT": str(_free_port()),
            "OMP_NUM_THREADS": "1",
        }
        command = [sys.executable if c == "python" else c for c in trainer["command"]]
        proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        kind = "Complete" if proc.returncode == 0 else "Failed"
        self.kube.set_condition(TRAINJOBS, NS, name, kind, message=proc.stderr[-500:])


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("step-data")
    ingest(IngestParams(source="synthetic://?n=40&seed=3&fs=100", workers=1), root / "records")
    label(LabelParams(label_set="synthetic"), root / "records", root / "labels")
    split(SplitParams(ratios=[0.6, 0.2, 0.2]), root / "records", root / "labels", root / "split")
    preprocess(PreprocessParams(workers=1), root / "records", root / "split", root / "data")
    return SimpleNamespace(records=root / "records", data=root / "data")


@pytest.fixture
def kube(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeKube]:
    monkeypatch.setenv("POD_NAMESPACE", NS)
    monkeypatch.setenv("POD_NAME", LAUNCHER)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    with fake_kube([TRAINJOBS]) as fake:
        launcher = pod(LAUNCHER, NS)
        launcher["spec"]["volumes"] = [
            {"name": "kfp-workspace", "persistentVolumeClaim": {"claimName": "run-123-workspace"}}
        ]
        launcher["spec"]["containers"][0]["volumeMounts"] = [
            {"name": "kfp-workspace", "mountPath": WORKSPACE_MOUNT}
        ]
        fake.add(launcher)
        yield fake


def _task_config(**fields: Any) -> SimpleNamespace:
    base = {"resources": GPUS, "env": [], "volumes": [], "volume_mounts": [],
            "node_selector": {"gpu": "h200"}, "tolerations": None, "affinity": None}  # fmt: skip
    return SimpleNamespace(**(base | fields))


def _artifact(path: Path) -> SimpleNamespace:
    metrics: dict[str, float] = {}
    return SimpleNamespace(
        path=str(path), metadata={}, logged=metrics, log_metric=metrics.__setitem__
    )


def test_train_clip_runs_in_a_trainjob_and_lands_in_the_artifact(
    kube: FakeKube, prepared: SimpleNamespace, tmp_path: Path
) -> None:
    trainer = Trainer(kube)
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    step = TrainingStep(
        "train-clip",
        TrainJobParams(launcher="trainjob", timeout_h=0.1),
        str(workspace),
        _task_config(),
        api_client=kube.api_client,
    )
    settings = TrainClipParams.model_validate(TINY_CLIP)
    result = train_clip(
        settings,
        step.stage_in("data", prepared.data),
        step.stage_in("records", prepared.records),
        step.out_dir(tmp_path / "unused"),
        launch=step.launch,
    )
    model, metrics = _artifact(tmp_path / "clip"), _artifact(tmp_path / "metrics")
    step.publish(result, model, metrics)

    assert result["world_size"] == 2  # torchrun took --nnodes/--nproc_per_node from PET_*
    assert (tmp_path / "clip" / "model").is_dir()
    assert model.metadata["best_epoch"] == result["best_epoch"] and metrics.logged
    assert list(workspace.iterdir()) == []  # the workspace copy is freed
    (job,) = trainer.jobs
    spec = job["spec"]
    assert spec["trainer"]["numProcPerNode"] == 2  # one process per GPU asked for
    assert str(spec["trainer"]["resourcesPerNode"]["limits"]["nvidia.com/gpu"]) == "2"
    assert "--standalone" not in spec["trainer"]["command"]
    assert {e["name"] for e in spec["trainer"]["env"]} == {"MLFLOW_TRACKING_URI"}
    patch = spec["runtimePatches"][0]
    assert job["metadata"]["ownerReferences"][0]["name"] == LAUNCHER
    # the workspace PVC, found in the launcher pod's own spec, is mounted on the trainer nodes
    (pvc,) = [v for v in _find(patch, "volumes") if "persistentVolumeClaim" in v]
    assert pvc["persistentVolumeClaim"]["claimName"] == "run-123-workspace"
    assert {"name": "kfp-workspace", "mountPath": WORKSPACE_MOUNT} in _find(patch, "volumeMounts")
    assert _find(patch, "nodeSelector") == {"gpu": "h200"}
    assert kube.get(TRAINJOBS, NS, job["metadata"]["name"]) is None  # deleted when done
    require_schemas()
    assert schema_errors(job) == []


def test_a_failed_trainjob_fails_the_step_with_its_reason(
    kube: FakeKube, prepared: SimpleNamespace, tmp_path: Path
) -> None:
    Trainer(kube, fail=True)
    step = TrainingStep(
        "train-clip",
        TrainJobParams(launcher="trainjob", timeout_h=0.1),
        str(tmp_path),
        _task_config(
            volumes=[{"name": "ws", "persistentVolumeClaim": {"claimName": "ws"}}],
            volume_mounts=[{"name": "ws", "mountPath": WORKSPACE_MOUNT}],
        ),
        api_client=kube.api_client,
    )
    settings = TrainClipParams.model_validate(TINY_CLIP)
    with pytest.raises(TrainJobFailed, match="TrainingFailed"):
        train_clip(
            settings,
            step.stage_in("data", prepared.data),
            step.stage_in("records", prepared.records),
            step.out_dir(tmp_path / "unused"),
            launch=step.launch,
        )


def test_steps_train_in_process_off_cluster_and_need_a_workspace_on_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    local = TrainingStep("train-clip", TrainJobParams(), str(tmp_path), None)
    assert local.launch is None and local.stage_in("data", tmp_path / "x") == tmp_path / "x"
    assert local.out_dir(tmp_path / "out") == tmp_path / "out"
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    on_cluster = TrainingStep("train-clip", TrainJobParams(), str(tmp_path), None)
    assert on_cluster.launch is not None
    assert on_cluster.out_dir(tmp_path / "out").parent.parent == tmp_path
    in_pod = TrainingStep("train-clip", TrainJobParams(launcher="local"), str(tmp_path), None)
    assert in_pod.launch is None
    with pytest.raises(EcgflowError, match="needs the run's workspace PVC"):
        TrainingStep("train-clip", TrainJobParams(), "{{$.workspace_path}}", None)
    with pytest.raises(EcgflowError, match="trainjob"):
        TrainJobParams.model_validate({"launcher": "slurm"})


def _find(patch: dict[str, Any], key: str) -> Any:
    """``key`` anywhere in a runtime patch (its nesting is the schema's business)."""
    if isinstance(patch, dict):
        if key in patch:
            return patch[key]
        for value in patch.values():
            found = _find(value, key)
            if found is not None:
                return found
    if isinstance(patch, list):
        for value in patch:
            found = _find(value, key)
            if found is not None:
                return found
    return None
