"""Start a real ``mlflow server`` on 127.0.0.1 for tests, with its log captured."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from servers import free_ports


@dataclass
class MlflowServer:
    """A running tracking server and where its log goes."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        """Terminate it and wait."""
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's output (for failure messages)."""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def start_mlflow_server(
    folder: Path, artifacts: str, env: dict[str, str], timeout: float = 90.0
) -> MlflowServer:
    """``mlflow server`` with a SQLite store in ``folder`` and artifacts at ``artifacts``."""
    (port,) = free_ports(1)
    log_path = folder / "mlflow-server.log"
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
        "--artifacts-destination", artifacts,
    ]  # fmt: skip
    full_env = {**os.environ, **env, "MLFLOW_DISABLE_TELEMETRY": "true"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=full_env)
    server = MlflowServer(f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"{server.url}/health", timeout=2) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.3)
    server.stop()
    raise RuntimeError(f"mlflow server did not answer in {timeout} s:\n{server.log_tail()}")
