"""The ``ecgflow`` command line: one subcommand per stage, plus run / compile.

Each module holds the thin commands of one thing a user does (they parse the options, build the
stage's params model and call the stage); this one assembles them into ``app``, in the order
``ecgflow --help`` lists them: the workflow's.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ecgflow import __version__
from ecgflow.cli import (
    cluster,
    config,
    data,
    evaluation,
    pipeline,
    registry,
    serving,
    stack,
    training,
)
from ecgflow.cli.common import setup_logging

app = typer.Typer(
    name="ecgflow",
    help="ECG machine-learning workflow: run stages locally, or as a Kubeflow pipeline.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False,
) -> None:
    """Ecgflow: ingest, label, split, preprocess, train, evaluate, export and serve ECG models."""
    setup_logging(verbose)


@app.command()
def version() -> None:
    """Print the ecgflow version."""
    typer.echo(__version__)


for _module in (data, training, evaluation, registry, serving, pipeline, config, cluster):
    app.registered_commands += _module.commands.registered_commands
app.add_typer(stack.group, name="services")
app.add_typer(config.group, name="config")

__all__ = ["app"]
