"""Run a pipeline on this machine with ``kfp.local``, or compile it to KFP YAML for a cluster."""

from __future__ import annotations

import logging
import os
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecgflow import progress, tracking
from ecgflow.config import PipelineConfig
from ecgflow.errors import EcgflowError
from ecgflow.step_logs import RunEvents, StepLogs
from ecgflow.step_timing import METADATA_KEY, StepTime, collect, write_and_log

log = logging.getLogger(__name__)


@dataclass
class LocalRun:
    """Where a local pipeline run left its artifacts, their metadata and the steps' times.

    ``steps``: every step's :class:`~ecgflow.step_timing.StepTime` in start order (taken out
    of the artifacts' metadata); ``total_s``: the pipeline's wall time; ``steps_file``: the
    account written beside the steps and logged to MLflow; ``logs``: each step's log file
    (``<run>/logs/<step>.log``; empty when the output went to the terminal).
    """

    pipeline_root: Path
    outputs: dict[str, Path]
    metadata: dict[str, dict[str, Any]]
    steps: list[StepTime]
    total_s: float
    steps_file: Path
    run_dir: Path
    logs: dict[str, Path] = field(default_factory=dict)


def run_local(
    config: PipelineConfig, home: Path, events: RunEvents | None = None, quiet: bool = True
) -> LocalRun:
    """Run the training pipeline with ``kfp.local.SubprocessRunner`` under ``home``.

    Every component runs as a subprocess in this Python environment, exactly the code a
    cluster runs in the project image. ``quiet``: kfp.local's output (its records and every
    step's stdout/stderr) goes to one log file per step (:class:`~ecgflow.step_logs.StepLogs`)
    and ``events`` hears each step's start, progress and end; otherwise it streams here as
    kfp.local prints it. The steps' times are collected afterwards and logged to a
    ``pipeline`` MLflow run (:func:`ecgflow.step_timing.write_and_log`).

    A failed step raises :class:`EcgflowError` naming the step, the error its output ends in
    and its log file.
    """
    import kfp.local

    from ecgflow.pipelines.training import build_training_pipeline

    training_pipeline = build_training_pipeline(config)
    pipeline_root = home / "pipeline-runs"
    pipeline_root.mkdir(parents=True, exist_ok=True)
    kfp.local.init(
        runner=kfp.local.SubprocessRunner(use_venv=False),
        pipeline_root=str(pipeline_root),
        workspace_root=str(home / "workspace"),
        raise_on_error=True,
    )
    # the component subprocesses keep their MLflow store (the default one) under this home,
    # and report progress as marker lines when their output is read by StepLogs
    overrides = {"ECGFLOW_HOME": str(home)} | ({progress.ENV: "pipe"} if quiet else {})
    previous = {key: os.environ.get(key) for key in (*overrides, tracking.PARENT_ENV)}
    os.environ.update(overrides)
    logs = StepLogs(pipeline_root, events) if quiet else None
    parent = None
    try:
        # the steps' MLflow runs nest under this pipeline run (write_and_log fills and ends it)
        os.environ[tracking.PARENT_ENV] = parent = tracking.create_run("ecgflow", "pipeline")
        started = time.perf_counter()
        try:
            with logs or nullcontext(), warnings.catch_warnings():
                # Locally the project image is this very environment; kfp warns that it is not.
                warnings.filterwarnings("ignore", message=".*non-Python base image.*")
                task = training_pipeline()  # the config is compiled in as the defaults
        except RuntimeError as exc:  # kfp reports a failed task as RuntimeError
            if logs is None or logs.failed is None:
                raise EcgflowError(
                    f"pipeline run failed: {exc} (task logs above; outputs in {pipeline_root})"
                ) from None
            raise EcgflowError(
                f"step {logs.failed} failed: {logs.error} (log: {logs.log_path(logs.failed)})"
            ) from None
        total_s = time.perf_counter() - started
        outputs = {name: Path(artifact.path) for name, artifact in task.outputs.items()}
        run_dir = next(iter(outputs.values())).parents[1]  # <root>/<run>/<task>/<output>
        steps = collect(run_dir)
        steps_file = write_and_log(run_dir, steps, total_s)
    finally:
        if parent:
            tracking.close_run(parent)  # FAILED, unless write_and_log ended it
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    metadata = {
        name: {k: v for k, v in artifact.metadata.items() if k != METADATA_KEY}
        for name, artifact in task.outputs.items()
    }
    step_logs = {step: logs.log_path(step) for step in logs.steps} if logs else {}
    return LocalRun(
        pipeline_root, outputs, metadata, steps, total_s, steps_file, run_dir, step_logs
    )


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

    from ecgflow.pipelines.catalog import build_pipeline

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
    from ecgflow.pipelines.catalog import PIPELINES

    written = []
    for name in names or PIPELINES.names():
        written.append(compile_pipeline(out_dir / f"{name}.yaml", config, name))
        if kubernetes_manifests:
            written.append(compile_pipeline(out_dir / f"{name}.k8s.yaml", config, name, True))
    return written
