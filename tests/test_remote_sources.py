"""Ingest from a real SeaweedFS S3 server and a real HTTP mirror gives what a local ingest gives."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from datasets import ptbxl_copy

from ecgflow.errors import EcgflowError
from ecgflow.stages.ingest import IngestParams, ingest

IDS = list(range(1, 81))


def upload(client, bucket: str, prefix: str, folder: Path) -> None:
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder).as_posix()}")


@pytest.fixture(scope="module")
def ptbxl_subset(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ptbxl_copy(shared_data, tmp_path_factory.mktemp("subset") / "ptbxl", IDS)


def test_s3_ptbxl_equals_local(s3_server, ptbxl_subset, tmp_path, monkeypatch) -> None:
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    client = s3_server.client()
    client.create_bucket(Bucket="ecg-data")
    upload(client, "ecg-data", "datasets/ptbxl", ptbxl_subset)

    local = ingest(IngestParams(source=f"ptbxl:{ptbxl_subset}"), tmp_path / "local")
    remote = ingest(IngestParams(source="s3://ecg-data/datasets/ptbxl", workers=2), tmp_path / "s3")
    assert remote.dataset == "ptbxl" and remote.accepted == local.accepted == len(IDS)
    for name in ("records.parquet", "rejected.parquet"):
        assert (tmp_path / "s3" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
    assert (tmp_path / "s3" / "raw" / "scp_statements.csv").is_file()


def test_s3_missing_bucket_is_a_user_error(s3_server, tmp_path, monkeypatch) -> None:
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    with pytest.raises(EcgflowError, match="no-such-bucket"):
        ingest(IngestParams(source="cinc:s3://no-such-bucket/x"), tmp_path / "o")


def test_http_mirror_of_ptbxl_equals_local(shared_data, http_mirror, tmp_path) -> None:
    mirror = tmp_path / "mirror"
    shutil.copytree(shared_data / "ptbxl", mirror)
    url = http_mirror(mirror, listing=False)  # PTB-XL needs only its database CSV
    local = ingest(IngestParams(source=f"ptbxl:{mirror}", limit=60), tmp_path / "local")
    remote = ingest(IngestParams(source=url, limit=60), tmp_path / "http")
    assert remote.dataset == "ptbxl" and remote.accepted == local.accepted == 60
    for name in ("records.parquet", "rejected.parquet"):
        assert (tmp_path / "http" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()


def test_http_mirror_with_records_file(shared_data, http_mirror, tmp_path) -> None:
    mirror = tmp_path / "cinc"
    mirror.mkdir()
    names = ["E07500", "HR06000", "JS20000"]
    for name in names:
        for suffix in (".hea", ".mat"):
            shutil.copy(shared_data / "cinc2021" / f"{name}{suffix}", mirror)
    (mirror / "RECORDS").write_text("\n".join(names) + "\n")
    url = http_mirror(mirror, listing=False)
    result = ingest(IngestParams(source=url), tmp_path / "o")
    records = pd.read_parquet(tmp_path / "o" / "records.parquet")
    assert result.dataset == "cinc" and sorted(records["record_id"]) == names


def test_http_mirror_listing_crawl_and_missing_file(shared_data, http_mirror, tmp_path) -> None:
    mirror = tmp_path / "c15"
    shutil.copytree(shared_data / "code15", mirror)
    (mirror / "1111.dat").unlink()
    url = http_mirror(mirror, listing=True)
    result = ingest(IngestParams(source=url), tmp_path / "o")
    rejected = pd.read_parquet(tmp_path / "o" / "rejected.parquet")
    assert result.dataset == "code15" and result.accepted == 2
    assert rejected["path"].tolist() == ["1111.hea"]
    assert "1111.dat" in rejected["reason"][0] and "missing" in rejected["reason"][0]
