"""Serving a model: serve (KServe, locally) and deploy (a KServe InferenceService)."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from ecgflow.cli.common import run_action
from ecgflow.errors import EcgflowError

commands = typer.Typer()


@commands.command()
def serve(
    model: Annotated[
        str,
        typer.Option(
            help="export folder or GEM folder, or models:/NAME@ALIAS / models:/NAME/VERSION"
        ),
    ],
    name: Annotated[
        str, typer.Option(help="model name in the endpoint paths (GEM default: ecg-gem)")
    ] = "ecg-classifier",
    host: Annotated[str, typer.Option(help="address the REST server binds")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="REST port")] = 8080,
    grpc_port: Annotated[
        int | None, typer.Option(help="gRPC port (KServe binds every interface); off if unset")
    ] = None,
    workers: Annotated[int, typer.Option(help="server processes (each loads the model)")] = 1,
    batch_rows: Annotated[
        int,
        typer.Option(
            help="run the rows of concurrent requests together, up to this many (1: each alone; "
            "on 2 CPU cores batching measured slower, see docs/performance.md#serving)"
        ),
    ] = 1,
    batch_wait_ms: Annotated[float, typer.Option(help="longest wait for a batch to fill")] = 0.0,
    threads: Annotated[
        int,
        typer.Option(
            help="onnxruntime threads per model call, torch threads for a GEM (0: one per "
            "core); 1 lets concurrent requests use the cores (measured fastest, see "
            "docs/performance.md#serving) and keeps GEM steady on shared cores"
        ),
    ] = 1,
    max_body_mb: Annotated[float, typer.Option(help="largest request body in MiB")] = 64.0,
    access_log: Annotated[bool, typer.Option(help="log a line per request")] = False,
    max_new_tokens: Annotated[int, typer.Option(help="GEM: most generated tokens")] = 256,
    timeout_s: Annotated[float, typer.Option(help="GEM: longest generation, seconds")] = 60.0,
    limit: Annotated[
        list[str] | None,
        typer.Option(
            envvar="ECGFLOW_SERVE_LIMITS",
            help="a request limit KEY=VALUE, repeatable: max_samples, max_amplitude_mv, "
            "max_concurrent, max_inflight_mb, header_timeout_s, body_timeout_s, "
            "max_image_pixels, ... (docs/serving.md; an unknown key lists them all)",
        ),
    ] = None,
) -> None:
    """Serve a classifier export or a GEM model with KServe (V1/V2 REST, chat, /metrics)."""

    def action() -> None:
        sys.argv = sys.argv[:1]  # kserve parses sys.argv when imported: give it nothing of ours
        from ecgflow.serving import ECGClassifier, limits_from_options, model_kind, serve_model

        body = int(max_body_mb * (1 << 20))
        limits, gem_options = limits_from_options(limit or [], max_body_bytes=body)
        served: object
        routes = None
        if model_kind(model) == "gem":
            from ecgflow.serving.chat import add_chat_routes
            from ecgflow.serving.gem import ECGGem, GemLimits

            gem_limits = GemLimits(
                **{"max_new_tokens": max_new_tokens, "timeout_s": timeout_s, **gem_options}
            )
            served = ECGGem(
                "ecg-gem" if name == "ecg-classifier" else name, model, limits, gem_limits,
                threads=threads,
            )  # fmt: skip
            routes = partial(add_chat_routes, model=served)
        else:
            served = ECGClassifier(
                name, model, limits, max_batch_rows=batch_rows, max_wait_ms=batch_wait_ms,
                threads=threads,
            )  # fmt: skip
        serve_model(
            served, host=host, http_port=port, grpc_port=grpc_port, workers=workers,
            access_log=access_log, routes=routes,
        )  # fmt: skip

    run_action(action)


@commands.command()
def deploy(
    model: Annotated[
        str | None,
        typer.Option(help="registered version: models:/NAME@ALIAS or models:/NAME/VERSION"),
    ] = None,
    namespace: Annotated[
        str | None, typer.Option(help="namespace (default: the kubeconfig context's)")
    ] = None,
    canary: Annotated[
        int | None, typer.Option(help="send this % of the traffic to the new model (1-99)")
    ] = None,
    rollback: Annotated[
        bool, typer.Option(help="serve the previous model again (and make it champion)")
    ] = False,
    values: Annotated[
        Path | None, typer.Option(help="the Helm values file the chart was installed with")
    ] = None,
    chart: Annotated[Path | None, typer.Option(help="chart folder (default: helm/ecgflow)")] = None,
    artifacts_destination: Annotated[
        str | None,
        typer.Option(
            envvar="ECGFLOW_ARTIFACTS_DESTINATION",
            help="the MLflow server's --artifacts-destination (s3://…), for proxied artifacts",
        ),
    ] = None,
    storage_uri: Annotated[
        str | None,
        typer.Option(
            help="the version's files (s3://…) when known: with models:/NAME/N, no MLflow"
        ),
    ] = None,
    upload: Annotated[
        str | None,
        typer.Option(
            help="copy a local version's files to s3://BUCKET/PREFIX/NAME/VERSION (AWS_* "
            "credentials) and deploy from there; with --dry-run too"
        ),
    ] = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for Ready")] = 600.0,
    dry_run: Annotated[bool, typer.Option(help="print the InferenceService YAML only")] = False,
) -> None:
    """Deploy a registered model to its KServe InferenceService, wait for Ready, print the URL."""
    import yaml

    from ecgflow.deploy import deploy as run_deploy
    from ecgflow.k8s.client import current_namespace

    def action() -> None:
        chart_values = _read_values(values)
        done = run_deploy(
            model, namespace or current_namespace(), chart_values, canary=canary,
            rollback=rollback, dry_run=dry_run, artifacts_destination=artifacts_destination,
            storage=storage_uri, chart=chart, upload=upload, timeout_s=timeout,
        )  # fmt: skip
        if done.uploaded:
            size = sum(u.size for u in done.uploaded)
            typer.echo(
                f"uploaded {len(done.uploaded)} files ({size} bytes) to "
                f"{done.target.storage_uri}, each checked",
                err=True,
            )
        if dry_run:
            typer.echo(yaml.safe_dump(done.inference_service, sort_keys=False), nl=False)
            return
        meta = done.inference_service["metadata"]
        typer.echo(
            f"{meta['namespace']}/{meta['name']} serves {done.target.model_uri} "
            f"({done.target.storage_uri}); Ready\nurl: {done.url or '(no URL in status)'}"
        )

    run_action(action)


def _read_values(path: Path | None) -> dict[str, object]:
    """A Helm values file as a dict (empty without one)."""
    import yaml

    if path is None:
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise EcgflowError(f"--values {path}: cannot read it ({exc})") from None
    if not isinstance(data, dict):
        raise EcgflowError(f"--values {path}: expected a mapping at the top level")
    return data
