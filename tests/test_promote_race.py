"""Concurrent ``ecgflow promote`` processes end with the better model as champion.

Two real processes run the CLI's ``promote`` against one real MLflow store (a SQLite file; a
real ``mlflow server`` with basic auth in the slow variant). Each round resets ``champion`` to
version 1 (AUROC 0.70), then releases both processes at once through a file barrier: one
promotes version 2 (0.80), the other version 3 (0.90). Whatever the interleaving, version 3
must end as champion. Without the promotion lock both processes can read champion 1, both
decide "promote", and the worse write can land last (the race issue 28 reported).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ecgflow.registry import CHAMPION, LOCK_SUFFIX, promotion_lock

NAME = "race-model"
ROUNDS = 12
AUROCS = {"1": 0.70, "2": 0.80, "3": 0.90}

# A promote process: imports first (seconds), then for each round waits for the barrier file
# and runs `ecgflow promote` through the CLI app, exactly as the console script does.
WORKER = textwrap.dedent(
    """
    import pathlib, sys, time
    from ecgflow.cli import app
    folder, version, rounds = pathlib.Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    (folder / f"ready-{version}").touch()
    for i in range(rounds):
        while not (folder / f"go-{i}").exists():
            time.sleep(0.002)
        try:
            app(["promote", "--name", "race-model", "--version", version], standalone_mode=False)
        finally:
            (folder / f"done-{i}-{version}").touch()
    """
)


def _versions(client) -> None:
    """Three versions tagged as ``register`` tags them (promote reads only the tags)."""
    client.create_registered_model(NAME)
    for number, auroc in AUROCS.items():
        run = client.create_run(client.create_experiment(f"e{number}"))
        created = client.create_model_version(
            NAME, f"{run.info.artifact_uri}/model", run.info.run_id
        )
        assert str(created.version) == number
        client.set_model_version_tag(NAME, number, "metric.macro_auroc", str(auroc))
        client.set_model_version_tag(NAME, number, "eval.data_hash", "a" * 64)


def _wait_for(paths: list[Path], workers: list[subprocess.Popen]) -> None:
    """Until every path exists; a worker that dies fails the test with its output."""
    import time

    while not all(p.exists() for p in paths):
        failed = [w for w in workers if w.poll() not in (None, 0)]
        if failed or all(w.poll() is not None for w in workers):
            if all(p.exists() for p in paths):
                break
            out = "".join(w.stdout.read() for w in failed or workers if w.stdout)
            codes = [w.returncode for w in workers]
            raise AssertionError(f"promote workers exited {codes} early:\n{out}")
        time.sleep(0.01)


def _race(tmp_path: Path, uri: str, env: dict[str, str], rounds: int = ROUNDS) -> list[str]:
    """Run the rounds; the champion version after each."""
    import mlflow

    client = mlflow.MlflowClient(uri)
    _versions(client)
    full_env = {**os.environ, **env, "MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(tmp_path), version, str(rounds)],
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for version in ("2", "3")
    ]
    champions = []
    try:
        _wait_for([tmp_path / "ready-2", tmp_path / "ready-3"], workers)
        for i in range(rounds):
            client.set_registered_model_alias(NAME, CHAMPION, "1")
            (tmp_path / f"go-{i}").touch()
            _wait_for([tmp_path / f"done-{i}-2", tmp_path / f"done-{i}-3"], workers)
            champions.append(str(client.get_model_version_by_alias(NAME, CHAMPION).version))
        for worker in workers:
            out, _ = worker.communicate(timeout=60)
            assert worker.returncode == 0, out
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    # the lock is gone after every round: nothing but the model itself is registered
    names = [m.name for m in client.search_registered_models()]
    assert names == [NAME], names
    return champions


@pytest.mark.slow  # 24 promote processes (~1 min on 2 cores); .ci/run runs it
def test_concurrent_promotes_on_sqlite_end_with_the_better_model(tmp_path: Path) -> None:
    champions = _race(tmp_path, f"sqlite:///{tmp_path / 'mlflow.db'}", {})
    assert champions == ["3"] * ROUNDS


def test_a_held_lock_makes_promote_wait_and_a_stale_one_is_broken(tmp_path, monkeypatch):
    import mlflow

    from ecgflow import registry
    from ecgflow.errors import EcgflowError

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = mlflow.MlflowClient(uri)
    _versions(client)
    with promotion_lock(client, NAME) as token:
        held = client.get_registered_model(f"{NAME}{LOCK_SUFFIX}")
        assert held.tags["ecgflow.lock.owner"] == token
        with pytest.raises(EcgflowError, match=r"another promote holds 'race-model\.promote-lock'"):
            registry.promote(NAME, version="2", lock_timeout_s=0.3, stale_s=60)
        # nothing moved while the lock was held
        with pytest.raises(mlflow.exceptions.MlflowException):
            client.get_model_version_by_alias(NAME, CHAMPION)
    # a lock left behind by a crashed process (created, never deleted) is broken
    client.create_registered_model(f"{NAME}{LOCK_SUFFIX}", tags={"ecgflow.lock.owner": "dead:1"})
    decision = registry.promote(NAME, version="3", lock_timeout_s=30, stale_s=0.2)
    assert decision.promoted
    assert [m.name for m in client.search_registered_models()] == [NAME]


def _auth_server(folder: Path, password: str) -> tuple[str, subprocess.Popen]:
    """``mlflow server --app-name basic-auth`` on a free port; its URL once /health answers."""
    import time
    import urllib.request

    from ecgflow.services import free_ports

    ini = folder / "basic_auth.ini"
    ini.write_text(
        f"[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///{folder / 'auth.db'}\n"
        "admin_username = admin\n"
        # PBKDF2 on every request makes each call take a second on a busy 2-core machine
        "auth_cache_ttl_seconds = 600\n"
    )
    (port,) = free_ports(1)
    env = {
        **os.environ,
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_AUTH_ADMIN_PASSWORD": password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "k" * 32,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    log = (folder / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
         "--artifacts-destination", str(folder / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    while process.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return url, process
        except OSError:
            time.sleep(0.3)
    raise AssertionError((folder / "server.log").read_text(errors="replace")[-3000:])


@pytest.mark.slow
def test_concurrent_promotes_against_an_authenticating_server(tmp_path: Path, monkeypatch):
    """The same race against ``mlflow server --app-name basic-auth``, credentials from env;
    without them the server refuses and promote says which variables to set."""
    pytest.importorskip("flask_wtf", reason="mlflow's basic-auth app needs Flask-WTF")
    from ecgflow import registry
    from ecgflow.deploy import resolve_target
    from ecgflow.errors import EcgflowError

    password = "race-test-password-1"
    url, server = _auth_server(tmp_path, password)
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        with pytest.raises(EcgflowError, match="MLFLOW_TRACKING_USERNAME"):
            registry.promote(NAME)
        creds = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": password}
        for key, value in creds.items():
            monkeypatch.setenv(key, value)
        assert _race(tmp_path, url, creds, rounds=4) == ["3"] * 4
        # deploy resolves the champion through the same credentials
        target = resolve_target(f"models:/{NAME}@{CHAMPION}", artifacts_destination="s3://b")
        assert target.version == "3" and target.storage_uri.startswith("s3://b/")
        monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
        with pytest.raises(EcgflowError, match="MLFLOW_TRACKING_PASSWORD"):
            resolve_target(f"models:/{NAME}@{CHAMPION}")
    finally:
        server.terminate()
        server.wait(timeout=30)
