"""Where a pipeline's training step trains: torchrun in its own process, or a TrainJob.

The train-clip, finetune-classifier and finetune-gem components open a :class:`TrainingStep`.
Under ``kfp.local`` / ``ecgflow run`` (and with ``launcher: local``) it changes nothing: the
stage trains in this process, or under ``torchrun --standalone`` when ``nproc`` > 1. In a
Kubernetes pod (``launcher: auto`` or ``trainjob``) the step

1. copies its input artifacts onto the run's workspace PVC (``dsl.WORKSPACE_PATH_PLACEHOLDER``),
2. has the stage write its torchrun request there, then launches a Kubeflow Trainer TrainJob
   (runtime ``ecgflow-torch``) whose nodes mount the same PVC and run
   ``torchrun -m ecgflow.training.worker REQUEST`` (torchrun reads the ``PET_*`` variables),
   with the GPUs, tolerations, node selector and volumes the pipeline set on the task
   (KFP TaskConfig passthroughs; the launcher pod itself takes no GPU),
3. copies the trained model folder from the workspace into the step's output artifact.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from ecgflow.errors import EcgflowError
from ecgflow.params.trainjob import TrainJobParams

log = logging.getLogger(__name__)

#: Where KFP mounts the run's workspace PVC in a task's pod.
WORKSPACE_MOUNT = "/kfp-workspace"
#: Environment forwarded by name from the launcher pod to the trainer pods (never secrets:
#: the runtime's pods get credentials from their own ServiceAccount / secret references).
FORWARDED_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_S3_ENDPOINT_URL")
GPU = "nvidia.com/gpu"


class TrainingStep:
    """One training step's inputs, outputs and launcher (see the module docstring)."""

    def __init__(
        self,
        task: str,
        params: TrainJobParams,
        workspace: str | None = None,
        task_config: Any = None,
        api_client: Any = None,
    ) -> None:
        self.task = task
        self.params = params
        self.task_config = task_config
        self.api_client = api_client  # default: the pod's ServiceAccount
        from ecgflow.k8s.client import in_cluster  # lazily: the kubernetes client is heavy

        self.on_cluster = params.launcher == "trainjob" or (
            params.launcher == "auto" and in_cluster()
        )
        self.root: Path | None = None
        if self.on_cluster:
            if not workspace or "{{" in workspace:
                raise EcgflowError(
                    f"{task}: a TrainJob needs the run's workspace PVC, but the step got no "
                    "workspace path (compile the pipeline with a workspace: ecgflow compile)"
                )
            self.root = Path(workspace) / f"{task}-{uuid.uuid4().hex[:8]}"
            self.root.mkdir(parents=True)

    def stage_in(self, name: str, path: str | Path) -> Path:
        """``path`` where the trainer can read it: unchanged locally, copied to the workspace."""
        if self.root is None:
            return Path(path)
        target = self.root / "inputs" / name
        source = Path(path)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        return target

    def out_dir(self, path: str | Path) -> Path:
        """Where the stage writes its model folder (the workspace on a cluster)."""
        return Path(path) if self.root is None else self.root / "out"

    @property
    def launch(self) -> Any:
        """The stage's torchrun launcher: None (the stage's own) or one running a TrainJob."""
        return None if self.root is None else self._launch_trainjob

    def publish(self, result: dict[str, Any], model: Any, metrics: Any) -> None:
        """Hand the trained folder and its best metrics to KFP, then free the workspace.

        ``model`` is the step's ``Output[Model]`` (the folder is copied into it from the
        workspace on a cluster), ``metrics`` its ``Output[Metrics]``.
        """
        if self.root is not None:
            shutil.copytree(self.root / "out", Path(model.path), dirs_exist_ok=True)
            shutil.rmtree(self.root, ignore_errors=True)
        best = {k: v for k, v in result["best"].items() if isinstance(v, int | float)}
        model.metadata.update(best | {"best_epoch": result["best_epoch"]})
        model.metadata["mlflow_run_id"] = result["mlflow_run_id"]
        for name, value in best.items():
            metrics.log_metric(name, value)

    def _launch_trainjob(self, request: Path, nproc: int) -> None:
        from ecgflow.k8s.client import current_namespace, current_pod_name, kube_api_client
        from ecgflow.k8s.trainjob import (
            TrainJobRequest,
            own_pod_owner_reference,
            run_trainjob,
            trainjob_name,
        )

        api_client = self.api_client or kube_api_client()
        namespace = current_namespace()
        config = self.task_config
        resources = getattr(config, "resources", None) or None
        gpus = _gpu_count(resources)
        volumes, mounts = _workspace_volumes(config, api_client, namespace)
        env = list(getattr(config, "env", None) or [])
        given = {e.get("name") for e in env}
        env += [
            {"name": k, "value": os.environ[k]}
            for k in FORWARDED_ENV
            if k in os.environ and k not in given
        ]
        from kubernetes import client as k8s

        owner = own_pod_owner_reference(
            k8s.CoreV1Api(api_client), namespace, current_pod_name() or ""
        )
        job = TrainJobRequest(
            name=trainjob_name(self.task),
            namespace=namespace,
            image=self.params.image,
            command=[
                "python",
                "-m",
                "torch.distributed.run",
                "-m",
                "ecgflow.training.worker",
                str(request),
            ],
            num_nodes=self.params.num_nodes,
            proc_per_node=gpus or nproc,
            resources=resources,
            env=env,
            volumes=volumes,
            volume_mounts=mounts,
            node_selector=getattr(config, "node_selector", None) or None,
            tolerations=getattr(config, "tolerations", None) or None,
            affinity=getattr(config, "affinity", None) or None,
            service_account=self.params.service_account,
            runtime=self.params.runtime,
            labels={"app.kubernetes.io/part-of": "ecgflow", "ecgflow/step": self.task},
            owner=owner,
        )
        log.info(
            "%s: TrainJob %s, %d node(s) × %d process(es)",
            self.task,
            job.name,
            job.num_nodes,
            job.proc_per_node,
        )
        run_trainjob(
            job, api_client=api_client, timeout_s=self.params.timeout_h * 3600, on_log=log.info
        )


def _gpu_count(resources: dict[str, Any] | None) -> int:
    """GPUs per node the pipeline asked for on the task (0 when none)."""
    for section in ("limits", "requests"):
        value = ((resources or {}).get(section) or {}).get(GPU)
        if value not in (None, ""):
            return int(value)
    return 0


def _workspace_volumes(
    config: Any, api_client: Any, namespace: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The task's volumes, with the workspace PVC mounted where this pod has it.

    KFP hands the task's volumes over through the KUBERNETES_VOLUMES passthrough; when the
    workspace is not among them, it is found in this pod's own spec.
    """
    volumes = list(getattr(config, "volumes", None) or [])
    mounts = list(getattr(config, "volume_mounts", None) or [])
    if any(m.get("mountPath") == WORKSPACE_MOUNT for m in mounts):
        return volumes, mounts
    from kubernetes import client as k8s

    from ecgflow.k8s.client import current_pod_name

    name = current_pod_name()
    if not name:
        raise EcgflowError("cannot find the workspace PVC: this step does not run in a pod")
    pod = k8s.CoreV1Api(api_client).read_namespaced_pod(name, namespace)
    mounted = {m.name: m.mount_path for c in pod.spec.containers for m in c.volume_mounts or []}
    for volume in pod.spec.volumes or []:
        claim = volume.persistent_volume_claim
        if claim is not None and mounted.get(volume.name) == WORKSPACE_MOUNT:
            volumes.append(
                {"name": volume.name, "persistentVolumeClaim": {"claimName": claim.claim_name}}
            )
            mounts.append({"name": volume.name, "mountPath": WORKSPACE_MOUNT})
            return volumes, mounts
    raise EcgflowError(
        f"no workspace PVC mounted at {WORKSPACE_MOUNT} in this pod: compile the pipeline "
        "with a workspace (ecgflow compile does) so the TrainJob can share files with it"
    )
