"""The whole pipeline, locally: run (kfp.local, with a live step table)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from ecgflow.cli.common import console, run_action, verbose
from ecgflow.errors import EcgflowError, describe_validation_error

commands = typer.Typer()


@commands.command()
def run(
    source: Annotated[
        str | None, typer.Option(help="dataset to ingest (default: the config's)")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="ingest at most N records")] = None,
    label_set: Annotated[
        str | None, typer.Option(help="label set (default: the config's, 'auto')")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="pipeline config YAML")] = None,
    with_gem: Annotated[
        bool | None, typer.Option(help="also train, evaluate and register GEM")
    ] = None,
    gem_qa: Annotated[
        list[str] | None, typer.Option(help="ECG-QA JSON file for the GEM steps (repeatable)")
    ] = None,
    stack: Annotated[
        str,
        typer.Option(
            help="embedded (SQLite MLflow, local files) or services (the servers of "
            "`ecgflow services up`: runs and model versions in its MLflow, artifacts in S3)"
        ),
    ] = "embedded",
) -> None:
    """Run the training pipeline locally through kfp.local, under $ECGFLOW_HOME.

    Each step's output goes to <run>/logs/<step>.log; the terminal shows a live step table
    (a plain line per step when stdout is not a terminal) and a summary. --verbose streams
    everything kfp.local prints instead.
    """
    from ecgflow import progress
    from ecgflow.config import PipelineConfig, load_config
    from ecgflow.home import ecgflow_home
    from ecgflow.pipeline_runner import run_local
    from ecgflow.run_view import RunView, summary
    from ecgflow.step_timing import table as step_table

    def action() -> None:
        data = load_config(config).model_dump()
        if source:
            data["ingest"]["source"] = source
        if limit is not None:
            data["ingest"]["limit"] = limit
        if label_set:
            data["label"]["label_set"] = label_set
        if with_gem is not None:
            data["with_gem"] = with_gem
        if gem_qa:
            data["gem_qa"] = [str(Path(p).resolve()) for p in gem_qa]
        try:  # command-line values are validated too, named by config path and option
            cfg = PipelineConfig.model_validate(data)
        except ValidationError as exc:
            problems = describe_validation_error(exc, flags=True, model=PipelineConfig)
            raise EcgflowError(problems) from None
        if stack == "services":
            from ecgflow.services import load_stack, services_dir

            running = load_stack()
            if running is None:
                raise EcgflowError(
                    f"--stack services: no services recorded in {services_dir()}; "
                    "run `ecgflow services up` first"
                )
            os.environ.update(running.env())  # the steps (subprocesses) inherit it
            console.print(f"stack: MLflow {running.mlflow.url}, S3 {running.s3.url}")
        elif stack != "embedded":
            raise EcgflowError(f"--stack {stack}: expected embedded or services")
        home = ecgflow_home()
        mlflow_uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}"
        out = Console(file=sys.stdout, soft_wrap=True)  # before kfp.local's output is redirected
        if verbose():
            console.print(f"running pipeline {cfg.name} locally; home: {escape(str(home))}")
            result = run_local(cfg, home, quiet=False)
            for name in sorted(result.outputs):
                items = sorted(result.metadata[name].items())
                meta = ", ".join(f"{k}={_plain(v)}" for k, v in items)
                typer.echo(f"{name}: {result.outputs[name]}\n    {meta}")
            out.print(step_table(result.steps, result.total_s))
        else:
            import mlflow  # noqa: F401  (it sets its loggers to INFO on import: quiet them after)

            logging.getLogger("mlflow").setLevel(logging.WARNING)
            live = out.is_terminal and progress.bars_wanted(sys.stdout)
            title = f"{cfg.name} · home {home}"
            with RunView(out, live=live, title=escape(title)) as view:
                result = run_local(cfg, home, events=view)
        for line in summary(result, mlflow_uri):
            out.print(escape(line), highlight=False)

    run_action(action)


def _plain(value: object) -> object:
    """KFP hands integers back as floats; show ``200.0`` as ``200``, others to 4 digits."""
    if isinstance(value, float):
        return int(value) if value.is_integer() else float(f"{value:.4g}")
    return value
