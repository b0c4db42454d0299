"""Untrusted input stays contained (issue 28): the real ``ecgflow`` CLI against crafted sources.

Sources are real folders (with symlinks), a real HTTP mirror on 127.0.0.1 and an S3 endpoint
on 127.0.0.1. Each test snapshots everything outside ``--out`` and checks that no name from a
listing, header or ``RECORDS`` line wrote, overwrote or deleted anything there, and that what
was refused is listed in ``rejected.parquet`` with its reason.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, unquote

import numpy as np
import pandas as pd
import pytest
import wfdb

from ecgflow.manifest import INCOMPLETE, MANIFEST

LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``ecgflow ARGS`` in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "ecgflow.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONIOENCODING": "utf-8", **(env or {})},
    )


def said(proc: subprocess.CompletedProcess[str]) -> str:
    """Everything the process printed, with whitespace runs folded to one space."""
    return " ".join((proc.stdout + proc.stderr).split())


def write_record(folder: Path, name: str, seed: int) -> None:
    """A real 12-lead WFDB record (format 16, 500 Hz, 1 s) named ``name`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    signal = np.random.default_rng(seed).normal(scale=0.3, size=(500, 12))
    wfdb.wrsamp(
        name, fs=500, units=["mV"] * 12, sig_name=LEADS, p_signal=signal, fmt=["16"] * 12,
        adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(folder),
    )  # fmt: skip


def snapshot(root: Path, *skip: Path) -> dict[str, str]:
    """sha256 of every file (and the target of every symlink) below ``root``, except ``skip``."""
    found: dict[str, str] = {}
    for folder, dirs, names in os.walk(root):
        here = Path(folder)
        dirs[:] = [d for d in dirs if here / d not in skip]
        for name in (*names, *dirs):
            path = here / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[rel] = f"-> {os.readlink(path)}"
            elif path.is_file():
                found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def outputs(out: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """records.parquet and ``{path: reason}`` of rejected.parquet."""
    rejected = pd.read_parquet(out / "rejected.parquet")
    return pd.read_parquet(out / "records.parquet"), dict(
        zip(rejected["path"], rejected["reason"], strict=True)
    )


# --- part 1: names from listings ---------------------------------------------------------------


def test_http_index_links_cannot_write_or_delete_outside_out(http_mirror, tmp_path: Path) -> None:
    """``href="%2F<victim>%2Fpwned.hea"`` once created, overwrote and deleted files there."""
    mirror, victim, out = tmp_path / "mirror", tmp_path / "victim", tmp_path / "out"
    write_record(mirror, "rec1", 1)
    write_record(mirror, "rec2", 2)
    victim.mkdir()
    (victim / "existing.hea").write_bytes(b"precious, not a header\n")
    # what the server answers for the crafted links (it maps /%2Fvictim%2Fx to mirror/victim/x)
    served = mirror / victim.relative_to("/")
    write_record(served, "pwned", 3)
    (served / "existing.hea").write_text("garbage\n")
    encoded = quote(f"/{victim.relative_to('/')}/", safe="")
    links = [
        "rec1.hea", "rec1.dat", "rec2.hea", "rec2.dat",
        f"{encoded}pwned.hea", f"{encoded}pwned.dat", f"{encoded}existing.hea",
        "..%2F..%2Fescape.hea", "a%2F%2Fb.hea", "sub%2F.%2Fc.hea",
    ]  # fmt: skip
    body = "".join(f'<a href="{link}">{link}</a>\n' for link in links)
    (mirror / "index.html").write_text(f"<html><body><pre>{body}</pre></body></html>")
    before = snapshot(tmp_path, out)

    proc = cli("ingest", "--source", f"folder:{http_mirror(mirror)}", "--out", str(out))

    assert proc.returncode == 0, proc.stderr
    assert snapshot(tmp_path, out) == before  # nothing written, overwritten or deleted
    records, rejected = outputs(out)
    assert sorted(records["record_id"]) == ["rec1", "rec2"]
    absolute = {
        f"/{victim.relative_to('/')}/{n}" for n in ("pwned.hea", "pwned.dat", "existing.hea")
    }
    assert absolute <= set(rejected)
    assert all("an absolute path" in rejected[name] for name in absolute)
    assert "a '..' segment" in rejected["../../escape.hea"]
    assert "an empty segment" in rejected["a//b.hea"]
    assert "a '.' segment" in rejected["sub/./c.hea"]
    assert sorted(p.name for p in (out / "raw").rglob("*")) == sorted(links[:4])


def test_records_lines_reject_only_their_record(http_mirror, tmp_path: Path) -> None:
    """A bad ``RECORDS`` line used to abort the whole ingest (exit 2, nothing listed)."""
    mirror, out = tmp_path / "mirror", tmp_path / "out"
    write_record(mirror, "rec1", 1)
    write_record(mirror / "sub", "rec2", 2)
    (mirror / "sub" / "RECORDS").write_text("rec2\n")
    (mirror / "RECORDS").write_text(
        f"rec1\n../../evil\n{tmp_path}/abs\nsub/\nnowhere/\n./\nsub//x\n"
    )
    url = http_mirror(mirror, listing=False)
    before = snapshot(tmp_path, out)

    proc = cli("ingest", "--source", f"folder:{url}", "--out", str(out))

    assert proc.returncode == 0, proc.stderr
    records, rejected = outputs(out)
    assert sorted(records["record_id"]) == ["rec1", "sub/rec2"]
    assert rejected["../../evil.hea"].startswith("RECORDS line 2: record '../../evil'")
    assert "an absolute path" in rejected[f"{tmp_path}/abs.hea"]
    assert "not found" in rejected["nowhere/RECORDS"]
    assert "a '.' segment" in rejected["./"]
    assert "an empty segment" in rejected["sub//x.hea"]
    assert snapshot(tmp_path, out) == before

    strict = cli("ingest", "--source", f"folder:{url}", "--out", str(tmp_path / "s"), "--strict")
    assert strict.returncode == 2 and "5 input(s) rejected" in strict.stdout + strict.stderr
    assert len(pd.read_parquet(tmp_path / "s" / "rejected.parquet")) == 5


def test_malformed_headers_reject_only_their_record(tmp_path: Path) -> None:
    """Record name ``../../evil`` in a header used to abort the ingest with exit 2."""
    source, out = tmp_path / "src", tmp_path / "out"
    write_record(source, "rec1", 1)
    write_record(source, "evil", 2)
    write_record(source, "up", 3)
    write_record(source, "abs", 4)
    header = (source / "evil.hea").read_text()
    (source / "evil.hea").write_text(header.replace("evil 12", "../../evil 12", 1))
    (source / "up.hea").write_text((source / "up.hea").read_text().replace("up.dat", "../up.dat"))
    (source / "abs.hea").write_text(
        (source / "abs.hea").read_text().replace("abs.dat", str(source / "rec1.dat"))
    )
    before = snapshot(tmp_path, out)

    proc = cli("ingest", "--source", f"folder:{source}", "--out", str(out))

    assert proc.returncode == 0, proc.stderr
    records, rejected = outputs(out)
    assert records["record_id"].tolist() == ["rec1"]
    assert "malformed WFDB header" in rejected["evil.hea"]
    assert "'../up.dat'" in rejected["up.hea"]
    assert f"'{source / 'rec1.dat'}'" in rejected["abs.hea"]
    assert snapshot(tmp_path, out) == before
    assert sorted(p.name for p in (out / "raw").iterdir()) == ["rec1.dat", "rec1.hea"]

    strict = cli("ingest", "--source", f"folder:{source}", "--out", str(tmp_path / "s"), "--strict")
    assert strict.returncode == 2 and "evil.hea" in strict.stdout + strict.stderr
    assert (tmp_path / "s" / "rejected.parquet").is_file()


def test_record_ids_from_header_comments_must_be_safe(tmp_path: Path) -> None:
    """A CODE-15% ``Exam ID`` becomes the record id, which later stages use in file names."""
    source = tmp_path / "src"
    for name, exam in (("a", "1001"), ("b", "../../../x"), ("c", "/tmp/y")):
        write_record(source, name, len(name) + ord(name))
        with (source / f"{name}.hea").open("a") as header:
            header.write(f"# Exam ID: {exam}\n# Patient ID: 7\n# Chagas label: False\n")
    proc = cli("ingest", "--source", f"code15:{source}", "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    records, rejected = outputs(tmp_path / "out")
    assert records["record_id"].tolist() == ["1001"]
    assert "record id '../../../x' is unsafe" in rejected["b.hea"]
    assert "record id '/tmp/y' is unsafe" in rejected["c.hea"]


def test_symlinks_are_not_followed_out_of_the_source(tmp_path: Path) -> None:
    """Symlinked folders and files outside were copied; a loop gave 278 nested copies."""
    source, outside, out = tmp_path / "src", tmp_path / "outside", tmp_path / "out"
    write_record(source, "rec1", 1)
    write_record(source, "rec2", 2)
    write_record(outside, "far", 3)
    (outside / "secret.dat").write_bytes((outside / "far.dat").read_bytes())
    (source / "rec2.dat").unlink()
    (source / "rec2.dat").symlink_to(outside / "secret.dat")  # a header's signal file, outside
    (source / "linked").symlink_to(outside, target_is_directory=True)
    (source / "loop").symlink_to(source, target_is_directory=True)
    (source / "sub").mkdir()
    (source / "sub" / "up").symlink_to("..", target_is_directory=True)
    (source / "alias.hea").symlink_to("rec1.hea")
    (source / "broken.hea").symlink_to("nowhere.hea")
    before = snapshot(tmp_path, out)

    proc = cli("ingest", "--source", f"folder:{source}", "--out", str(out))

    assert proc.returncode == 0, proc.stderr
    records, rejected = outputs(out)
    assert records["record_id"].tolist() == ["rec1"]
    assert "outside the source folder" in rejected["linked"]
    assert "outside the source folder" in rejected["rec2.dat"]
    assert "outside the source folder" in rejected["rec2.hea"]
    assert "already listed" in rejected["loop"] and "already listed" in rejected["sub/up"]
    assert "the file rec1.hea of the source, already listed" in rejected["alias.hea"]
    assert "broken or a loop" in rejected["broken.hea"]
    copied = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert copied == [
        MANIFEST,
        "raw/rec1.dat",
        "raw/rec1.hea",
        "records.parquet",
        "rejected.parquet",
    ]
    assert snapshot(tmp_path, out) == before


def test_byte_identical_records_are_flagged(tmp_path: Path) -> None:
    source = tmp_path / "src"
    write_record(source, "rec1", 1)
    write_record(source, "rec2", 2)
    write_record(source, "same", 1)  # the same samples under another name
    proc = cli("ingest", "--source", f"folder:{source}", "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    records, _ = outputs(tmp_path / "out")
    duplicate_of = dict(zip(records["record_id"], records["duplicate_of"], strict=True))
    assert duplicate_of == {"rec1": None, "rec2": None, "same": "rec1"}


S3_LIST = """<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>ecg</Name>
<Prefix>{prefix}</Prefix><KeyCount>{n}</KeyCount><MaxKeys>1000</MaxKeys>{encoding}
<IsTruncated>false</IsTruncated>{contents}</ListBucketResult>"""
S3_ITEM = """<Contents><Key>{key}</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified>
<ETag>"{etag}"</ETag><Size>{size}</Size><StorageClass>STANDARD</StorageClass></Contents>"""


def test_s3_keys_with_leading_or_doubled_slashes(httpserver, tmp_path: Path) -> None:
    """Keys ``data//<victim>/x`` (prefix ``data``) made ``raw_dir / key`` an absolute path.

    SeaweedFS folds doubled slashes, so an S3 endpoint that keeps keys as AWS does is served
    from 127.0.0.1 here (ListObjectsV2, HeadObject, GetObject), for the real boto3 client.
    """
    from werkzeug import Request, Response

    source, victim, out = tmp_path / "src", tmp_path / "victim", tmp_path / "out"
    write_record(source, "rec1", 1)
    write_record(source, "evil", 2)
    victim.mkdir()
    (victim / "keep.hea").write_text("precious\n")
    objects = {f"data/{p.name}": p.read_bytes() for p in sorted(source.iterdir())}
    for name in ("evil.hea", "evil.dat"):
        objects[f"data/{victim}/{name}"] = objects[f"data/{name}"]  # data//tmp/.../evil.hea
    objects[f"data/{victim}/keep.hea"] = b"garbage\n"
    objects["data/sub/../../up.hea"] = objects["data/evil.hea"]

    folded = {re.sub("/+", "/", key): body for key, body in objects.items()}

    def handle(request: Request) -> Response:
        raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or ""
        path = raw.partition("?")[0]
        if path.rstrip("/") == "/ecg" and request.args.get("list-type") == "2":
            prefix = request.args.get("prefix", "")
            url = request.args.get("encoding-type") == "url"
            keys = sorted(k for k in objects if k.startswith(prefix))
            contents = "".join(
                S3_ITEM.format(
                    key=quote(k, safe="/") if url else k,
                    etag=hashlib.md5(objects[k]).hexdigest(),
                    size=len(objects[k]),
                )
                for k in keys
            )
            encoding = "<EncodingType>url</EncodingType>" if url else ""
            text = S3_LIST.format(prefix=prefix, n=len(keys), encoding=encoding, contents=contents)
            return Response(text, content_type="application/xml")
        key = unquote(re.sub(r"^/ecg/", "", path))
        body = objects.get(key, folded.get(re.sub("/+", "/", key)))  # as SeaweedFS would
        if body is None:
            return Response("<Error><Code>NoSuchKey</Code></Error>", status=404)
        headers = {
            "ETag": f'"{hashlib.md5(body).hexdigest()}"',
            "Last-Modified": "Thu, 01 Jan 2026 00:00:00 GMT",
            "Content-Length": str(len(body)),
        }
        data = b"" if request.method == "HEAD" else body
        return Response(data, headers=headers, content_type="binary/octet-stream")

    httpserver.expect_request(re.compile(r"^/ecg.*")).respond_with_handler(handle)
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{httpserver.port}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "ECGFLOW_S3_RETRY_S": "0",
        "AWS_MAX_ATTEMPTS": "1",
    }
    before = snapshot(tmp_path, out)

    proc = cli("ingest", "--source", "folder:s3://ecg/data", "--out", str(out), env=env)

    assert proc.returncode == 0, proc.stderr
    assert snapshot(tmp_path, out) == before
    records, rejected = outputs(out)
    assert sorted(records["record_id"]) == ["evil", "rec1"]
    for name in ("evil.hea", "evil.dat", "keep.hea"):
        assert "an absolute path" in rejected[f"{victim}/{name}"]
    assert "a '..' segment" in rejected["sub/../../up.hea"]


# --- part 2: inputs are never touched ----------------------------------------------------------


def test_ingest_refuses_an_out_that_holds_or_is_its_source(tmp_path: Path) -> None:
    """``ingest --source folder:X/raw --out X`` used to delete raw/ and exit 0."""
    project = tmp_path / "X"
    write_record(project / "raw", "rec1", 1)
    before = snapshot(tmp_path)
    for source, out, how in [
        (f"folder:{project / 'raw'}", project, "contains"),
        (f"folder:{project / 'raw'}", project / "raw", "is"),
        (str(project / "raw"), project / "raw" / "o", "lies inside"),
        (f"file://{project / 'raw'}", project, "contains"),
        (f"folder:{project / 'raw' / '..' / 'raw'}", project, "contains"),
    ]:
        proc = cli("ingest", "--source", source, "--out", str(out))
        assert proc.returncode == 2, (source, out, proc.stdout, proc.stderr)
        assert f"output folder {out} {how} the input" in said(proc)
        assert snapshot(tmp_path) == before  # raw/ intact, no marker, no output folder


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """ingest → label → split of 16 synthetic records, through the CLI."""
    root = tmp_path_factory.mktemp("chain")
    folders = {name: root / name for name in ("records", "labels", "split")}
    steps = [
        ["ingest", "--source", "synthetic://?n=16&seed=2&seconds=2", "--out", folders["records"]],
        ["label", "--records", folders["records"], "--label-set", "synthetic",
         "--out", folders["labels"]],
        ["split", "--records", folders["records"], "--labels", folders["labels"],
         "--out", folders["split"]],
    ]  # fmt: skip
    for step in steps:
        proc = cli(*map(str, step))
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return folders


def test_stages_refuse_an_out_inside_or_around_an_input(chain: dict[str, Path], tmp_path) -> None:
    before = snapshot(chain["records"].parent)
    records, labels = str(chain["records"]), str(chain["labels"])
    for args, how in [
        (["label", "--records", records, "--label-set", "synthetic", "--out", records], "is"),
        (["label", "--records", records, "--label-set", "synthetic",
          "--out", f"{records}/labels"], "lies inside"),
        (["split", "--records", records, "--labels", labels,
          "--out", str(chain["records"].parent)], "contains"),
        (["preprocess", "--records", records, "--split", str(chain["split"]),
          "--out", f"{chain['split']}/data"], "lies inside"),
    ]:  # fmt: skip
        proc = cli(*args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert f"{how} the input" in said(proc)
        assert snapshot(chain["records"].parent) == before


def test_stages_refuse_incomplete_inputs(chain: dict[str, Path], tmp_path: Path) -> None:
    """A failed re-run leaves ``_INCOMPLETE``; preprocess used to consume the folder anyway."""
    split_dir = tmp_path / "split"
    args = ["--records", str(chain["records"]), "--labels", str(chain["labels"])]
    assert cli("split", *args, "--out", str(split_dir)).returncode == 0
    empty_labels = tmp_path / "no-labels"  # complete, but with no labels.parquet: split fails
    empty_labels.mkdir()
    (empty_labels / MANIFEST).write_text("{}\n")
    rerun = cli("split", "--records", str(chain["records"]), "--labels", str(empty_labels),
                "--out", str(split_dir))  # fmt: skip
    assert rerun.returncode == 2 and (split_dir / INCOMPLETE).is_file()

    data = tmp_path / "data"
    preprocess = ["preprocess", "--records", str(chain["records"]), "--split", str(split_dir)]
    proc = cli(*preprocess, "--out", str(data))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"the input folder {split_dir} (split_dir) is marked {INCOMPLETE}" in said(proc)
    assert not data.exists()

    (split_dir / INCOMPLETE).unlink()  # marker gone, manifest still missing
    proc = cli(*preprocess, "--out", str(data))
    assert proc.returncode == 2 and f"(split_dir) has no {MANIFEST}" in said(proc)
    assert not data.exists()

    proc = cli("label", "--records", str(split_dir), "--label-set", "synthetic",
               "--out", str(tmp_path / "l"))  # fmt: skip
    assert proc.returncode == 2 and "(records_dir) has no manifest.json" in said(proc)


def test_every_stage_checks_its_inputs_before_writing(chain: dict[str, Path], tmp_path) -> None:
    """The check lives in ``writes_output``: stages with folder, list and dataclass inputs."""
    from ecgflow.errors import EcgflowError
    from ecgflow.params import TrainClipParams
    from ecgflow.stages.finetune_gem import GemPaths, finetune_gem
    from ecgflow.stages.train_clip import train_clip

    incomplete = tmp_path / "data"
    incomplete.mkdir()
    (incomplete / INCOMPLETE).write_text("failed\n")
    with pytest.raises(EcgflowError, match=rf"data \(data_dir\) is marked {INCOMPLETE}"):
        train_clip(TrainClipParams(), incomplete, chain["records"], tmp_path / "clip")
    paths = GemPaths(chain["records"], incomplete, chain["labels"], None, chain["labels"] / "g")
    with pytest.raises(EcgflowError, match=r"lies inside the input .*labels \(paths\.instr"):
        finetune_gem(None, paths)  # type: ignore[arg-type]
    assert not (tmp_path / "clip").exists() and not (chain["labels"] / "g").exists()


def test_a_folder_inside_a_stage_output_is_judged_by_that_output(
    chain: dict[str, Path], tmp_path: Path
) -> None:
    """``export --model finetune-out/model``: the manifest sits one level up."""
    from ecgflow.errors import EcgflowError
    from ecgflow.manifest import write_manifest, writes_output

    @writes_output("probe")
    def probe(data_dir: Path, out_dir: Path) -> None:
        out_dir.mkdir(parents=True)
        write_manifest(out_dir, stage="probe")

    probe(chain["records"] / "raw", tmp_path / "ok")
    assert (tmp_path / "ok" / MANIFEST).is_file()
    failed = tmp_path / "failed"
    (failed / "model").mkdir(parents=True)
    (failed / INCOMPLETE).write_text("failed\n")
    with pytest.raises(EcgflowError, match=rf"marked {INCOMPLETE} \(inside {failed}\)"):
        probe(failed / "model", tmp_path / "o2")
    (failed / INCOMPLETE).unlink()
    with pytest.raises(EcgflowError, match=rf"model \(data_dir\) has no {MANIFEST}"):
        probe(failed / "model", tmp_path / "o3")
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()
