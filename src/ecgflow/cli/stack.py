"""The local stack of servers: services up, status, env, down (the ``services`` group)."""

from __future__ import annotations

from typing import Annotated

import typer

from ecgflow.cli.common import console, run_action

group = typer.Typer(help="A local stack of real servers: SeaweedFS S3 and MLflow.")


@group.command("up")
def services_up() -> None:
    """Start SeaweedFS (S3) and an MLflow server on 127.0.0.1; print how to use them."""
    from ecgflow.services import services_dir, up

    running = run_action(up)
    typer.echo(f"MLflow: {running.mlflow.url}\nS3:     {running.s3.url} (bucket mlflow)")
    typer.echo(f"credentials: {services_dir() / 'credentials.env'} (owner-only)")
    typer.echo("use them: ecgflow run --stack services   or   eval $(ecgflow services env)")


@group.command("status")
def services_status() -> None:
    """Ask each service for its health; exit 1 when one is down."""
    from ecgflow.services import status

    report = run_action(status)
    if not report:
        typer.echo("no services recorded (ecgflow services up starts them)")
        raise typer.Exit(1)
    for name, (ok, why) in report.items():
        typer.echo(f"{name}: {'up' if ok else 'DOWN'} — {why}")
    if not all(ok for ok, _ in report.values()):
        raise typer.Exit(1)


@group.command("env")
def services_env() -> None:
    """Print ``export`` lines pointing MLflow and S3 clients at the services."""
    from ecgflow.services import load_stack

    running = load_stack()
    if running is None:
        console.print("no services recorded (ecgflow services up starts them)")
        raise typer.Exit(2)
    for key, value in running.env().items():
        typer.echo(f"export {key}={value}")


@group.command("down")
def services_down(
    purge: Annotated[bool, typer.Option(help="also delete their data and credentials")] = False,
) -> None:
    """Stop exactly the processes ``up`` started."""
    from ecgflow.services import down

    stopped = run_action(lambda: down(purge=purge))
    typer.echo(f"stopped: {', '.join(stopped) or 'nothing was running'}")
