"""The pipeline config: validate-config, and the ``config`` group (config schema)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ecgflow.cli.common import console, run_action

commands = typer.Typer()
group = typer.Typer(help="The pipeline config: its JSON schema.")


@group.command("schema")
def config_schema() -> None:
    """Print the JSON schema of the pipeline config: every section, field, default and rule."""
    import json

    from ecgflow.config import PipelineConfig
    from ecgflow.params import json_schema

    typer.echo(json.dumps(json_schema(PipelineConfig), indent=2))


@commands.command(name="validate-config")
def validate_config(
    config: Annotated[Path, typer.Option(help="pipeline config YAML to check")],
) -> None:
    """List every bad field of a config (path / option: rule (got value)); exit 2 on any.

    The environment overrides (ECGFLOW_*) count, as they do for run, compile and submit.
    """
    from ecgflow.config import config_problems

    problems = run_action(lambda: config_problems(config))
    for problem in problems:
        console.print(f"[bold red]error:[/] {escape(problem)}", highlight=False)
    if problems:
        console.print(f"{escape(str(config))}: {len(problems)} problem(s)", highlight=False)
        raise typer.Exit(2)
    typer.echo(f"{config}: valid")
