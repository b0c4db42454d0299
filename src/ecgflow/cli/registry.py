"""Releasing a model: export (ONNX), register (MLflow) and promote (the champion gate)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ecgflow.cli.common import console, run_action
from ecgflow.cli.options import ParamsBuilder, stage_options
from ecgflow.params import ExportParams

commands = typer.Typer()


@commands.command()
@stage_options(ExportParams)
def export(
    model: Annotated[Path, typer.Option(help="finetune-classifier output")],
    out: Annotated[Path, typer.Option(help="output folder (model.onnx, triton/, parity.json)")],
    params: ParamsBuilder[ExportParams],
    data: Annotated[
        Path | None, typer.Option(help="preprocess output for the parity check (real records)")
    ] = None,
) -> None:
    """ONNX export with a PyTorch parity check and a Triton model-repository layout."""
    from ecgflow.stages.export import export as run_export

    def action() -> None:
        result = run_export(params(), model, out, data_dir=data)
        console.print(
            f"exported {escape(str(result.onnx_path))}: parity max |Δ| "
            f"{result.max_abs_diff:.2e} over {result.n_parity_rows} rows",
            highlight=False,
        )

    run_action(action)


@commands.command()
def register(
    model: Annotated[
        Path, typer.Option(help="export output (model.onnx, pytorch/) or GEM folder (gem.json)")
    ],
    eval_dir: Annotated[Path, typer.Option("--eval", help="eval / eval-gem output (metrics.json)")],
    name: Annotated[
        str | None,
        typer.Option(help="registered model name (default: ecg-classifier, or ecg-gem)"),
    ] = None,
    pipeline_run: Annotated[str | None, typer.Option(help="pipeline run to tag")] = None,
) -> None:
    """Log a model (ONNX + weights, or a GEM folder) to MLflow and register a new version."""
    from ecgflow import registry
    from ecgflow.artifacts import GEM_JSON

    def action() -> None:
        if (model / GEM_JSON).is_file():
            version = registry.register_gem(
                model, eval_dir, name=name or registry.GEM_NAME, pipeline_run=pipeline_run
            )
        else:
            version = registry.register(
                model, eval_dir, name=name or registry.DEFAULT_NAME, pipeline_run=pipeline_run
            )
        typer.echo(f"registered {version.uri} (run {version.run_id})")

    run_action(action)


@commands.command()
def promote(
    name: Annotated[str, typer.Option(help="registered model name")] = "ecg-classifier",
    metric: Annotated[
        str | None,
        typer.Option(help="metric compared with the champion (macro_auroc; GEM: qa_accuracy)"),
    ] = None,
    min_delta: Annotated[float, typer.Option(help="gain needed to replace the champion")] = 0.0,
    version: Annotated[str | None, typer.Option(help="candidate (default: newest)")] = None,
    allow_equal: Annotated[
        bool | None,
        typer.Option(help="a tie promotes too ('not worse'; default for GEM models)"),
    ] = None,
    lower_bound: Annotated[
        bool,
        typer.Option(help="its lower 95 % bound (eval's bootstrap) must beat the champion too"),
    ] = False,
) -> None:
    """Alias the candidate 'challenger'; move 'champion' only if it passes the gate."""
    from ecgflow import registry

    def action() -> None:
        gem = name == registry.GEM_NAME
        decision = registry.promote(
            name,
            metric=metric or ("qa_accuracy" if gem else "macro_auroc"),
            min_delta=min_delta,
            version=version,
            allow_equal=gem if allow_equal is None else allow_equal,
            lower_bound=lower_bound,
        )
        typer.echo(registry.describe(decision))

    run_action(action)
