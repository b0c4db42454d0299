"""MLflow tracking: ``$MLFLOW_TRACKING_URI`` or the embedded default under ``$ECGFLOW_HOME``.

The embedded default is a SQLite store (``<home>/mlflow.db``) with artifacts in
``<home>/mlartifacts``: the same registry and UI an MLflow server gives, on one machine
(``mlflow ui --backend-store-uri sqlite:///.ecgflow/mlflow.db``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from ecgflow.errors import EcgflowError
from ecgflow.home import ecgflow_home

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # nothing leaves the machine

log = logging.getLogger(__name__)

ARTIFACTS = "mlartifacts"


def tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI``, else the embedded SQLite store."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    home = ecgflow_home()
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'mlflow.db'}"


def connected_uri(timeout_s: float = 5.0) -> str:
    """:func:`tracking_uri`, checked first when it is a server: its ``/health`` must answer.

    Without the check MLflow's client retries an unreachable server for minutes before it
    fails, and a stage may have half its work behind it; this fails at once, naming the URI.
    """
    import urllib.error
    import urllib.request

    uri = tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return uri
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s):
            return uri
    except urllib.error.HTTPError as exc:  # it answers: auth or routing is its business
        if exc.code < 500:
            return uri
        problem = f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        problem = str(getattr(exc, "reason", exc))
    raise EcgflowError(
        f"MLflow tracking server {uri} is not reachable ({problem}); start it "
        "(ecgflow services up, or your cluster's MLflow) or set MLFLOW_TRACKING_URI"
    )


def artifact_location() -> str | None:
    """Where a new experiment keeps artifacts: beside a SQLite store, else the server decides.

    MLflow's own default for a SQLite store is ``./mlruns`` in whatever folder the process
    runs in; keeping artifacts next to the database keeps a run's pieces together.
    """
    uri = tracking_uri()
    if not uri.startswith("sqlite:///"):
        return None
    database = Path(uri.removeprefix("sqlite:///"))
    return (database.parent / ARTIFACTS).resolve().as_uri()


def start_run(experiment: str, run_name: str, run_id: str | None = None) -> str:
    """Start (or with ``run_id``, resume) a run in ``experiment``; returns the run id."""
    import mlflow

    mlflow.set_tracking_uri(connected_uri())
    if run_id is None:
        existing = mlflow.get_experiment_by_name(experiment)
        if existing is None:
            mlflow.create_experiment(experiment, artifact_location=artifact_location())
        mlflow.set_experiment(experiment)
        return mlflow.start_run(run_name=run_name).info.run_id
    return mlflow.start_run(run_id=run_id).info.run_id


def log_params(params: dict[str, Any]) -> None:
    """Log flattened parameters (``a.b.c`` keys; values as text, 500 characters at most)."""
    import mlflow

    flat = {k: str(v)[:500] for k, v in _flatten(params).items()}
    mlflow.log_params(flat)


def log_metrics(metrics: dict[str, float], step: int) -> None:
    """Log finite numeric metrics at ``step``."""
    import math

    import mlflow

    clean = {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and math.isfinite(float(v))
    }
    mlflow.log_metrics(clean, step=step)


def log_artifacts(folder: Path, artifact_path: str | None = None) -> None:
    """Upload a folder's files as run artifacts."""
    import mlflow

    mlflow.log_artifacts(str(folder), artifact_path=artifact_path)


def log_file(path: Path, artifact_path: str | None = None) -> None:
    """Upload one file as a run artifact."""
    import mlflow

    mlflow.log_artifact(str(path), artifact_path=artifact_path)


def set_tags(tags: dict[str, str]) -> None:
    """Tag the active run."""
    import mlflow

    mlflow.set_tags(tags)


def end_run() -> None:
    """Close the active run."""
    import mlflow

    mlflow.end_run()


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out |= _flatten(value, f"{name}.")
        else:
            out[name] = value
    return out
