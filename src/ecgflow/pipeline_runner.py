"""Run a pipeline on this machine with ``kfp.local``, or compile it to KFP YAML for a cluster."""

from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecgflow.config import PipelineConfig
from ecgflow.errors import EcgflowError
from ecgflow.step_timing import METADATA_KEY, StepTime, collect, write_and_log

log = logging.getLogger(__name__)


@dataclass
class LocalRun:
    """Where a local pipeline run left its artifacts, their metadata and the steps' times.

    ``steps``: every step's :class:`~ecgflow.step_timing.StepTime` in start order (taken out
    of the artifacts' metadata); ``total_s``: the pipeline's wall time; ``steps_file``: the
    account written beside the steps and logged to MLflow.
    """

    pipeline_root: Path
    outputs: dict[str, Path]
    metadata: dict[str, dict[str, Any]]
    steps: list[StepTime]
    total_s: float
    steps_file: Path


def run_local(config: PipelineConfig, home: Path) -> LocalRun:
    """Run the training pipeline with ``kfp.local.SubprocessRunner`` under ``home``.

    Every component runs as a subprocess in this Python environment, exactly the code a
    cluster runs in the project image. The steps' times are collected afterwards and logged
    to a ``pipeline`` MLflow run (:func:`ecgflow.step_timing.write_and_log`).
    """
    import kfp.local

    from pipelines.training import build_training_pipeline

    training_pipeline = build_training_pipeline(config)
    pipeline_root = home / "pipeline-runs"
    pipeline_root.mkdir(parents=True, exist_ok=True)
    kfp.local.init(
        runner=kfp.local.SubprocessRunner(use_venv=False),
        pipeline_root=str(pipeline_root),
        workspace_root=str(home / "workspace"),
        raise_on_error=True,
    )
    # the component subprocesses keep their MLflow store (the default one) under this home
    previous_home = os.environ.get("ECGFLOW_HOME")
    os.environ["ECGFLOW_HOME"] = str(home)
    try:
        started = time.perf_counter()
        try:
            with warnings.catch_warnings():
                # Locally the project image is this very environment; kfp warns that it is not.
                warnings.filterwarnings("ignore", message=".*non-Python base image.*")
                task = training_pipeline()  # the config is compiled in as the defaults
        except RuntimeError as exc:  # kfp reports a failed task as RuntimeError
            raise EcgflowError(
                f"pipeline run failed: {exc} (task logs above; outputs in {pipeline_root})"
            ) from None
        total_s = time.perf_counter() - started
        outputs = {name: Path(artifact.path) for name, artifact in task.outputs.items()}
        run_dir = next(iter(outputs.values())).parents[1]  # <root>/<run>/<task>/<output>
        steps = collect(run_dir)
        steps_file = write_and_log(run_dir, steps, total_s)
    finally:
        if previous_home is None:
            os.environ.pop("ECGFLOW_HOME", None)
        else:
            os.environ["ECGFLOW_HOME"] = previous_home
    metadata = {
        name: {k: v for k, v in artifact.metadata.items() if k != METADATA_KEY}
        for name, artifact in task.outputs.items()
    }
    return LocalRun(pipeline_root, outputs, metadata, steps, total_s, steps_file)


def compile_pipeline(
    out: Path,
    config: PipelineConfig | None = None,
    name: str = "training",
    kubernetes_manifests: bool = False,
) -> Path:
    """Write pipeline ``name``'s KFP IR YAML to ``out``, ``config``'s values as defaults.

    With ``kubernetes_manifests`` the file holds KFP's Kubernetes-native ``Pipeline`` and
    ``PipelineVersion`` objects instead (for ``kubectl apply`` in that mode).
    """
    from kfp import compiler

    from pipelines.catalog import build_pipeline

    pipeline = build_pipeline(name, config or PipelineConfig())
    out.parent.mkdir(parents=True, exist_ok=True)
    options = (
        compiler.KubernetesManifestOptions(include_pipeline_manifest=True)
        if kubernetes_manifests
        else None
    )
    compiler.Compiler().compile(
        pipeline,
        package_path=str(out),
        kubernetes_manifest_format=kubernetes_manifests,
        kubernetes_manifest_options=options,
    )
    log.info("compiled %s", out)
    return out


def compile_all(
    out_dir: Path,
    config: PipelineConfig | None = None,
    kubernetes_manifests: bool = False,
    names: list[str] | None = None,
) -> list[Path]:
    """Compile the catalog's pipelines (or ``names``) into ``out_dir``.

    Writes ``<name>.yaml`` each, and ``<name>.k8s.yaml`` (Pipeline/PipelineVersion objects)
    with ``kubernetes_manifests``.
    """
    from pipelines.catalog import PIPELINES

    written = []
    for name in names or list(PIPELINES):
        written.append(compile_pipeline(out_dir / f"{name}.yaml", config, name))
        if kubernetes_manifests:
            written.append(compile_pipeline(out_dir / f"{name}.k8s.yaml", config, name, True))
    return written
