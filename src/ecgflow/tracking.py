"""MLflow tracking: ``$MLFLOW_TRACKING_URI`` or the embedded default under ``$ECGFLOW_HOME``.

The embedded default is a SQLite store (``<home>/mlflow.db``) with artifacts in
``<home>/mlartifacts``: the same registry and UI an MLflow server gives, on one machine
(``mlflow ui --backend-store-uri sqlite:///.ecgflow/mlflow.db``).

Runs nest: ``ecgflow run`` opens the pipeline's run first (:func:`create_run`) and hands its id
to every step in ``$ECGFLOW_PARENT_RUN_ID``; :func:`start_run` tags each step's run with
``mlflow.parentRunId``, so the UI shows the steps under their pipeline run.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from ecgflow.artifacts import MANIFEST
from ecgflow.errors import EcgflowError
from ecgflow.home import ecgflow_home

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # nothing leaves the machine

log = logging.getLogger(__name__)

ARTIFACTS = "mlartifacts"
PARENT_ENV = "ECGFLOW_PARENT_RUN_ID"  # the run new runs nest under (set by ecgflow run)
PARENT_TAG = "mlflow.parentRunId"


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
    runs in; keeping artifacts next to the database keeps a run's pieces together. A SQLite
    store records a local location as an absolute path (MLflow resolves a relative one against
    the working folder), so moving the home means ``mlflow gc``/re-logging; an MLflow server
    gives ``mlflow-artifacts:/…`` locations, relative to its own artifact store.
    """
    uri = tracking_uri()
    if not uri.startswith("sqlite:///"):
        return None
    database = Path(uri.removeprefix("sqlite:///"))
    return (database.parent / ARTIFACTS).resolve().as_uri()


def start_run(experiment: str, run_name: str, run_id: str | None = None) -> str:
    """Start (or with ``run_id``, resume) a run in ``experiment``; returns the run id.

    A new run is tagged with ``$ECGFLOW_PARENT_RUN_ID`` as its parent, when that is set.
    """
    import mlflow

    mlflow.set_tracking_uri(connected_uri())
    if run_id is None:
        _experiment_id(mlflow.MlflowClient(), experiment)
        mlflow.set_experiment(experiment)
        parent = os.environ.get(PARENT_ENV)
        tags = {PARENT_TAG: parent} if parent else None
        return mlflow.start_run(run_name=run_name, tags=tags).info.run_id
    return mlflow.start_run(run_id=run_id).info.run_id


def create_run(experiment: str, run_name: str) -> str:
    """Create a run left open for others to nest under (and to resume); returns its id.

    Unlike :func:`start_run` it neither makes the run active here nor sets the process's
    tracking URI.
    """
    import mlflow

    client = mlflow.MlflowClient(connected_uri())
    return client.create_run(_experiment_id(client, experiment), run_name=run_name).info.run_id


def close_run(run_id: str, status: str = "FAILED") -> None:
    """Mark ``run_id`` ended with ``status`` if it is still running (a pipeline that failed)."""
    import mlflow

    try:
        client = mlflow.MlflowClient(connected_uri())
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, status)
    except Exception as exc:  # never hide the error that ended the pipeline
        log.warning("MLflow run %s not closed: %s", run_id, exc)


def log_dataset(folder: Path, context: str, origin: str | None = None) -> None:
    """Record the artifact folder ``folder`` as the active run's input (``mlflow.log_input``).

    The dataset is the folder (its location as source); its digest the SHA-256 of its
    ``manifest.json`` (every file's hash, the params and inputs that made it), so MLflow sees
    one dataset wherever the same data is used. The run's input tags carry the full hash and
    ``origin`` (e.g. the ingest source URI). Nothing is logged for a folder without a manifest.
    """
    import hashlib

    import mlflow
    from mlflow.data.http_dataset_source import HTTPDatasetSource
    from mlflow.data.meta_dataset import MetaDataset

    manifest = Path(folder) / MANIFEST
    if not manifest.is_file():
        return
    digest = hashlib.sha256(manifest.read_bytes()).hexdigest()
    # a source MLflow stores as given (a file:// or s3:// location alike)
    source = HTTPDatasetSource(Path(folder).resolve().as_uri())
    tags = {"manifest_sha256": digest} | ({"origin": origin} if origin else {})
    dataset = MetaDataset(source, name=Path(folder).name, digest=digest[:32])
    mlflow.log_input(dataset, context=context, tags=tags)


def _experiment_id(client: Any, experiment: str) -> str:
    existing = client.get_experiment_by_name(experiment)
    if existing is not None:
        return existing.experiment_id
    return client.create_experiment(experiment, artifact_location=artifact_location())


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
