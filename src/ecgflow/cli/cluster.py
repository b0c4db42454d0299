"""A Kubeflow cluster: compile (KFP v2 IR YAML) and submit (runs, recurring runs, uploads)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ecgflow.cli.common import console, run_action

commands = typer.Typer()


@commands.command(name="compile")
def compile_(
    out_dir: Annotated[Path, typer.Option(help="folder for the YAML files")] = Path(
        "pipelines/compiled"
    ),
    pipeline: Annotated[
        str | None, typer.Option(help="compile only this pipeline (default: every one)")
    ] = None,
    kubernetes_manifests: Annotated[
        bool,
        typer.Option(help="also write <name>.k8s.yaml: Pipeline/PipelineVersion objects"),
    ] = False,
    config: Annotated[
        Path | None, typer.Option(help="pipeline config whose values become the defaults")
    ] = None,
) -> None:
    """Compile the pipelines to KFP v2 IR YAML (<out-dir>/<name>.yaml) for a Kubeflow cluster."""
    from ecgflow.config import load_config
    from ecgflow.pipeline_runner import compile_all

    names = [pipeline] if pipeline else None
    written = run_action(
        lambda: compile_all(out_dir, load_config(config), kubernetes_manifests, names)
    )
    for path in written:
        typer.echo(f"compiled: {path}")


@commands.command()
def submit(
    host: Annotated[
        str | None, typer.Option(help="KFP API URL, e.g. http://localhost:8888 (or $KFP_HOST)")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(help="bearer token (or $KFP_TOKEN, safer: options show in ps and history)"),
    ] = None,
    namespace: Annotated[
        str | None, typer.Option(help="KFP multi-user namespace (the profile's)")
    ] = None,
    experiment: Annotated[
        str, typer.Option(help="experiment of the run (created when missing)")
    ] = "ecgflow",
    experiment_must_exist: Annotated[
        bool, typer.Option(help="fail on an unknown experiment instead of creating it")
    ] = False,
    pipeline: Annotated[str, typer.Option(help="pipeline: training | training-gem")] = "training",
    config: Annotated[
        Path | None, typer.Option(help="pipeline config whose values become the defaults")
    ] = None,
    run_name: Annotated[
        str | None, typer.Option(help="run name (default: pipeline name and time)")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="NAME=VALUE pipeline parameter (repeatable)")
    ] = None,
    recurring: Annotated[
        str | None,
        typer.Option(help="schedule a recurring run: 5-field cron, or 6 with seconds first"),
    ] = None,
    interval: Annotated[
        int | None, typer.Option(help="schedule a recurring run every SECONDS")
    ] = None,
    wait: Annotated[bool, typer.Option(help="follow the run; exit 1 unless it succeeds")] = False,
    timeout: Annotated[
        float | None, typer.Option(help="with --wait: stop waiting after SECONDS (exit 2)")
    ] = None,
    poll_interval: Annotated[
        float, typer.Option(help="with --wait: seconds between state checks")
    ] = 10.0,
    dry_run: Annotated[
        bool, typer.Option(help="print the request as JSON (token masked); send nothing")
    ] = False,
    upload_only: Annotated[
        bool, typer.Option(help="upload the pipeline (a new version if it exists), no run")
    ] = False,
    enable_caching: Annotated[
        bool | None,
        typer.Option(
            "--enable-caching/--no-enable-caching",
            help="caching of every step (default: as compiled)",
        ),
    ] = None,
    service_account: Annotated[
        str | None, typer.Option(help="Kubernetes service account of the run's pods")
    ] = None,
) -> None:
    """Submit a pipeline to a Kubeflow Pipelines server: a run, a recurring run or an upload."""
    import json
    import tempfile

    from ecgflow.config import load_config
    from ecgflow.submit import SubmitOptions, SubmitResult, compile_package, plan_submission
    from ecgflow.submit import submit as send

    def submitted(result: SubmitResult) -> None:
        typer.echo(f"run {result.run_id} in experiment {result.experiment_id}: {result.url}")

    def action() -> SubmitResult | None:
        options = SubmitOptions(
            host=host, token=token, namespace=namespace, experiment=experiment,
            experiment_must_exist=experiment_must_exist, run_name=run_name,
            params=param or (), recurring=recurring, interval_s=interval, wait=wait,
            upload_only=upload_only, enable_caching=enable_caching,
            service_account=service_account, dry_run=dry_run,
        )  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="ecgflow-submit-") as tmp:
            compiled = compile_package(pipeline, load_config(config), Path(tmp))
            plan = plan_submission(compiled, options)
            if dry_run:
                typer.echo(json.dumps(plan.describe(), indent=2))
                return None
            return send(
                plan, timeout_s=timeout, poll_s=poll_interval, on_submitted=submitted,
                on_state=lambda state: typer.echo(f"run state: {state}"),
            )  # fmt: skip

    result = run_action(action)
    if result is None:
        return
    if result.action == "upload":
        done = "uploaded" if result.created else "already there (same version)"
        typer.echo(f"pipeline {done}: {result.url}")
    elif result.action == "recurring-run":
        typer.echo(f"recurring run {result.recurring_run_id}: {result.url}")
    elif result.final_state is not None:
        if result.failed:
            why = f": {result.error}" if result.error else ""
            console.print(
                f"[bold red]run {result.final_state}[/]{escape(why)} → {result.url}",
                highlight=False,
            )
            raise typer.Exit(1)
        typer.echo(f"run {result.final_state}: {result.url}")
