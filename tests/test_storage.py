"""Local, S3 (real SeaweedFS) and HTTP (real http.server / pytest-httpserver) storages agree."""

from __future__ import annotations

import base64
import hashlib
import os
import random
import shutil
import traceback
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from servers import S3Server, free_ports, listening_addresses

from ecgflow.errors import EcgflowError
from ecgflow.io.storage import (
    HTTPStorage,
    LocalStorage,
    S3Storage,
    Storage,
    TransferError,
    UnsafeNameError,
    check_name,
    clean_rel,
    open_storage,
    unsafe_reason,
)

N_RECORDS = 5


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def local_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def headers_of(root: Path) -> list[str]:
    return [f for f in local_files(root) if f.endswith(".hea")]


def write_records(root: Path) -> None:
    """A PhysioNet RECORDS file naming every header of the tree (without ``.hea``)."""
    names = [h[: -len(".hea")] for h in headers_of(root)]
    (root / "RECORDS").write_text("".join(f"{n}\n" for n in names))


def _ptbxl_tree(shared: Path, dest: Path) -> None:
    src = shared / "ptbxl"
    for name in ("ptbxl_database.csv", "scp_statements.csv"):
        shutil.copy2(src / name, dest / name)
    headers = sorted((src / "records100").rglob("*.hea"))[:N_RECORDS]
    for header in headers:
        for path in (header, header.with_suffix(".dat")):
            target = dest / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def _synthetic_tree(dest: Path) -> None:
    rng = random.Random(7)
    (dest / "ptbxl_database.csv").write_text("ecg_id,filename_lr\n1,records100/00000/00001_lr\n")
    (dest / "scp_statements.csv").write_text(",description\nNORM,normal ECG\n")
    for i in range(1, N_RECORDS + 1):
        folder = dest / "records100" / "00000"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{i:05d}_lr"
        header = f"{name} 1 100 1000\n{name}.dat 16 1000/mV 16 0 0 0 0 I\n"
        (folder / f"{name}.hea").write_text(header)
        (folder / f"{name}.dat").write_bytes(rng.randbytes(2000))
    (dest / "notes with space" / "read me.txt").parent.mkdir()
    (dest / "notes with space" / "read me.txt").write_text("spaces survive quoting\n")
    # bigger than one download chunk (1 MiB) and than s3transfer's multipart threshold (8 MiB)
    (dest / "big.bin").write_bytes(rng.randbytes(9 * 1024 * 1024 + 123))


@pytest.fixture(params=["ptbxl", "synthetic"])
def tree(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A small dataset folder: real PTB-XL files (skipped without shared data) or synthetic."""
    root = tmp_path / "tree"
    root.mkdir()
    if request.param == "ptbxl":
        _ptbxl_tree(request.getfixturevalue("shared_data"), root)
    else:
        _synthetic_tree(root)
    return root


def assert_same_files(storage: Storage, root: Path, files: list[str], tmp_path: Path) -> None:
    """Every file reads and downloads to the same bytes as on disk."""
    for rel in files:
        expected = sha256((root / rel).read_bytes())
        assert storage.exists(rel), rel
        if (root / rel).stat().st_size < 1024 * 1024:
            assert sha256(storage.read_bytes(rel)) == expected, rel
        dest = storage.download(rel, tmp_path / "dl" / type(storage).__name__ / rel)
        assert dest == tmp_path / "dl" / type(storage).__name__ / rel
        assert sha256(dest.read_bytes()) == expected, rel
    leftovers = [p for p in (tmp_path / "dl").rglob("*.part")]
    assert leftovers == []


# --- local ---------------------------------------------------------------------------------


def test_local_storage_lists_reads_and_downloads(tree: Path, tmp_path: Path) -> None:
    storage = open_storage(str(tree))
    assert isinstance(storage, LocalStorage)
    assert storage.uri == str(tree)
    files = local_files(tree)
    assert storage.list_files() == files
    assert "ptbxl_database.csv" in files
    assert len(headers_of(tree)) == N_RECORDS
    assert_same_files(storage, tree, files, tmp_path)
    header = headers_of(tree)[0]
    assert storage.local_path(header) == tree.resolve() / header
    assert storage.read_text(header).split()[0] == Path(header).stem
    assert not storage.exists("nope.hea")
    assert not storage.exists("records100")  # a folder is not a file


def test_file_uri_and_pathlike(tree: Path) -> None:
    via_uri = open_storage(tree.as_uri())
    assert isinstance(via_uri, LocalStorage)
    assert via_uri.uri == tree.as_uri()
    assert via_uri.list_files() == open_storage(tree).list_files()


def test_local_missing_file_names_full_path(tmp_path: Path) -> None:
    storage = open_storage(tmp_path)
    with pytest.raises(EcgflowError, match="not found") as info:
        storage.read_bytes("records100/nope.hea")
    assert str(tmp_path.resolve() / "records100" / "nope.hea") in str(info.value)
    with pytest.raises(EcgflowError, match="not found"):
        storage.download("nope.dat", tmp_path / "out" / "nope.dat")
    assert not (tmp_path / "out" / "nope.dat").exists()


def test_local_download_onto_itself_is_a_no_op(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")
    storage = LocalStorage(tmp_path)
    assert storage.download("a.txt", tmp_path / "a.txt").read_text() == "x"


def test_read_text_of_binary_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "x.hea").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(EcgflowError, match=r"x\.hea: not valid utf-8"):
        LocalStorage(tmp_path).read_text("x.hea")


def test_open_storage_rejects_bad_locations(tmp_path: Path) -> None:
    with pytest.raises(EcgflowError, match="unsupported storage scheme 'gs'"):
        open_storage("gs://bucket/data")
    with pytest.raises(EcgflowError, match="unsupported") as info:
        open_storage("ftp://user:hunter2@example.org/data")  # fake credential
    assert "hunter2" not in str(info.value)
    with pytest.raises(EcgflowError, match="does not exist"):
        open_storage(tmp_path / "missing")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(EcgflowError, match="not a folder"):
        open_storage(tmp_path / "file.txt")
    with pytest.raises(EcgflowError, match="file:///path"):
        open_storage("file://otherhost/data")


@pytest.mark.parametrize("rel", ["../secret", "a/../../b", "", "/", "./"])
def test_relative_paths_cannot_escape(rel: str) -> None:
    with pytest.raises(EcgflowError, match="invalid relative path"):
        clean_rel(rel)


def test_relative_paths_are_normalised() -> None:
    assert clean_rel("./records100//00000/x.hea") == "records100/00000/x.hea"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "an empty name"),
        ("/tmp/x/pwned.hea", "an absolute path"),
        ("../../evil.hea", "a '..' segment"),
        ("a/../../b.dat", "a '..' segment"),
        ("a//b.hea", "an empty segment"),
        ("sub/", "an empty segment"),
        ("./a.hea", "a '.' segment"),
        ("a\\..\\b.hea", "a backslash"),
        ("a\x00.hea", "a control character"),
        ("a\nb.hea", "a control character"),
    ],
)
def test_untrusted_names_must_be_canonical_relative_paths(name: str, reason: str) -> None:
    assert reason in (unsafe_reason(name) or "")
    with pytest.raises(UnsafeNameError, match="not a path below the source root"):
        check_name(name)


@pytest.mark.parametrize(
    "name", ["a.hea", "records100/00000/00001_lr.dat", "has space.txt", "x..y"]
)
def test_plain_names_are_safe(name: str) -> None:
    assert unsafe_reason(name) is None and check_name(name) == name


def test_local_storage_never_reads_through_a_symlink_out_of_the_root(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.dat").write_bytes(b"secret")
    (root / "a.hea").write_text("a 1 500\n")
    (root / "x.dat").symlink_to(outside / "secret.dat")
    (root / "far").symlink_to(outside, target_is_directory=True)
    (root / "again").symlink_to(".", target_is_directory=True)
    storage = LocalStorage(root)
    assert storage.list_files() == ["a.hea"]
    refused = storage.refused()
    assert set(refused) == {"x.dat", "far", "again"}
    assert "outside the source folder" in refused["x.dat"] and "outside" in refused["far"]
    assert "already listed" in refused["again"]
    for rel in ("x.dat", "far/secret.dat"):
        with pytest.raises(EcgflowError, match="outside the source folder"):
            storage.read_bytes(rel)
        with pytest.raises(EcgflowError, match="outside the source folder"):
            storage.download(rel, tmp_path / "copy")
    assert not (tmp_path / "copy").exists()
    assert storage.read_bytes("again/a.hea") == b"a 1 500\n"  # inside the root: readable


HOSTILE_INDEX = """<html><body><pre>
<a href="ok.hea">ok.hea</a> <a href="%2Ftmp%2Fx%2Fpwned.hea">pwned</a>
<a href="..%2F..%2Fup.hea">up</a> <a href="a%2F%2Fb.hea">ab</a> <a href="sub%2F..%2F..%2F">dir</a>
<a href="c%00.hea">nul</a>
</pre></body></html>"""


def test_http_listing_refuses_decoded_names_outside_the_mirror(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/db/RECORDS").respond_with_data("", status=404)
    httpserver.expect_request("/db/").respond_with_data(HOSTILE_INDEX, content_type="text/html")
    storage = open_storage(httpserver.url_for("/db/"))
    assert storage.list_files() == ["ok.hea"]
    refused = storage.refused()
    assert "an absolute path" in refused["/tmp/x/pwned.hea"]
    assert "linked from" in refused["/tmp/x/pwned.hea"]
    assert "a '..' segment" in refused["../../up.hea"]
    assert "an empty segment" in refused["a//b.hea"]
    assert "a '..' segment" in refused["sub/../../"]
    assert "a control character" in refused["c\x00.hea"]


def test_http_records_lines_are_refused_one_by_one(httpserver: HTTPServer) -> None:
    lines = "rec1\n../../evil\n/abs\nsub/\nloop/\n"
    httpserver.expect_request("/db/RECORDS").respond_with_data(lines)
    httpserver.expect_request("/db/sub/RECORDS").respond_with_data("rec2\n")
    httpserver.expect_request("/db/loop/RECORDS").respond_with_data("x\n", status=404)
    httpserver.expect_request("/db/").respond_with_data("", status=404)
    storage = open_storage(httpserver.url_for("/db/"))
    assert storage.list_files() == ["RECORDS", "rec1.hea", "sub/RECORDS", "sub/rec2.hea"]
    refused = storage.refused()
    assert refused["../../evil.hea"].startswith("RECORDS line 2: record '../../evil'")
    assert "an absolute path" in refused["/abs.hea"]
    assert refused["loop/RECORDS"].startswith("RECORDS line 5: not found")


# --- HTTP: python http.server ---------------------------------------------------------------


def test_http_directory_index_crawl(
    tree: Path, http_mirror: Callable[..., str], tmp_path: Path
) -> None:
    base = http_mirror(tree)
    storage = open_storage(base.rstrip("/"))  # the trailing slash is added
    assert isinstance(storage, HTTPStorage)
    assert storage.base_url == base
    files = local_files(tree)
    assert storage.list_files() == files
    assert_same_files(storage, tree, files, tmp_path)
    assert not storage.exists("records100")  # a folder redirects to "records100/"
    assert not storage.exists("nope.hea")


def test_http_records_file_with_index(
    tree: Path, http_mirror: Callable[..., str], tmp_path: Path
) -> None:
    write_records(tree)
    storage = open_storage(http_mirror(tree))
    top_level = [p.name for p in tree.iterdir() if p.is_file()]
    expected = sorted({*headers_of(tree), *top_level})
    assert "RECORDS" in expected and "ptbxl_database.csv" in expected
    assert storage.list_files() == expected
    assert_same_files(storage, tree, expected, tmp_path)
    dat = headers_of(tree)[0].replace(".hea", ".dat")  # fetched by name, not listed
    assert sha256(storage.read_bytes(dat)) == sha256((tree / dat).read_bytes())


def test_http_records_file_without_index(tree: Path, http_mirror: Callable[..., str]) -> None:
    write_records(tree)
    storage = open_storage(http_mirror(tree, listing=False))
    assert storage.list_files() == ["RECORDS", *headers_of(tree)]
    assert storage.exists("ptbxl_database.csv")  # not listed, but readable by name


def test_http_nested_records(tmp_path: Path, http_mirror: Callable[..., str]) -> None:
    """Multi-level PhysioNet databases: ``p00/`` lines point at ``p00/RECORDS``."""
    root = tmp_path / "mirror"
    for folder, records in {"p00": ["p000020/rec-a", "p000020/rec-b"], "p01": ["rec-c"]}.items():
        (root / folder).mkdir(parents=True)
        (root / folder / "RECORDS").write_text("\n".join(records) + "\n\n")
    (root / "RECORDS").write_text("# multi-level\np00/\np01/\n")
    storage = open_storage(http_mirror(root, listing=False))
    assert storage.list_files() == [
        "RECORDS",
        "p00/RECORDS",
        "p00/p000020/rec-a.hea",
        "p00/p000020/rec-b.hea",
        "p01/RECORDS",
        "p01/rec-c.hea",
    ]


def test_http_without_records_or_index_is_a_clear_error(
    tree: Path, http_mirror: Callable[..., str]
) -> None:
    storage = open_storage(http_mirror(tree, listing=False))
    with pytest.raises(EcgflowError, match="neither a RECORDS file nor an HTML directory index"):
        storage.list_files()


def test_http_missing_file_names_the_url(tmp_path: Path, http_mirror: Callable[..., str]) -> None:
    base = http_mirror(tmp_path)
    storage = open_storage(base)
    with pytest.raises(EcgflowError, match="not found") as info:
        storage.read_bytes("records100/nope.hea")
    assert f"{base}records100/nope.hea" in str(info.value)
    with pytest.raises(EcgflowError, match="not found"):
        storage.download("nope.dat", tmp_path / "out" / "nope.dat")
    assert list((tmp_path / "out").iterdir()) == []  # no partial file left behind
    assert storage.local_path("nope.dat") is None


def test_http_unreachable(tmp_path: Path) -> None:
    port = free_ports(1)[0]
    storage = HTTPStorage(f"http://127.0.0.1:{port}/data", retries=0)
    with pytest.raises(EcgflowError, match=f"cannot reach http://127.0.0.1:{port}/data/RECORDS"):
        storage.list_files()


# --- HTTP: crafted responses (pytest-httpserver) --------------------------------------------

APACHE_STYLE_INDEX = """<!DOCTYPE html><html><head><title>Index of /files/db/1.0/</title></head>
<body><h1>Index of /files/db/1.0/</h1>
<a href="?C=N;O=D">Name</a> <a href="?C=M;O=A">Last modified</a>
<a href="/files/db/">Parent Directory</a> <a href="../">../</a>
<a href="/about/">About</a> <a href="https://example.org/elsewhere.csv">elsewhere</a>
<a href="ptbxl_database.csv">ptbxl_database.csv</a>
<a href="ptbxl_database.csv?download">download</a>
<a href="LICENSE.txt#top">LICENSE.txt</a>
<a href="records100/">records100/</a>
<a href="http://{host}/files/db/1.0/has%20space.txt">has space.txt</a>
<a href="#content">skip to content</a> <a>no href</a>
</body></html>"""

SUB_INDEX = """<html><body><pre><a href="../">../</a>
<a href="00001_lr.hea">00001_lr.hea</a> <a href="00001_lr.dat">00001_lr.dat</a>
<a href="/files/db/1.0/">up to the base</a> <a href="./">.</a>
</pre></body></html>"""


def test_http_crawl_skips_parent_sort_and_foreign_links(httpserver: HTTPServer) -> None:
    html = {"content_type": "text/html; charset=utf-8"}
    host = f"{httpserver.host}:{httpserver.port}"
    httpserver.expect_request("/files/db/1.0/RECORDS").respond_with_data("", status=404)
    httpserver.expect_request("/files/db/1.0/").respond_with_data(
        APACHE_STYLE_INDEX.replace("{host}", host), **html
    )
    httpserver.expect_request("/files/db/1.0/records100/").respond_with_data(SUB_INDEX, **html)
    storage = open_storage(httpserver.url_for("/files/db/1.0"))
    assert storage.list_files() == [
        "LICENSE.txt",
        "has space.txt",
        "ptbxl_database.csv",
        "records100/00001_lr.dat",
        "records100/00001_lr.hea",
    ]


def test_http_retries_transient_errors(httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request("/m/x.hea").respond_with_data("busy", status=503)
    httpserver.expect_request("/m/x.hea").respond_with_data("x 1 100 10\n")
    storage = HTTPStorage(httpserver.url_for("/m/"), backoff_factor=0)
    assert storage.read_text("x.hea") == "x 1 100 10\n"


def test_http_credentials_are_used_but_never_shown(httpserver: HTTPServer) -> None:
    secret = "pa55-" + uuid.uuid4().hex
    token = base64.b64encode(f"alice:{secret}".encode()).decode()
    httpserver.expect_request(
        "/db/x.hea", headers={"Authorization": f"Basic {token}"}
    ).respond_with_data("ok")
    httpserver.expect_request("/db/locked.hea").respond_with_data("no", status=403)
    url = httpserver.url_for("/db/").replace("://", f"://alice:{secret}@")
    storage = open_storage(url)
    assert storage.read_text("x.hea") == "ok"
    assert secret not in storage.uri and "alice" not in storage.uri
    assert secret not in storage.describe("x.hea") and secret not in repr(storage)
    with pytest.raises(EcgflowError, match="access denied") as info:
        storage.read_bytes("locked.hea")
    assert secret not in "".join(traceback.format_exception(info.value))


# --- S3: real SeaweedFS ---------------------------------------------------------------------


@pytest.fixture
def s3_env(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[S3Server]:
    """Point the standard AWS variables at the SeaweedFS server, isolated from ~/.aws."""
    for name in list(os.environ):
        if name.startswith("AWS_") and name != "AWS_CA_BUNDLE":
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never probe 169.254.169.254
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    yield s3_server


def upload(server: S3Server, root: Path, bucket: str, prefix: str) -> None:
    client = server.client()
    client.create_bucket(Bucket=bucket)
    for rel in local_files(root):
        key = f"{prefix}/{rel}" if prefix else rel
        client.upload_file(str(root / rel), bucket, key)
    client.put_object(Bucket=bucket, Key="outside-the-prefix.txt", Body=b"not listed")
    if prefix:  # a "folder" marker, as consoles create: not a file
        client.put_object(Bucket=bucket, Key=f"{prefix}/records100/", Body=b"")


def new_bucket() -> str:
    return f"ecg-{uuid.uuid4().hex[:12]}"


def test_s3_lists_reads_and_downloads(tree: Path, s3_env: S3Server, tmp_path: Path) -> None:
    bucket = new_bucket()
    upload(s3_env, tree, bucket, "datasets/ptbxl")
    uri = f"s3://{bucket}/datasets/ptbxl/"
    storage = open_storage(uri)
    assert isinstance(storage, S3Storage)
    assert storage.uri == uri
    # boto3 >= 1.28 reads AWS_ENDPOINT_URL itself
    assert storage.client.meta.endpoint_url == s3_env.endpoint_url
    files = local_files(tree)
    assert storage.list_files() == files
    assert_same_files(storage, tree, files, tmp_path)
    assert storage.local_path(files[0]) is None
    assert not storage.exists("records100")
    assert storage.describe("RECORDS") == (
        f"s3://{bucket}/datasets/ptbxl/RECORDS (endpoint {s3_env.endpoint_url})"
    )


def test_s3_listing_is_paginated(tmp_path: Path, s3_env: S3Server) -> None:
    root = tmp_path / "many"
    root.mkdir()
    for i in range(7):
        (root / f"r{i}.hea").write_text(str(i))
    bucket = new_bucket()
    upload(s3_env, root, bucket, "")
    storage = S3Storage(f"s3://{bucket}")
    storage.page_size = 2
    calls: list[str] = []
    storage.client.meta.events.register(
        "before-call.s3.ListObjectsV2", lambda **kwargs: calls.append("list")
    )
    assert storage.list_files() == sorted([*local_files(root), "outside-the-prefix.txt"])
    assert len(calls) >= 4
    assert storage.list_files() == storage.list_files()  # cached: no more requests
    assert len(calls) <= 5


def test_s3_missing_key_and_bucket(s3_env: S3Server, tmp_path: Path) -> None:
    bucket = new_bucket()
    s3_env.client().create_bucket(Bucket=bucket)
    storage = open_storage(f"s3://{bucket}/data")
    assert storage.list_files() == []
    assert not storage.exists("nope.hea")
    where = f"s3://{bucket}/data/records100/nope.hea (endpoint {s3_env.endpoint_url})"
    with pytest.raises(EcgflowError, match="not found") as info:
        storage.read_bytes("records100/nope.hea")
    assert where in str(info.value)
    with pytest.raises(EcgflowError, match="not found"):
        storage.download("nope.dat", tmp_path / "out" / "nope.dat")
    assert list((tmp_path / "out").iterdir()) == []
    with pytest.raises(EcgflowError, match=r"bucket 'no-such-bucket-\w+' does not exist"):
        open_storage(f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/x").list_files()


@pytest.mark.parametrize("wrong", ["secret", "access_key"])
def test_s3_wrong_credentials_never_leak_the_secret(
    wrong: str, s3_env: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = new_bucket()
    client = s3_env.client()
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="data/x.hea", Body=b"x")
    bad_secret = "wrong-" + uuid.uuid4().hex
    if wrong == "secret":
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", bad_secret)
    else:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKNOBODY")
    storage = open_storage(f"s3://{bucket}/data")
    for action in (
        storage.list_files,
        lambda: storage.read_bytes("x.hea"),
        lambda: storage.exists("x.hea"),
    ):
        with pytest.raises(EcgflowError, match=r"access denied.*credentials") as info:
            action()
        shown = "".join(traceback.format_exception(info.value))
        assert bad_secret not in shown and s3_env.secret_key not in shown


def test_s3_without_credentials(s3_env: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(EcgflowError, match=r"no usable AWS credentials.*AWS_ACCESS_KEY_ID"):
        open_storage("s3://some-bucket/data").read_bytes("x.hea")


def test_s3_endpoint_unreachable(s3_env: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    dead = f"http://127.0.0.1:{free_ports(1)[0]}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("ECGFLOW_S3_RETRY_S", "0")  # no backoff on top of botocore's attempts
    with pytest.raises(TransferError, match=f"cannot reach the S3 endpoint {dead}"):
        open_storage("s3://some-bucket/data").list_files()
    with pytest.raises(TransferError, match="cannot reach"):
        S3Storage("s3://some-bucket/data", endpoint_url=dead, max_attempts=2).exists("x")
    with pytest.raises(TransferError, match=r"cannot reach .*gave up after \d+ tries"):
        S3Storage("s3://some-bucket/data", retry_s=1.5).read_bytes("x")
    monkeypatch.setenv("ECGFLOW_S3_RETRY_S", "soon")
    with pytest.raises(EcgflowError, match="ECGFLOW_S3_RETRY_S='soon'"):
        S3Storage("s3://some-bucket/data")


def test_s3_uri_validation() -> None:
    with pytest.raises(EcgflowError, match="expected s3://bucket/prefix"):
        S3Storage("s3:///prefix-only")
    with pytest.raises(EcgflowError, match="not supported") as info:
        open_storage("s3://AKID:topsecret@bucket/data")  # fake credential
    assert "topsecret" not in str(info.value)


def test_seaweedfs_listens_only_on_the_chosen_loopback_ports(s3_server: S3Server) -> None:
    if not Path("/proc/self/net/tcp").exists():
        pytest.skip("needs Linux /proc to list listening sockets")
    listening = listening_addresses(s3_server.process.pid)
    assert listening == {("127.0.0.1", port) for port in s3_server.ports.values()}
    assert len(s3_server.ports) == 8  # HTTP + gRPC of master, volume, filer and S3


def test_s3_bad_client_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "localhost:9000")  # no scheme
    with pytest.raises(EcgflowError, match="cannot set up an S3 client for s3://bucket/x"):
        open_storage("s3://bucket/x")
